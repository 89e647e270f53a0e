package export

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/csvx"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// Args is the job that writes an export. It carries only the export's id: the request, the
// position reached and the file are in PostgreSQL.
type Args struct {
	ExportID string `json:"exportId"`
}

// Kind names the job.
func (Args) Kind() string { return "export" }

// MaxAttempts is how many times an export's job is tried before the export is FAILED; a run cut
// short by a shutdown or its RunBudget does not count.
const MaxAttempts = 5

// InsertOpts gives the job its attempts.
func (Args) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: MaxAttempts} }

// Worker runs export jobs.
type Worker struct {
	river.WorkerDefaults[Args]
	svc *Service
}

// NewWorker returns the worker of s's exports.
func NewWorker(s *Service) *Worker { return &Worker{svc: s} }

// Timeout bounds one run: its RunBudget and a minute for the chunk in hand.
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return w.svc.opts.RunBudget + time.Minute }

// Work writes the export chunk after chunk, each in a transaction of its own, until it is
// complete. After RunBudget, or when the process shuts down, it snoozes the job so another run
// continues after the last committed chunk. A refusal with a code (bad stored input) fails the
// export at once; other errors retry, and fail it after the last attempt.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	start := time.Now()
	for {
		done, err := w.svc.step(ctx, job.Args.ExportID)
		switch {
		case err == nil && done:
			return nil
		case err == nil && time.Since(start) > w.svc.opts.RunBudget:
			return river.JobSnooze(0)
		case err == nil:
			continue
		case ctx.Err() != nil:
			return river.JobSnooze(0)
		case apperr.CodeOf(err) != apperr.Internal:
			if ferr := w.svc.fail(context.WithoutCancel(ctx), job.Args.ExportID, string(apperr.CodeOf(err))); ferr != nil {
				return ferr
			}
			return river.JobCancel(err)
		case job.Attempt >= job.MaxAttempts:
			if ferr := w.svc.fail(context.WithoutCancel(ctx), job.Args.ExportID, string(apperr.Internal)); ferr != nil {
				return errors.Join(err, ferr)
			}
			return err
		default:
			return err
		}
	}
}

// state is an export as its job reads it.
type state struct {
	Export
	Params   json.RawMessage `bun:"params"`
	Chunks   int             `bun:"chunks"`
	Position json.RawMessage `bun:"position"`
}

// chunk is the next piece of an export's file.
type chunk struct {
	data []byte
	rows int
	// position is the keyset position after its last row (the previous one when it has none).
	position json.RawMessage
}

// step writes the export's next chunk and reports whether the export is finished (or gone, or
// expired). The chunk is read and rendered outside any transaction; then, in one, the export's
// row is moved on from the position it was read at — unless another run moved it first, and
// then nothing is written — the chunk is stored, progress is published and, with the last chunk,
// the export is completed and audited. Killed anywhere, a run leaves either the chunk and its
// position committed together or neither.
func (s *Service) step(ctx context.Context, id string) (bool, error) {
	var st state
	err := s.db.NewRaw("SELECT "+exportColumns+", params, chunks, position FROM exports WHERE id = ?", id).Scan(ctx, &st)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil // deleted (expired) meanwhile: nothing left to do
	}
	if err != nil {
		return false, fmt.Errorf("export %s: %w", id, err)
	}
	if st.Status == StatusCompleted || st.Status == StatusFailed || !time.Now().Before(st.ExpiresAt) {
		return true, nil
	}
	var p params
	if err := json.Unmarshal(st.Params, &p); err != nil {
		return false, apperr.New(apperr.InvalidInput, "export %s: unreadable request: %v", id, err)
	}
	total := st.RowsTotal
	if total == nil {
		n, err := s.count(ctx, st, p)
		if err != nil {
			return false, err
		}
		total = &n
	}
	c, err := s.render(ctx, st, p)
	if err != nil {
		return false, err
	}
	last := c.rows < s.opts.ChunkRows
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		status := StatusRunning
		if last {
			status = StatusCompleted
		}
		var moved struct {
			RowsDone  int `bun:"rows_done"`
			RowsTotal int `bun:"rows_total"`
		}
		err := tx.NewRaw(`UPDATE exports SET chunks = chunks + 1, position = ?::jsonb, rows_done = rows_done + ?,
				bytes = bytes + ?, status = ?, started_at = coalesce(started_at, now()),
				rows_total = CASE WHEN ? THEN rows_done + ? ELSE coalesce(rows_total, ?) END,
				completed_at = CASE WHEN ? THEN now() END
			WHERE id = ? AND chunks = ? AND status IN ('QUEUED', 'RUNNING')
			RETURNING rows_done, rows_total`,
			nullJSON(c.position), c.rows, len(c.data), status, last, c.rows, *total, last, id, st.Chunks).Scan(ctx, &moved)
		if errors.Is(err, sql.ErrNoRows) {
			return errMoved
		}
		if err != nil {
			return err
		}
		// Straight to pgx on the transaction's connection, in the extended protocol: the chunk
		// travels as binary bytea rather than as megabytes of hex in the SQL text (bun's way).
		if _, err := tx.Tx.ExecContext(ctx, "INSERT INTO export_chunks (export_id, seq, rows, data) VALUES ($1, $2, $3, $4)",
			pgx.QueryExecModeExec, id, st.Chunks, c.rows, c.data); err != nil {
			return err
		}
		if s.opts.AfterChunkFunc != nil {
			if err := s.opts.AfterChunkFunc(id, st.Chunks); err != nil {
				return err
			}
		}
		if err := events.Publish(ctx, tx, ProgressEvent, map[string]any{
			"exportId": id, "workspaceId": st.WorkspaceID, "status": status, "rowsDone": moved.RowsDone,
			"rowsTotal": moved.RowsTotal,
		}); err != nil {
			return err
		}
		if !last {
			return nil
		}
		return audit.Record(reqinfo.With(ctx, p.RequestedFrom), tx, audit.Entry{
			ActorUserID: st.CreatedBy, WorkspaceID: st.WorkspaceID, Action: "EXPORT", ResourceType: "export",
			ResourceID: id, Severity: audit.SeverityNotice,
			New:      map[string]any{"rows": moved.RowsDone, "bytes": st.Bytes + int64(len(c.data))},
			Metadata: map[string]any{"kind": st.Kind, "rows": moved.RowsDone, "fileName": st.FileName, "request": requestOf(p)},
		})
	})
	if errors.Is(err, errMoved) {
		return false, nil // another run wrote this chunk: read the export again
	}
	if err != nil {
		return false, fmt.Errorf("export %s chunk %d: %w", id, st.Chunks, err)
	}
	return last, nil
}

// errMoved: the export's row was moved on (or finished) by another run since it was read.
var errMoved = errors.New("export moved on by another run")

// requestOf is what the EXPORT audit entry records of the request.
func requestOf(p params) any {
	if p.AuditFilter != nil {
		return map[string]any{"filter": p.AuditFilter}
	}
	return map[string]any{"selection": p.Selection, "columns": p.Columns}
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// count is how many rows the export will hold, as the data stands.
func (s *Service) count(ctx context.Context, st state, p params) (int, error) {
	switch {
	case st.Kind == KindWorkspaceLeads && p.Selection != nil:
		return s.pipeline.Count(ctx, st.WorkspaceID, *p.Selection)
	case st.Kind == KindAuditLogs && p.AuditFilter != nil:
		return audit.Count(ctx, s.db, *p.AuditFilter)
	}
	return 0, apperr.New(apperr.InvalidInput, "export %s: nothing to export", st.ID)
}

// render reads the rows after the export's position and writes them as CSV, the byte-order mark
// (so that Excel reads UTF-8) and the header first, in the first chunk. Lines end in LF, which
// every spreadsheet reads: with CRLF, encoding/csv drops a lone carriage return inside a cell.
func (s *Service) render(ctx context.Context, st state, p params) (chunk, error) {
	var buf bytes.Buffer
	w := csvx.NewWriter(&buf, csvx.Options{BOM: st.Chunks == 0})
	c := chunk{position: st.Position}
	var err error
	switch st.Kind {
	case KindWorkspaceLeads:
		err = s.renderLeads(ctx, st, p, w, &c)
	case KindAuditLogs:
		err = s.renderAudit(ctx, st, p, w, &c)
	default:
		err = apperr.New(apperr.InvalidInput, "export %s: unknown kind %q", st.ID, st.Kind)
	}
	if err != nil {
		return chunk{}, err
	}
	if err := w.Flush(); err != nil {
		return chunk{}, err
	}
	c.data = buf.Bytes()
	return c, nil
}

func (s *Service) renderLeads(ctx context.Context, st state, p params, w *csvx.Writer, c *chunk) error {
	if p.Selection == nil {
		return apperr.New(apperr.InvalidInput, "export %s: no selection", st.ID)
	}
	cols := columnsOf(p.Columns)
	record := make([]string, len(cols))
	if st.Chunks == 0 {
		for i, col := range cols {
			record[i] = col.header
		}
		if err := w.Write(record); err != nil {
			return err
		}
	}
	var after *pipeline.Position
	if len(st.Position) > 0 {
		after = new(pipeline.Position)
		if err := json.Unmarshal(st.Position, after); err != nil {
			return apperr.New(apperr.InvalidInput, "export %s: unreadable position: %v", st.ID, err)
		}
	}
	rows, err := s.pipeline.Read(ctx, st.WorkspaceID, *p.Selection, pipeline.OrderPurchasedNewest, after, s.opts.ChunkRows)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	emails, partners, err := s.lookups(ctx, rows, cols)
	if err != nil {
		return err
	}
	for i := range rows {
		r := leadRow{w: &rows[i], assigneeEmail: emails[rows[i].AssigneeUserID], partnerName: partners[rows[i].Lead.PartnerID]}
		for j, col := range cols {
			record[j] = col.value(r)
		}
		if err := w.Write(record); err != nil {
			return err
		}
	}
	c.rows = len(rows)
	c.position, err = json.Marshal(pipeline.PositionOf(pipeline.OrderPurchasedNewest, rows[len(rows)-1]))
	return err
}

// lookups returns the e-mails of the rows' assignees and the names of their leads' partners, one
// statement each, when cols show them.
func (s *Service) lookups(ctx context.Context, rows []pipeline.WorkspaceLead, cols []leadColumn) (map[string]string, map[string]string, error) {
	emails, partners := map[string]string{}, map[string]string{}
	var wantEmails, wantPartners bool
	for _, c := range cols {
		wantEmails = wantEmails || c.name == "ASSIGNEE_EMAIL"
		wantPartners = wantPartners || c.name == "PARTNER"
	}
	if wantEmails {
		var ids []string
		for _, r := range rows {
			if r.AssigneeUserID != "" && emails[r.AssigneeUserID] == "" {
				emails[r.AssigneeUserID] = "?"
				ids = append(ids, r.AssigneeUserID)
			}
		}
		users, err := s.pipeline.Users(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		clear(emails)
		for _, u := range users {
			emails[u.ID] = u.Email
		}
	}
	if wantPartners {
		var ids []string
		for _, r := range rows {
			if partners[r.Lead.PartnerID] == "" {
				partners[r.Lead.PartnerID] = "?"
				ids = append(ids, r.Lead.PartnerID)
			}
		}
		ps, err := s.partners.ByIDs(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		clear(partners)
		for _, p := range ps {
			partners[p.ID] = p.Name
		}
	}
	return emails, partners, nil
}

func (s *Service) renderAudit(ctx context.Context, st state, p params, w *csvx.Writer, c *chunk) error {
	if p.AuditFilter == nil {
		return apperr.New(apperr.InvalidInput, "export %s: no audit filter", st.ID)
	}
	if st.Chunks == 0 {
		if err := w.Write(auditHeader); err != nil {
			return err
		}
	}
	var after *page.TimeID
	if len(st.Position) > 0 {
		after = new(page.TimeID)
		if err := json.Unmarshal(st.Position, after); err != nil {
			return apperr.New(apperr.InvalidInput, "export %s: unreadable position: %v", st.ID, err)
		}
	}
	logs, err := audit.List(ctx, s.db, *p.AuditFilter, after, s.opts.ChunkRows)
	if err != nil {
		return err
	}
	if len(logs) == 0 {
		return nil
	}
	record := make([]string, 0, len(auditHeader))
	for _, l := range logs {
		record = auditRecord(l, record)
		if err := w.Write(record); err != nil {
			return err
		}
	}
	c.rows = len(logs)
	last := logs[len(logs)-1]
	c.position, err = json.Marshal(page.TimeID{T: last.OccurredAt, I: last.ID})
	return err
}

// fail marks an unfinished export FAILED with code and publishes it.
func (s *Service) fail(ctx context.Context, id, code string) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var ws string
		err := tx.NewRaw(`UPDATE exports SET status = 'FAILED', error_code = ?, completed_at = now()
			WHERE id = ? AND status IN ('QUEUED', 'RUNNING') RETURNING coalesce(workspace_id::text, '')`, code, id).Scan(ctx, &ws)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fail export %s: %w", id, err)
		}
		return events.Publish(ctx, tx, ProgressEvent, map[string]any{"exportId": id, "workspaceId": ws, "status": StatusFailed})
	})
}

// PurgeExpired deletes the exports past their expiry, with their files, and returns how many: the
// hourly clean-up.
func PurgeExpired(ctx context.Context, db bun.IDB) (int64, error) {
	res, err := db.ExecContext(ctx, "DELETE FROM exports WHERE expires_at < now()")
	if err != nil {
		return 0, fmt.Errorf("purge exports: %w", err)
	}
	return res.RowsAffected()
}
