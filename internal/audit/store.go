package audit

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// EnsurePartitions creates the audit log's monthly partitions for this month and the next two if
// they are missing. It runs after every migration (db.Migrate's after hook, under the migration
// lock) and hourly in running processes, so entries never land in the default partition, which
// would then block creating their month's.
func EnsurePartitions(ctx context.Context, db bun.IDB) error {
	if _, err := db.ExecContext(ctx, "SELECT ensure_audit_partitions(now(), 3)"); err != nil {
		return fmt.Errorf("audit partitions: %w", err)
	}
	return nil
}

// HasEntry reports whether the audit log holds an entry of action on resourceID: for work whose
// audit entry is the mark that it was done (a Stripe dispute, processed again, has no further
// effect).
func HasEntry(ctx context.Context, db bun.IDB, action, resourceID string) (bool, error) {
	var found bool
	if err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM audit_logs WHERE action = ? AND resource_id = ?)", action, resourceID).
		Scan(ctx, &found); err != nil {
		return false, fmt.Errorf("audit entry %s of %s: %w", action, resourceID, err)
	}
	return found, nil
}
