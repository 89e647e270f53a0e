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

// Migrate applies every embedded migration not yet applied and returns their names. Then, still
// holding the migration lock (so that instances starting at once do not race), it runs after
// unless it is nil: upkeep of the schema that a migration cannot do once and for all, owned by
// another package. Every caller passes audit.EnsurePartitions, so that the audit log's partitions
// for the coming months exist right after any migration (db cannot call audit, which imports it).
func Migrate(ctx context.Context, db *bun.DB, after func(ctx context.Context, db bun.IDB) error) ([]string, error) {
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
	applied := names(group.Migrations)
	// River's own tables (background jobs), through its migrator as River documents.
	rm, err := rivermigrate.New(riverdatabasesql.New(db.DB), nil)
	if err != nil {
		return applied, fmt.Errorf("migrate: river: %w", err)
	}
	if _, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return applied, fmt.Errorf("migrate: river: %w", err)
	}
	if after != nil {
		if err := after(ctx, db); err != nil {
			return applied, fmt.Errorf("migrate: %w", err)
		}
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
	return names(ms.Unapplied()), nil
}

func names(ms migrate.MigrationSlice) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}
