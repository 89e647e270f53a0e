package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// SlotLockClass is the first key of the advisory locks that are the provider-call slots
// (pg_advisory_lock(SlotLockClass, slot)); the second is the slot, 0 to VERIFY_CONCURRENCY-1.
const SlotLockClass int32 = 0x76657269 // "veri"

// Limiter keeps at most n provider calls in flight across every instance on one database: the
// providers' limits are per account, and River's per-client worker count is per instance.
//
// A slot is a PostgreSQL session advisory lock, (SlotLockClass, 0..n-1), held on a connection of
// its own for the call's duration and released right after it; a process that dies releases its
// slots with its sessions. Inside a process, at most 2n callers compete for slots at a time, two
// for each "home" slot: a caller takes the first free slot from its home on (one round trip,
// verify_take_slot), and when all are taken it waits on its home slot's lock. So while calls wait,
// every slot has a waiter inside PostgreSQL, which hands the slot over the moment it is released
// (no round trip between one call and the next); with several instances, each slot has waiters of
// each busy instance, and PostgreSQL grants them in turn. The database's n is the highest
// VERIFY_CONCURRENCY among the instances: give them all the same.
type Limiter struct {
	db    *bun.DB
	n     int
	homes chan int
}

// NewLimiter returns a limiter of n slots (at least 1) on db. Each caller holds one of db's
// connections while it waits for and holds a slot: at most 2n of this process at a time.
func NewLimiter(db *bun.DB, n int) *Limiter {
	n = max(n, 1)
	homes := make(chan int, 2*n)
	for i := range 2 * n {
		homes <- i % n
	}
	return &Limiter{db: db, n: n, homes: homes}
}

// Slots is how many calls may be in flight at once.
func (l *Limiter) Slots() int { return l.n }

// releaseTimeout bounds giving a slot back after the call, even when the caller's context ended.
const releaseTimeout = 5 * time.Second

// Do waits for a slot, runs fn holding it, and gives it back. It returns without running fn when
// ctx ends first (ctx's error) or the database fails.
func (l *Limiter) Do(ctx context.Context, fn func()) error {
	var home int
	select {
	case home = <-l.homes:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { l.homes <- home }()
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("verification slot: %w", err)
	}
	slot, err := l.take(ctx, conn, home)
	if err != nil {
		// Whether the lock was granted as the wait was cancelled is unknown: closing the session
		// releases it either way.
		discard(conn)
		return fmt.Errorf("verification slot: %w", err)
	}
	fn()
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if _, err := conn.ExecContext(releaseCtx, "SELECT pg_advisory_unlock(?, ?)", SlotLockClass, slot); err != nil {
		discard(conn)
		return nil // fn ran; the slot went with the session
	}
	_ = conn.Close()
	return nil
}

// take takes a free slot from home on, or waits for home.
func (l *Limiter) take(ctx context.Context, conn bun.Conn, home int) (int, error) {
	var slot sql.NullInt32
	if err := conn.QueryRowContext(ctx, "SELECT verify_take_slot(?, ?, ?)", SlotLockClass, home, l.n).Scan(&slot); err != nil {
		return 0, err
	}
	if slot.Valid {
		return int(slot.Int32), nil
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?, ?)", SlotLockClass, home); err != nil {
		return 0, err
	}
	return home, nil
}

// discard closes conn's session instead of returning it to the pool, which gives back any lock
// it holds.
func discard(conn bun.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// InFlight counts the slots held on db's database right now: the provider calls in flight
// across every instance.
func InFlight(ctx context.Context, db bun.IDB) (int, error) {
	var n int
	if err := db.NewRaw(`SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = ?::oid AND objsubid = 2 AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, SlotLockClass).
		Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("calls in flight: %w", err)
	}
	return n, nil
}
