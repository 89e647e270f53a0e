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
	"github.com/leadmarket/leadmarket/internal/lead"
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
	deadline := time.Now().Add(w.svc.opts.RunBudget)
	for {
		done, err := w.svc.step(ctx, job.Args.ExportID, deadline)
		switch {
		case err == nil && done:
			return nil
		case err == nil && !time.Now().Before(deadline):
			return river.JobSnooze(0)
		case err == nil:
			continue // another run moved the export on: read it again
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
	// last: no rows follow it.
	last bool
}

// Sentinels that end a run early without an error.
var (
	// errMoved: the export's row was moved on (or finished) by another run since it was read.
	errMoved = errors.New("export moved on by another run")
	// errBudget: the run used its RunBudget.
	errBudget = errors.New("export run out of budget")
	// errWriter: the chunk writer failed; its error is the one returned.
	errWriter = errors.New("export chunk writer failed")
)

// step continues the export from its committed position until it is finished (true; also when it
// is gone or expired), another run moves it first, or deadline passes (false). It reads the rows
// in one stream (a workspace's leads) or chunk by chunk (the audit log), outside any transaction,
// and commits each chunk in a transaction of its own (writeChunk), so that, killed anywhere, a run
// leaves every chunk with the position after it, or not at all.
func (s *Service) step(ctx context.Context, id string, deadline time.Time) (bool, error) {
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
	if st.RowsTotal == nil {
		n, err := s.count(ctx, st, p)
		if err != nil {
			return false, err
		}
		st.RowsTotal = &n
	}
	switch st.Kind {
	case KindWorkspaceLeads:
		err = s.streamLeads(ctx, &st, p, deadline)
	case KindAuditLogs:
		err = s.chunkAudit(ctx, &st, p, deadline)
	default:
		err = apperr.New(apperr.InvalidInput, "export %s: unknown kind %q", st.ID, st.Kind)
	}
	switch {
	case errors.Is(err, errMoved), errors.Is(err, errBudget):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("export %s chunk %d: %w", id, st.Chunks, err)
	}
	return true, nil
}

// writeChunk commits c as the export's next chunk: the export's row is moved on from the
// position st was read at — unless another run moved it first (errMoved), and then nothing is
// written — the chunk is stored, progress is published and, with the last chunk, the export is
// completed and audited. st follows.
func (s *Service) writeChunk(ctx context.Context, st *state, p params, c chunk) error {
	status := StatusRunning
	if c.last {
		status = StatusCompleted
	}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
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
			nullJSON(c.position), c.rows, len(c.data), status, c.last, c.rows, *st.RowsTotal, c.last, st.ID, st.Chunks).
			Scan(ctx, &moved)
		if errors.Is(err, sql.ErrNoRows) {
			return errMoved
		}
		if err != nil {
			return err
		}
		// Straight to pgx on the transaction's connection, as a prepared statement: the chunk
		// travels as binary bytea, not as megabytes of hex (in bun's SQL text, or pgx's text
		// format for parameters of an unprepared statement).
		if _, err := tx.Tx.ExecContext(ctx, "INSERT INTO export_chunks (export_id, seq, rows, data) VALUES ($1, $2, $3, $4)",
			pgx.QueryExecModeCacheStatement, st.ID, st.Chunks, c.rows, c.data); err != nil {
			return err
		}
		if s.opts.AfterChunkFunc != nil {
			if err := s.opts.AfterChunkFunc(st.ID, st.Chunks); err != nil {
				return err
			}
		}
		if err := events.Publish(ctx, tx, ProgressEvent, map[string]any{
			"exportId": st.ID, "workspaceId": st.WorkspaceID, "status": status, "rowsDone": moved.RowsDone,
			"rowsTotal": moved.RowsTotal,
		}); err != nil {
			return err
		}
		if !c.last {
			return nil
		}
		return audit.Record(reqinfo.With(ctx, p.RequestedFrom), tx, audit.Entry{
			ActorUserID: st.CreatedBy, WorkspaceID: st.WorkspaceID, Action: "EXPORT", ResourceType: "export",
			ResourceID: st.ID, Severity: audit.SeverityNotice,
			New:      map[string]any{"rows": moved.RowsDone, "bytes": st.Bytes + int64(len(c.data))},
			Metadata: map[string]any{"kind": st.Kind, "rows": moved.RowsDone, "fileName": st.FileName, "request": requestOf(p)},
		})
	})
	if err != nil {
		return err
	}
	st.Chunks++
	st.RowsDone += c.rows
	st.Bytes += int64(len(c.data))
	st.Position = c.position
	return nil
}

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

// csvWriter starts a chunk's CSV: the byte-order mark (so that Excel reads UTF-8) and the header
// first, in the first chunk. Lines end in LF, which every spreadsheet reads: with CRLF,
// encoding/csv drops a lone carriage return inside a cell.
func csvWriter(buf *bytes.Buffer, st *state, header []string) (*csvx.Writer, error) {
	w := csvx.NewWriter(buf, csvx.Options{BOM: st.Chunks == 0})
	if st.Chunks == 0 {
		if err := w.Write(header); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// finish flushes a chunk's CSV into c.
func finish(w *csvx.Writer, buf *bytes.Buffer, c *chunk) error {
	if err := w.Flush(); err != nil {
		return err
	}
	c.data = buf.Bytes()
	if c.data == nil {
		c.data = []byte{} // an empty chunk, not a NULL one
	}
	return nil
}

// streamLeads reads the workspace's leads after st's position in one stream, writes each row into
// the current chunk's CSV as it arrives, and commits the chunks of ChunkRows rows; a chunk is
// handed over when the row after it arrives (so it is known not to be the last) or when the
// stream ends (the last). One goroutine commits the chunks in order while the stream fills the
// next: the database reads and writes at once, and two chunks' CSV is all that is in memory.
func (s *Service) streamLeads(ctx context.Context, st *state, p params, deadline time.Time) error {
	if p.Selection == nil {
		return apperr.New(apperr.InvalidInput, "export %s: no selection", st.ID)
	}
	cols := columnsOf(p.Columns)
	var after *pipeline.Position
	if len(st.Position) > 0 {
		after = new(pipeline.Position)
		if err := json.Unmarshal(st.Position, after); err != nil {
			return apperr.New(apperr.InvalidInput, "export %s: unreadable position: %v", st.ID, err)
		}
	}
	names, err := s.names(ctx, st.WorkspaceID, cols)
	if err != nil {
		return err
	}

	chunks := make(chan chunk)
	failed, done := make(chan struct{}), make(chan struct{})
	var werr error // the writer's; read once done is closed
	go func() {
		defer close(done)
		for c := range chunks {
			if werr != nil {
				continue // failed: take what is still handed over, until the stream stops
			}
			if werr = s.writeChunk(ctx, st, p, c); werr != nil {
				close(failed)
			}
		}
	}()
	hand := func(c chunk) error {
		select {
		case chunks <- c:
			return nil
		case <-failed:
			return errWriter
		}
	}

	header := make([]string, len(cols))
	for i, col := range cols {
		header[i] = col.header
	}
	first := st.Chunks == 0 // the chunks counter moves in the writer: the stream keeps its own
	var (
		buf    *bytes.Buffer
		w      *csvx.Writer
		c      chunk
		record = make([]string, len(cols))
	)
	start := func() error {
		buf = bytes.NewBuffer(make([]byte, 0, s.opts.ChunkRows*400))
		w = csvx.NewWriter(buf, csvx.Options{BOM: first})
		c = chunk{position: c.position}
		if first {
			first = false
			return w.Write(header)
		}
		return nil
	}
	// The position after a chunk is its last row's, encoded once the chunk is complete.
	var lastPos pipeline.Position
	finishLeads := func() error {
		if c.rows > 0 {
			pos, err := json.Marshal(lastPos)
			if err != nil {
				return err
			}
			c.position = pos
		}
		return finish(w, buf, &c)
	}
	c.position = st.Position
	if err := start(); err != nil {
		return err
	}
	err = s.pipeline.Stream(ctx, st.WorkspaceID, *p.Selection, pipeline.OrderPurchasedNewest, after, func(wl *pipeline.WorkspaceLead) (err error) {
		if c.rows == s.opts.ChunkRows {
			if err := finishLeads(); err != nil {
				return err
			}
			if err := hand(c); err != nil {
				return err
			}
			if !time.Now().Before(deadline) {
				return errBudget
			}
			if err := start(); err != nil {
				return err
			}
		}
		r := leadRow{w: wl}
		if r.assigneeEmail, err = names.email(ctx, wl.AssigneeUserID); err != nil {
			return err
		}
		if r.partnerName, err = names.partner(ctx, wl.Lead.PartnerID); err != nil {
			return err
		}
		for j, col := range cols {
			record[j] = col.value(r)
		}
		if err := w.Write(record); err != nil {
			return err
		}
		c.rows++
		lastPos = pipeline.PositionOf(pipeline.OrderPurchasedNewest, *wl)
		return nil
	})
	if err == nil {
		c.last = true
		if err = finishLeads(); err == nil {
			err = hand(c)
		}
	}
	close(chunks)
	<-done
	if werr != nil {
		return werr // the writer's error explains the stream's
	}
	return err
}

// lookupNames are the assignees' e-mails and the partners' names an export shows, looked up for
// the whole list when its job starts (one statement each way), and for the odd one assigned since
// when it comes up.
type lookupNames struct {
	s                *Service
	emails, partners map[string]string
	wantEmails       bool
	wantPartners     bool
}

// names looks up what cols show of the workspace's assignees and partners.
func (s *Service) names(ctx context.Context, workspaceID string, cols []leadColumn) (*lookupNames, error) {
	n := &lookupNames{s: s, emails: map[string]string{}, partners: map[string]string{}}
	for _, c := range cols {
		n.wantEmails = n.wantEmails || c.name == "ASSIGNEE_EMAIL"
		n.wantPartners = n.wantPartners || c.name == "PARTNER"
	}
	if n.wantEmails {
		ids, err := s.pipeline.AssigneeIDs(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		if err := n.addUsers(ctx, ids); err != nil {
			return nil, err
		}
	}
	if n.wantPartners {
		ids, err := lead.PartnerIDsBought(ctx, s.db, workspaceID)
		if err != nil {
			return nil, err
		}
		if err := n.addPartners(ctx, ids); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *lookupNames) addUsers(ctx context.Context, ids []string) error {
	users, err := n.s.pipeline.Users(ctx, ids)
	for _, u := range users {
		n.emails[u.ID] = u.Email
	}
	return err
}

func (n *lookupNames) addPartners(ctx context.Context, ids []string) error {
	ps, err := n.s.partners.ByIDs(ctx, ids)
	for _, p := range ps {
		n.partners[p.ID] = p.Name
	}
	return err
}

// email is the e-mail of assignee ("" for none), looked up if it was not known.
func (n *lookupNames) email(ctx context.Context, id string) (string, error) {
	if !n.wantEmails || id == "" {
		return "", nil
	}
	if _, ok := n.emails[id]; !ok {
		if err := n.addUsers(ctx, []string{id}); err != nil {
			return "", err
		}
		if _, ok := n.emails[id]; !ok {
			n.emails[id] = "" // not to ask again
		}
	}
	return n.emails[id], nil
}

// partner is the name of partner id, looked up if it was not known.
func (n *lookupNames) partner(ctx context.Context, id string) (string, error) {
	if !n.wantPartners {
		return "", nil
	}
	if _, ok := n.partners[id]; !ok {
		if err := n.addPartners(ctx, []string{id}); err != nil {
			return "", err
		}
		if _, ok := n.partners[id]; !ok {
			n.partners[id] = ""
		}
	}
	return n.partners[id], nil
}

// chunkAudit reads the audit log after st's position chunk by chunk (one statement each, asking
// for a row more than a chunk holds to know whether another follows) and commits each.
func (s *Service) chunkAudit(ctx context.Context, st *state, p params, deadline time.Time) error {
	if p.AuditFilter == nil {
		return apperr.New(apperr.InvalidInput, "export %s: no audit filter", st.ID)
	}
	for {
		var after *page.TimeID
		if len(st.Position) > 0 {
			after = new(page.TimeID)
			if err := json.Unmarshal(st.Position, after); err != nil {
				return apperr.New(apperr.InvalidInput, "export %s: unreadable position: %v", st.ID, err)
			}
		}
		logs, err := audit.List(ctx, s.db, *p.AuditFilter, after, s.opts.ChunkRows+1)
		if err != nil {
			return err
		}
		c := chunk{position: st.Position, last: len(logs) <= s.opts.ChunkRows}
		if !c.last {
			logs = logs[:s.opts.ChunkRows]
		}
		var buf bytes.Buffer
		w, err := csvWriter(&buf, st, auditHeader)
		if err != nil {
			return err
		}
		record := make([]string, 0, len(auditHeader))
		for _, l := range logs {
			record = auditRecord(l, record)
			if err := w.Write(record); err != nil {
				return err
			}
		}
		if c.rows = len(logs); c.rows > 0 {
			lastLog := logs[len(logs)-1]
			if c.position, err = json.Marshal(page.TimeID{T: lastLog.OccurredAt, I: lastLog.ID}); err != nil {
				return err
			}
		}
		if err := finish(w, &buf, &c); err != nil {
			return err
		}
		if err := s.writeChunk(ctx, st, p, c); err != nil || c.last {
			return err
		}
		if !time.Now().Before(deadline) {
			return errBudget
		}
	}
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
