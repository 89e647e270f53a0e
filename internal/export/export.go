// Package export writes CSV exports — a workspace's leads, the audit log — as background jobs
// (DESIGN §7): the request is stored, a River job writes the file into PostgreSQL in chunks, each
// chunk committed with the position after its last row, so any instance serves the download and a
// job killed at any point resumes after the last chunk it committed, writing every row once. Every
// cell goes through csvx (formula-safe). Progress is published as export.progress events; a
// completed export is audited (EXPORT) and expires after a retention period (EXPORT_RETENTION),
// when the clean-up deletes it.
package export

import (
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

// Kinds of export.
const (
	KindWorkspaceLeads = "WORKSPACE_LEADS"
	KindAuditLogs      = "AUDIT_LOGS"
)

// Statuses of an export.
const (
	StatusQueued    = "QUEUED"
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// ProgressEvent is the type of the event published with every chunk an export writes and when
// it completes or fails (payload: exportId, workspaceId, status, rowsDone, rowsTotal).
const ProgressEvent = "export.progress"

// Export is an export as its creator sees it.
type Export struct {
	ID   string `bun:"id"`
	Kind string `bun:"kind"`
	// WorkspaceID is the workspace whose data it holds; empty for a platform-wide audit log export.
	WorkspaceID string `bun:"workspace_id"`
	CreatedBy   string `bun:"created_by"`
	// FileName is the name the download suggests.
	FileName string `bun:"file_name"`
	Status   string `bun:"status"`
	// RowsTotal is how many rows the export will hold: counted when the job starts (nil before),
	// and set to RowsDone when it completes, as the data may change while it runs.
	RowsTotal *int `bun:"rows_total"`
	RowsDone  int  `bun:"rows_done"`
	// Bytes is the size of the file written so far.
	Bytes int64 `bun:"bytes"`
	// ErrorCode says why a FAILED export failed (an apperr code; INTERNAL when unexpected).
	ErrorCode   string     `bun:"error_code"`
	CreatedAt   time.Time  `bun:"created_at"`
	CompletedAt *time.Time `bun:"completed_at"`
	ExpiresAt   time.Time  `bun:"expires_at"`
}

// DownloadPath is where the file of export id is downloaded (GET, bearer token).
func DownloadPath(id string) string { return "/exports/" + id + ".csv" }

// Downloadable reports whether the file can be downloaded at now: completed and not expired.
func (e Export) Downloadable(now time.Time) bool {
	return e.Status == StatusCompleted && now.Before(e.ExpiresAt)
}

// Options configure a Service.
type Options struct {
	// Retention is how long an export is kept after it was requested (EXPORT_RETENTION).
	// Default 7 days.
	Retention time.Duration
	// ChunkRows is how many rows one chunk (one transaction of the job) holds. Default 5,000:
	// under 2 MB of CSV, twenty commits for 100,000 rows, two chunks in memory at a time.
	ChunkRows int
	// RunBudget is how long one run of the job writes chunks before it hands the rest to another
	// run (River snooze), so that no run nears the job's timeout or River's rescue of stuck jobs.
	// Default 4 minutes.
	RunBudget time.Duration
	// AfterChunkFunc, when set, runs inside each chunk's transaction after the chunk was written
	// and before it commits; an error rolls the chunk back and fails the run. Tests use it to kill
	// a job in the middle. Default nil.
	AfterChunkFunc func(exportID string, seq int) error
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// DefaultRetention is Options.Retention's default.
const DefaultRetention = 7 * 24 * time.Hour

// Service creates, runs and serves exports.
type Service struct {
	db       *bun.DB
	queue    *jobs.Queue
	pipeline *pipeline.Service
	audit    *audit.Service
	partners *partner.Service
	opts     Options
}

// NewService returns a Service on db that queues its jobs on queue, reads workspace leads through
// pipelineSvc and checks audit log access with auditSvc.
func NewService(db *bun.DB, queue *jobs.Queue, pipelineSvc *pipeline.Service, auditSvc *audit.Service, o Options) *Service {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 5_000
	}
	if o.RunBudget <= 0 {
		o.RunBudget = 4 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Service{db: db, queue: queue, pipeline: pipelineSvc, audit: auditSvc, partners: partner.NewService(db), opts: o}
}
