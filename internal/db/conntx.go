package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// ConnTx is a transaction on a connection of its own, for work that mixes bun's statements with
// pgx's COPY protocol and binary arrays (bulk loads): bun runs on the embedded Tx, and Pgx hands
// fn the very connection the transaction is open on, so what pgx does is part of it.
type ConnTx struct {
	bun.Tx
	conn bun.Conn
}

// Pgx runs fn with the transaction's pgx connection. fn must not keep the connection, nor run
// it concurrently with the Tx. Statements it runs count in the request's statement counter as
// one.
func (t ConnTx) Pgx(ctx context.Context, fn func(*pgx.Conn) error) error {
	if n := counterFrom(ctx); n != nil {
		n.Add(1)
	}
	return t.conn.Raw(func(driverConn any) error {
		// pgx's *stdlib.Conn, or a connection wrapping one the same way (a test's).
		c, ok := driverConn.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("db: connection is %T, not pgx's", driverConn)
		}
		return fn(c.Conn())
	})
}

// RunInConnTx takes a connection from bdb's pool, begins a transaction on it, runs fn and
// commits when fn returns nil; it rolls back when fn fails or panics, and returns the
// connection to the pool.
func RunInConnTx(ctx context.Context, bdb *bun.DB, fn func(ctx context.Context, tx ConnTx) error) (err error) {
	conn, err := bdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("db: connection: %w", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(ctx, ConnTx{Tx: tx, conn: conn}); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	return nil
}
