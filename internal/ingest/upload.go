package ingest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/idempotency"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/partner"
)

// Upload statuses (enum LeadUploadStatus).
const (
	// StatusQueued: the file is staged and its job waits to be picked up.
	StatusQueued = "QUEUED"
	// StatusProcessing: the job is working the staged rows.
	StatusProcessing = "PROCESSING"
	// StatusCompleted: every row was accepted or rejected; the counts add up to RowsTotal.
	StatusCompleted = "COMPLETED"
	// StatusFailed: the file was refused (ErrorCode is a file-level code) or could not be
	// processed (CodeProcessingFailed).
	StatusFailed = "FAILED"
)

// CodeProcessingFailed is a FAILED upload's error code when its job gave up after its retries
// (the database refused its work each time), rather than the file being refused.
const CodeProcessingFailed ErrorCode = "PROCESSING_FAILED"

// ProgressEvent is the event type of an upload's progress (events.Publish), published with every
// change of its status or counts: a Progress payload.
const ProgressEvent = "lead_upload.progress"

// DefaultRetention is Options.Retention when it is zero: UPLOAD_RETENTION's default.
const DefaultRetention = 90 * 24 * time.Hour

// DefaultBatchRows is Options.BatchRows when it is zero: the most staged rows one job
// transaction works.
const DefaultBatchRows = 5000

// MaxFileNameChars is the most characters of a file's name that are kept.
const MaxFileNameChars = 255

// Upload is a partner's lead upload: the file, what became of its rows so far, and why it failed
// if it did.
type Upload struct {
	ID             string     `bun:"id"`
	PartnerID      string     `bun:"partner_id"`
	FileName       string     `bun:"file_name"`
	FileSHA256     string     `bun:"file_sha256"`
	DryRun         bool       `bun:"dry_run"`
	Status         string     `bun:"status"`
	RowsTotal      int        `bun:"rows_total"`
	RowsProcessed  int        `bun:"rows_processed"`
	AcceptedCount  int        `bun:"accepted_count"`
	DuplicateCount int        `bun:"duplicate_count"`
	InvalidCount   int        `bun:"invalid_count"`
	CreatedAt      time.Time  `bun:"created_at"`
	StartedAt      *time.Time `bun:"started_at"`
	CompletedAt    *time.Time `bun:"completed_at"`
	ErrorCode      *string    `bun:"error_code"`
	ErrorMessage   *string    `bun:"error_message"`
	// RejectionsPurged is set once UPLOAD_RETENTION's clean-up deleted the rejections.
	RejectionsPurged bool `bun:"rejections_purged"`
}

// uploadColumns selects an Upload from lead_uploads AS u.
const uploadColumns = `u.id, u.partner_id, u.file_name, u.file_sha256, u.dry_run, u.status, u.rows_total,
	u.rows_processed, u.accepted_count, u.duplicate_count, u.invalid_count, u.created_at, u.started_at,
	u.completed_at, u.error_code, u.error_message, u.rejections_purged_at IS NOT NULL AS rejections_purged`

// RejectionsCSVPath returns the path of the upload's rejections download
// (GET /partners/uploads/{id}/rejections.csv), or "" while it is not available: before the upload
// completes and after its rejections were purged.
func (u Upload) RejectionsCSVPath() string {
	if u.Status != StatusCompleted || u.RejectionsPurged {
		return ""
	}
	return "/partners/uploads/" + u.ID + "/rejections.csv"
}

// Progress is the payload of ProgressEvent: the upload's status and counts, small enough for
// NOTIFY.
type Progress struct {
	// ID is the upload's id again, under the name the events broker reads every event's id by.
	ID             string `json:"id"`
	UploadID       string `json:"uploadId"`
	PartnerID      string `json:"partnerId"`
	Status         string `json:"status"`
	DryRun         bool   `json:"dryRun"`
	RowsTotal      int    `json:"rowsTotal"`
	RowsProcessed  int    `json:"rowsProcessed"`
	AcceptedCount  int    `json:"acceptedCount"`
	DuplicateCount int    `json:"duplicateCount"`
	InvalidCount   int    `json:"invalidCount"`
	ErrorCode      string `json:"errorCode,omitempty"`
}

func progressOf(u Upload) Progress {
	p := Progress{
		ID: u.ID, UploadID: u.ID, PartnerID: u.PartnerID, Status: u.Status, DryRun: u.DryRun, RowsTotal: u.RowsTotal,
		RowsProcessed: u.RowsProcessed, AcceptedCount: u.AcceptedCount, DuplicateCount: u.DuplicateCount,
		InvalidCount: u.InvalidCount,
	}
	if u.ErrorCode != nil {
		p.ErrorCode = *u.ErrorCode
	}
	return p
}

// ServiceOptions configure a Service. Zero fields take their defaults.
type ServiceOptions struct {
	// MaxRows is the most data rows a file may have (MAX_UPLOAD_ROWS). Default DefaultMaxRows.
	MaxRows int
	// Retention is how long an upload's rejections are kept (UPLOAD_RETENTION). Default
	// DefaultRetention.
	Retention time.Duration
	// BatchRows is the most staged rows one job transaction works. Default DefaultBatchRows;
	// tests lower it to see several batches in a small file.
	BatchRows int
	// WorkBudget is how long one run of an upload's job works batches before it hands the rest
	// to a fresh run (river.JobSnooze), so that no run comes near the job timeout or the rescue
	// of stuck jobs. Default 2 minutes.
	WorkBudget time.Duration
	// EnqueueVerificationFunc, when set, enqueues the e-mail verification of the leads a batch
	// inserted, in the batch's transaction (verify.Service.EnqueueTx): an upload's leads are
	// verified as soon as they exist, and the last batch is the one that completes the upload.
	// Default nil: nothing is enqueued (the verification sweep still finds the leads PENDING).
	EnqueueVerificationFunc func(ctx context.Context, tx bun.Tx, leadIDs []string) error
	// Metrics counts the leads batches insert (leads_ingested_total) and the rows they reject by
	// reason (leads_rejected_total), dry runs excepted, once each batch has committed. Default
	// nil: not counted.
	Metrics *metrics.Metrics
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Service takes partners' uploads, works them in background jobs and answers for them: the
// uploads, their rejections (also as a CSV download) and the partner's stats.
type Service struct {
	db    *bun.DB
	queue *jobs.Queue
	opts  ServiceOptions

	// afterBatch, when set (tests), runs after each batch has committed; an error stops the run
	// there as if its process had died.
	afterBatch func(uploadID string) error
}

// NewService returns a Service on db that enqueues its jobs on queue.
func NewService(db *bun.DB, queue *jobs.Queue, o ServiceOptions) *Service {
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.BatchRows <= 0 {
		o.BatchRows = DefaultBatchRows
	}
	if o.WorkBudget <= 0 {
		o.WorkBudget = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{db: db, queue: queue, opts: o}
}

// UploadInput is an uploadLeads request.
type UploadInput struct {
	PartnerID string
	// File is the uploaded file; Upload reads it twice (its hash, then its rows), so it must
	// seek.
	File io.ReadSeeker
	// FileName is the name the client gave the file.
	FileName string
	// DefaultPriceCredits applies to rows without price_credits; nil means DefaultPriceCredits.
	DefaultPriceCredits *int
	// DefaultCountry applies to rows without country; nil or empty means none.
	DefaultCountry *string
	// DryRun checks and counts every row but inserts no lead.
	DryRun bool
	// IdempotencyKey, when set, makes a repeat with the same file and input return the first
	// upload.
	IdempotencyKey string
}

// uploadRequest is what an upload's idempotency key is bound to: the file by its hash, and the
// other input. The file's name is left out: the same bytes under another name are the same file.
type uploadRequest struct {
	PartnerID           string `json:"partnerId"`
	FileSHA256          string `json:"fileSha256"`
	DefaultPriceCredits int    `json:"defaultPriceCredits"`
	DefaultCountry      string `json:"defaultCountry"`
	DryRun              bool   `json:"dryRun"`
}

// uploadRef is the result an idempotency key stores: the upload it made.
type uploadRef struct {
	ID string `json:"id"`
}

// Upload takes a partner's file: in one transaction it records the upload, streams the file's
// rows into the staging table (pgx COPY, one row in memory at a time) and enqueues the job that
// works them; the upload is then QUEUED. A file that cannot be an upload (ErrorCode: NOT_CSV,
// EMPTY_FILE, MISSING_COLUMNS, TOO_MANY_ROWS, ...) is not an error: the upload is returned FAILED
// with its code and message, and no job. Only the partner's members and platform admins may
// upload. Errors: UNAUTHENTICATED, FORBIDDEN, INVALID_INPUT (the defaults, the idempotency key),
// IDEMPOTENCY_KEY_REUSED (the key was used with another file or input), IDEMPOTENCY_IN_PROGRESS.
func (s *Service) Upload(ctx context.Context, c *auth.Caller, in UploadInput) (*Upload, error) {
	if c == nil {
		return nil, apperr.New(apperr.Unauthenticated, "sign in to do this")
	}
	if err := partner.RequireMemberOrAdmin(ctx, s.db, in.PartnerID, c); err != nil {
		return nil, err
	}
	actor := audit.ActorPartner
	if c.AdminAccess() == nil && partner.RequireMember(ctx, s.db, in.PartnerID, c.UserID) != nil {
		actor = audit.ActorPlatformAdmin
	}
	defaults, err := NewDefaults(in.DefaultPriceCredits, in.DefaultCountry)
	if err != nil {
		return nil, err
	}
	if in.File == nil {
		return nil, apperr.New(apperr.InvalidInput, "file is required").With("field", "file")
	}
	sum, size, err := hashFile(in.File)
	if err != nil {
		return nil, err
	}
	req := uploadRequest{PartnerID: in.PartnerID, FileSHA256: sum, DefaultPriceCredits: defaults.PriceCredits,
		DefaultCountry: defaults.Country, DryRun: in.DryRun}
	var up *Upload
	err = db.RunInConnTx(ctx, s.db, func(ctx context.Context, tx db.ConnTx) error {
		ref, _, err := idempotency.Do(ctx, tx.Tx, idempotency.Key{
			UserID: c.UserID, Key: in.IdempotencyKey, Operation: "uploadLeads", Request: req,
		}, func() (uploadRef, error) {
			id, err := s.stage(ctx, tx, c, actor, in, req, defaults, size)
			return uploadRef{ID: id}, err
		})
		if err != nil {
			return err
		}
		up, err = getUpload(ctx, tx, ref.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return up, nil
}

// hashFile returns the hex SHA-256 and size of f, and seeks it back to its start.
func hashFile(f io.ReadSeeker) (string, int64, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("read upload: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read upload: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("read upload: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// cleanFileName keeps a file name storable and short: valid UTF-8 without control characters,
// trimmed, at most MaxFileNameChars characters.
func cleanFileName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	name = trimValue(name)
	if utf8.RuneCountInString(name) > MaxFileNameChars {
		name = clip(name, MaxFileNameChars)
	}
	return name
}

// stage records the upload in tx and stages its rows, or records it FAILED when the file is
// refused. It returns the upload's id.
func (s *Service) stage(ctx context.Context, tx db.ConnTx, c *auth.Caller, actor string, in UploadInput,
	req uploadRequest, d Defaults, size int64,
) (string, error) {
	fileName := cleanFileName(in.FileName)
	var id string
	if err := tx.NewRaw(`INSERT INTO lead_uploads (partner_id, uploaded_by, file_name, file_sha256, file_bytes, dry_run,
			default_price_credits, default_country)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		req.PartnerID, c.UserID, fileName, req.FileSHA256, size, req.DryRun, d.PriceCredits, d.Country).
		Scan(ctx, &id); err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	entry := audit.Entry{ActorUserID: c.UserID, ActorType: actor, ResourceType: "lead_upload", ResourceID: id,
		Metadata: map[string]any{"partnerId": req.PartnerID, "fileName": fileName,
			"fileSha256": req.FileSHA256, "fileBytes": size, "dryRun": req.DryRun}}

	rd, err := NewReader(in.File, Options{MaxRows: s.opts.MaxRows})
	if fe, ok := AsFileError(err); ok {
		return id, s.refuseFile(ctx, tx, id, entry, fe)
	}
	if err != nil {
		return "", err
	}
	// A file can still be refused part-way (TOO_MANY_ROWS at row 1,000,002, bytes that are not
	// UTF-8 at row 700): the copy is undone back to here, and the upload recorded FAILED.
	if _, err := tx.ExecContext(ctx, "SAVEPOINT staging"); err != nil {
		return "", fmt.Errorf("stage upload: %w", err)
	}
	rows, err := copyRows(ctx, tx, id, rd)
	if fe, ok := AsFileError(err); ok {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT staging"); err != nil {
			return "", fmt.Errorf("stage upload: %w", err)
		}
		return id, s.refuseFile(ctx, tx, id, entry, fe)
	}
	if err != nil {
		return "", err
	}
	res, err := s.queue.InsertTx(ctx, tx.Tx, ProcessArgs{UploadID: id}, nil)
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE lead_uploads SET header = ?, rows_total = ?, job_id = ?, updated_at = now() WHERE id = ?",
		pgdialect.Array(rd.Header().Names), rows, res.Job.ID, id); err != nil {
		return "", fmt.Errorf("stage upload: %w", err)
	}
	entry.Action = "lead_upload.created"
	entry.New = map[string]any{"status": StatusQueued, "rowsTotal": rows}
	if err := audit.Record(ctx, tx, entry); err != nil {
		return "", err
	}
	return id, publishProgress(ctx, tx, id)
}

// refuseFile records the upload FAILED with the file's error, its audit entry and its event.
func (s *Service) refuseFile(ctx context.Context, tx bun.IDB, id string, entry audit.Entry, fe *FileError) error {
	if _, err := tx.ExecContext(ctx, `UPDATE lead_uploads SET status = 'FAILED', error_code = ?, error_message = ?,
		completed_at = now(), updated_at = now() WHERE id = ?`, string(fe.Code), fe.Message, id); err != nil {
		return fmt.Errorf("refuse upload %s: %w", id, err)
	}
	entry.Action = "lead_upload.failed"
	entry.Severity = audit.SeverityNotice
	entry.New = map[string]any{"status": StatusFailed, "errorCode": string(fe.Code), "errorMessage": fe.Message}
	if err := audit.Record(ctx, tx, entry); err != nil {
		return err
	}
	return publishProgress(ctx, tx, id)
}

// copyRows streams rd's rows into lead_upload_rows with pgx's COPY and returns how many there
// were. The reader's *FileError comes back as it is.
func copyRows(ctx context.Context, tx db.ConnTx, uploadID string, rd *Reader) (int, error) {
	src := &stagingSource{rd: rd, uploadID: uuid.MustParse(uploadID)}
	var n int64
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		var err error
		n, err = conn.CopyFrom(ctx, pgx.Identifier{"lead_upload_rows"},
			[]string{"upload_id", "row_number", "fields", "field_count", "malformed"}, src)
		return err
	})
	if src.err != nil {
		// pgx reports the source's error wrapped in its own words; the reader's is the cause.
		return 0, src.err
	}
	if err != nil {
		return 0, fmt.Errorf("stage rows: %w", err)
	}
	return int(n), nil
}

// stagingSource feeds COPY one row at a time from the reader.
type stagingSource struct {
	rd       *Reader
	uploadID uuid.UUID
	row      Row
	err      error
}

func (s *stagingSource) Next() bool {
	row, err := s.rd.Next()
	if errors.Is(err, io.EOF) {
		return false
	}
	if err != nil {
		s.err = err
		return false
	}
	s.row = row
	return true
}

func (s *stagingSource) Values() ([]any, error) {
	return []any{s.uploadID, s.row.Number, s.row.Values, s.row.FieldCount, s.row.Malformed}, nil
}

func (s *stagingSource) Err() error { return s.err }

// getUpload reads an upload; nil when there is none.
func getUpload(ctx context.Context, db bun.IDB, id string) (*Upload, error) {
	var u Upload
	err := db.NewRaw("SELECT "+uploadColumns+" FROM lead_uploads AS u WHERE u.id = ?", id).Scan(ctx, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	return &u, nil
}

// publishProgress publishes the upload's current state in tx, to be delivered when tx commits.
func publishProgress(ctx context.Context, tx bun.IDB, id string) error {
	u, err := getUpload(ctx, tx, id)
	if err != nil {
		return err
	}
	if u == nil {
		return fmt.Errorf("progress of upload %s: not found", id)
	}
	return events.Publish(ctx, tx, ProgressEvent, progressOf(*u))
}
