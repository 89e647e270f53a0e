package db

import (
	"context"
	"fmt"

	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/leadmarket/leadmarket/migrations"
)

// migrationLockKey is the advisory lock that serialises migrations across instances starting at
// the same time (bun's own lock table fails instead of waiting).
const migrationLockKey = 7_246_118_001

func newMigrator(db *bun.DB) (*migrate.Migrator, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	return migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true)), nil
}

// Migrate applies every embedded migration not yet applied and returns their names. It also
// creates the audit log's partitions for the coming months.
func Migrate(ctx context.Context, db *bun.DB) ([]string, error) {
	m, err := newMigrator(db)
	if err != nil {
		return nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockKey) //nolint:errcheck
	if err := m.Init(ctx); err != nil {
		return nil, fmt.Errorf("migrate: init: %w", err)
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var applied []string
	for _, mig := range group.Migrations {
		applied = append(applied, mig.Name)
	}
	// River's own tables (background jobs), through its migrator as River documents.
	rm, err := rivermigrate.New(riverdatabasesql.New(db.DB), nil)
	if err != nil {
		return applied, fmt.Errorf("migrate: river: %w", err)
	}
	if _, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return applied, fmt.Errorf("migrate: river: %w", err)
	}
	if err := EnsureAuditPartitions(ctx, db); err != nil {
		return applied, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// PendingMigrations returns the names of embedded migrations not applied to db; /readyz is ready
// only when there are none.
func PendingMigrations(ctx context.Context, db *bun.DB) ([]string, error) {
	m, err := newMigrator(db)
	if err != nil {
		return nil, err
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	var pending []string
	for _, mig := range ms.Unapplied() {
		pending = append(pending, mig.Name)
	}
	return pending, nil
}

// EnsureAuditPartitions creates the audit log's monthly partitions for this month and the next
// two if they are missing. Migrate runs it at start-up and an hourly job in running processes,
// so entries never land in the default partition, which would then block creating their month's.
func EnsureAuditPartitions(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "SELECT ensure_audit_partitions(now(), 3)"); err != nil {
		return fmt.Errorf("audit partitions: %w", err)
	}
	return nil
}
