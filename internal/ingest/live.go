package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Changed is an upload's state as of a progress change: UpdatedAt orders the changes.
type Changed struct {
	Upload
	UpdatedAt time.Time `bun:"updated_at"`
}

// ProgressKey identifies one progress state of an upload, so a state seen twice (a notification
// and a catch-up) is delivered once.
func (c Changed) ProgressKey() string {
	return fmt.Sprintf("%s:%s:%d", c.ID, c.Status, c.RowsProcessed)
}

// UploadsByIDs returns the current state of the uploads with the given ids (the ids
// ProgressEvent carries).
func UploadsByIDs(ctx context.Context, db bun.IDB, ids []string) ([]Changed, error) {
	var out []Changed
	if err := db.NewRaw("SELECT "+uploadColumns+", u.updated_at FROM lead_uploads AS u WHERE u.id = ANY(?::uuid[]) ORDER BY u.updated_at, u.id",
		pgdialect.Array(ids)).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("uploads by id: %w", err)
	}
	return out, nil
}

// UploadsChangedAfter returns up to limit uploads changed at or after since, oldest change first:
// the catch-up of upload progress.
func UploadsChangedAfter(ctx context.Context, db bun.IDB, since time.Time, limit int) ([]Changed, error) {
	var out []Changed
	if err := db.NewRaw("SELECT "+uploadColumns+", u.updated_at FROM lead_uploads AS u WHERE u.updated_at >= ? ORDER BY u.updated_at, u.id LIMIT ?",
		since, limit).Scan(ctx, &out); err != nil {
		return nil, fmt.Errorf("uploads changed after %s: %w", since, err)
	}
	return out, nil
}

// UploadByID returns an upload, nil when there is none: the first message of a progress
// subscription.
func UploadByID(ctx context.Context, db bun.IDB, id string) (*Upload, error) {
	return getUpload(ctx, db, id)
}

// CountInProgress counts the uploads QUEUED or PROCESSING (marketplaceStats.uploadsInProgress).
func CountInProgress(ctx context.Context, db bun.IDB) (int, error) {
	var n int
	if err := db.NewRaw("SELECT count(*) FROM lead_uploads WHERE status IN (?, ?)", StatusQueued, StatusProcessing).Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count uploads in progress: %w", err)
	}
	return n, nil
}
