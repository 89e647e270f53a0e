package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/export"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// The export tests run on databases of their own (FreshDB), not on the test's transaction: a job
// streams the rows it exports on one connection while it commits chunks on another.

func caller(u dbtest.User) *auth.Caller { return &auth.Caller{UserID: u.ID, Email: u.Email} }

// newService returns an export service on db with o (and the services it reads through).
func newService(t *testing.T, db *bun.DB, o export.Options) *export.Service {
	t.Helper()
	q, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	return export.NewService(db, q, pipeline.NewService(db), audit.NewService(db, workspace.RoleCheck(db)), o)
}

// work runs the export's job once, as River would on its attempt-th try.
func work(ctx context.Context, s *export.Service, id string, attempt int) error {
	return export.NewWorker(s).Work(ctx, &river.Job[export.Args]{
		JobRow: &rivertype.JobRow{Attempt: attempt, MaxAttempts: export.MaxAttempts}, Args: export.Args{ExportID: id},
	})
}

// download GETs the export's file through the download handler as c.
func download(t *testing.T, s *export.Service, c *auth.Caller, id string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, export.DownloadPath(id), nil)
	req.SetPathValue("file", id+".csv")
	if c != nil {
		req = req.WithContext(auth.WithCaller(req.Context(), c))
	}
	rec := httptest.NewRecorder()
	s.DownloadHandler().ServeHTTP(rec, req)
	return rec
}

// readCSV opens a downloaded file as a spreadsheet does: the UTF-8 byte-order mark taken off,
// then RFC 4180 records.
func readCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	rest, ok := bytes.CutPrefix(body, []byte("\xEF\xBB\xBF"))
	require.True(t, ok, "the file starts with a UTF-8 byte-order mark")
	records, err := csv.NewReader(bytes.NewReader(rest)).ReadAll()
	require.NoError(t, err)
	return records
}

// column returns the index of header's column name.
func column(t *testing.T, header []string, name string) int {
	t.Helper()
	i := slices.Index(header, name)
	require.GreaterOrEqual(t, i, 0, "column %s in %v", name, header)
	return i
}

// A job killed in the middle — in a chunk's transaction, twice, by different "processes" — and
// run again finishes the export with every row exactly once.
func TestExportKilledMidJobFinishesWithEveryRowOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	leads := dbtest.CreatePurchasedLeads(t, db, ws, 53, dbtest.PurchasesOpts{})

	e, err := newService(t, db, export.Options{ChunkRows: 7}).
		ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws, Columns: []string{"ID", "EMAIL"}})
	require.NoError(t, err)
	require.Equal(t, export.StatusQueued, e.Status)

	killAt := func(seq int) func(string, int) error {
		return func(_ string, s int) error {
			if s == seq {
				return errors.New("killed")
			}
			return nil
		}
	}
	// The first process dies writing chunk 2, the second writing chunk 5.
	require.ErrorContains(t, work(ctx, newService(t, db, export.Options{ChunkRows: 7, AfterChunkFunc: killAt(2)}), e.ID, 1), "killed")
	mid, err := newService(t, db, export.Options{}).Get(ctx, caller(owner), e.ID)
	require.NoError(t, err)
	require.Equal(t, export.StatusRunning, mid.Status)
	require.Equal(t, 14, mid.RowsDone, "two chunks of 7 committed, the third rolled back")
	require.Equal(t, 53, *mid.RowsTotal)
	require.ErrorContains(t, work(ctx, newService(t, db, export.Options{ChunkRows: 7, AfterChunkFunc: killAt(5)}), e.ID, 2), "killed")
	// The third finishes.
	s := newService(t, db, export.Options{ChunkRows: 7})
	require.NoError(t, work(ctx, s, e.ID, 3))
	require.NoError(t, work(ctx, s, e.ID, 4), "a finished export's job does nothing more")

	done, err := s.Get(ctx, caller(owner), e.ID)
	require.NoError(t, err)
	require.Equal(t, export.StatusCompleted, done.Status)
	require.Equal(t, 53, done.RowsDone)
	require.Equal(t, 53, *done.RowsTotal)
	var seqs []int
	require.NoError(t, db.NewRaw("SELECT seq FROM export_chunks WHERE export_id = ? ORDER BY seq", e.ID).Scan(ctx, &seqs))
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, seqs, "53 rows in chunks of 7, each written once")

	rec := download(t, s, caller(owner), e.ID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	records := readCSV(t, rec.Body.Bytes())
	require.Equal(t, []string{"id", "email"}, records[0])
	var got []string
	for _, r := range records[1:] {
		got = append(got, r[0])
	}
	require.Equal(t, leads, got, "every lead once, newest purchase first")

	var audits int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM audit_logs WHERE action = 'EXPORT' AND resource_id = ? AND (new_values->>'rows')::int = 53",
		e.ID).Scan(ctx, &audits))
	require.Equal(t, 1, audits, "one EXPORT entry with the row count")
}

// Every cell that a spreadsheet would run as a formula comes back prefixed with a quote; every
// other cell comes back as it was.
func TestExportCSVRoundTripsAndDefusesFormulas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	dangerous := []string{"=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTab", "\rReturn", "\nFeed", `=HYPERLINK("http://x","y")`, "＝1+1"}
	plain := []string{"Zoë", `Smith, "Jr."`, "a=1", " =spaced", "O'Brien"}
	names := append(slices.Clone(dangerous), plain...)
	leads := dbtest.CreatePurchasedLeads(t, db, ws, len(names), dbtest.PurchasesOpts{Edit: func(i int, l *lead.New) {
		l.FirstName, l.CompanyName = names[i], names[i]
		l.Title = "line one\nline two"
	}})
	s := newService(t, db, export.Options{ChunkRows: 4})
	p := pipeline.NewService(db)
	_, err := p.BulkAddTags(ctx, caller(owner), pipeline.BulkInput{WorkspaceID: ws, Selection: pipeline.Selection{IDs: leads}},
		[]string{"=tag", "-minus"})
	require.NoError(t, err)

	_, err = p.BulkAssign(ctx, caller(owner), pipeline.BulkInput{WorkspaceID: ws, Selection: pipeline.Selection{IDs: leads[:3]}}, owner.ID)
	require.NoError(t, err)

	e, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	require.NoError(t, work(ctx, s, e.ID, 1))
	rec := download(t, s, caller(owner), e.ID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "text/csv; charset=utf-8", rec.Header().Get("Content-Type"))
	require.Regexp(t, `^attachment; filename=workspace-leads-\d{8}-\d{6}\.csv$`, rec.Header().Get("Content-Disposition"))
	require.Equal(t, fmt.Sprint(rec.Body.Len()), rec.Header().Get("Content-Length"))

	records := readCSV(t, rec.Body.Bytes())
	header := records[0]
	want := make([]string, len(export.DefaultLeadColumns))
	for i, c := range export.DefaultLeadColumns {
		want[i] = strings.ToLower(c)
	}
	require.Equal(t, want, header, "default columns: the lead's fields, then status, assignee e-mail, tags, purchased at")
	require.Len(t, records, 1+len(names))
	first, company, tags := column(t, header, "first_name"), column(t, header, "company_name"), column(t, header, "tags")
	byID := map[string][]string{}
	for _, r := range records[1:] {
		byID[r[column(t, header, "lead_id")]] = r
		// What a spreadsheet sees: no cell it would evaluate.
		for _, cell := range r {
			require.False(t, cell != "" && strings.ContainsRune("=+-@\t\r\n", rune(cell[0])), "cell %q would be a formula", cell)
		}
		require.Equal(t, "line one\nline two", r[column(t, header, "title")], "line breaks inside a cell survive")
		require.Equal(t, "'-minus, =tag", r[tags], "the cell is prefixed by its first character only")
		require.Equal(t, "NEW", r[column(t, header, "status")])
	}
	var leadIDs []string
	require.NoError(t, db.NewRaw("SELECT lead_id FROM workspace_leads WHERE id = ANY(?::uuid[]) ORDER BY purchased_at DESC, id DESC",
		"{"+strings.Join(leads, ",")+"}").Scan(ctx, &leadIDs))
	for i, id := range leadIDs {
		r := byID[id]
		require.NotNil(t, r, "lead %s exported", id)
		wantCell := names[i]
		if slices.Contains(dangerous, wantCell) {
			wantCell = "'" + wantCell
		}
		require.Equal(t, wantCell, r[first])
		require.Equal(t, wantCell, r[company])
		require.True(t, strings.HasPrefix(r[column(t, header, "partner")], "partner-"), "the partner's name")
		wantEmail := ""
		if i < 3 {
			wantEmail = owner.Email
		}
		require.Equal(t, wantEmail, r[column(t, header, "assignee_email")])
	}
}

// Exports are their creator's: another workspace's members get nothing and a 404, and so does a
// caller without a token a 401; platform admins (with MFA) may download any.
func TestExportAccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	s := newService(t, db, export.Options{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, member.ID, "MEMBER")
	dbtest.CreatePurchasedLeads(t, db, ws, 3, dbtest.PurchasesOpts{})
	_, stranger := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})

	_, err := s.ExportWorkspaceLeads(ctx, caller(stranger), export.LeadsInput{WorkspaceID: ws})
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
	_, err = s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws, Selection: pipeline.Selection{
		IDs: []string{"x"}}})
	require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
	_, err = s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws, Columns: []string{"SSN"}})
	require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)

	e, err := s.ExportWorkspaceLeads(ctx, caller(member), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	rec := download(t, s, caller(member), e.ID)
	require.Equal(t, http.StatusConflict, rec.Code, "not written yet")
	require.NoError(t, work(ctx, s, e.ID, 1))

	other := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, other.ID, "MEMBER")
	for name, c := range map[string]*auth.Caller{"another workspace's owner": caller(stranger), "another member": caller(other)} {
		got, err := s.Get(ctx, c, e.ID)
		require.NoError(t, err)
		require.Nil(t, got, name)
		require.Equal(t, http.StatusNotFound, download(t, s, c, e.ID).Code, name)
	}
	var denials int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM security_events WHERE kind = 'access_denied' AND details->>'exportId' = ?", e.ID).
		Scan(ctx, &denials))
	require.Equal(t, 2, denials, "each refused download is a security event")
	got, err := s.Get(ctx, caller(owner), e.ID)
	require.NoError(t, err)
	require.NotNil(t, got, "the workspace's owner sees its members' exports")
	require.Equal(t, http.StatusUnauthorized, download(t, s, nil, e.ID).Code)
	require.Equal(t, http.StatusNotFound, download(t, s, caller(member), "00000000-0000-0000-0000-000000000000").Code)

	rec = download(t, s, caller(member), e.ID)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Len(t, readCSV(t, rec.Body.Bytes()), 4)
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	require.Equal(t, http.StatusNotFound, download(t, s, &auth.Caller{UserID: admin.ID, IsPlatformAdmin: true}, e.ID).Code,
		"admin access needs MFA")
	require.Equal(t, http.StatusOK, download(t, s, &auth.Caller{UserID: admin.ID, IsPlatformAdmin: true, AAL: auth.AAL2}, e.ID).Code)

	list, err := s.List(ctx, caller(owner), "", pageArgs(10))
	require.NoError(t, err)
	require.Empty(t, list.Items, "without a workspace, one's own exports")
	list, err = s.List(ctx, caller(owner), ws, pageArgs(10))
	require.NoError(t, err)
	require.Len(t, list.Items, 1, "an owner lists the workspace's exports")
	list, err = s.List(ctx, caller(other), ws, pageArgs(10))
	require.NoError(t, err)
	require.Empty(t, list.Items, "a member lists its own")
	list, err = s.List(ctx, caller(member), ws, pageArgs(10))
	require.NoError(t, err)
	require.Len(t, list.Items, 1)
	_, err = s.List(ctx, caller(stranger), ws, pageArgs(10))
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
}

// An export expires after its retention: its download answers 404, and the clean-up deletes it with
// its file.
func TestExportExpiresAndIsPurged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	s := newService(t, db, export.Options{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	dbtest.CreatePurchasedLeads(t, db, ws, 2, dbtest.PurchasesOpts{})
	old, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	fresh, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	require.WithinDuration(t, old.CreatedAt.Add(export.DefaultRetention), old.ExpiresAt, 0)
	require.NoError(t, work(ctx, s, old.ID, 1))
	require.NoError(t, work(ctx, s, fresh.ID, 1))
	require.Equal(t, http.StatusOK, download(t, s, caller(owner), old.ID).Code)

	_, err = db.ExecContext(ctx, "UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = ?", old.ID)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, download(t, s, caller(owner), old.ID).Code)
	n, err := export.PurgeExpired(ctx, db)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	var left int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM export_chunks WHERE export_id = ?", old.ID).Scan(ctx, &left))
	require.Zero(t, left, "the file went with it")
	got, err := s.Get(ctx, caller(owner), fresh.ID)
	require.NoError(t, err)
	require.Equal(t, export.StatusCompleted, got.Status, "an export within its retention stays")
}

// The audit log's export follows the audit log's access rule and holds what a search returns.
func TestAuditLogExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	s := newService(t, db, export.Options{ChunkRows: 2})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws, member.ID, "MEMBER")
	for i := 0; i < 5; i++ {
		require.NoError(t, audit.Record(ctx, db, audit.Entry{ActorUserID: owner.ID, WorkspaceID: ws, Action: "test.thing",
			ResourceType: "thing", ResourceID: fmt.Sprint(i), Metadata: map[string]any{"note": "=cmd"}}))
	}
	_, err := s.ExportAuditLogs(ctx, caller(member), audit.Filter{WorkspaceID: ws})
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
	_, err = s.ExportAuditLogs(ctx, caller(owner), audit.Filter{})
	require.True(t, apperr.Is(err, apperr.Forbidden), "workspace owners name their workspace: %v", err)

	e, err := s.ExportAuditLogs(ctx, caller(owner), audit.Filter{WorkspaceID: ws, Action: "test.thing"})
	require.NoError(t, err)
	require.Equal(t, export.KindAuditLogs, e.Kind)
	require.NoError(t, work(ctx, s, e.ID, 1))
	rec := download(t, s, caller(owner), e.ID)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	records := readCSV(t, rec.Body.Bytes())
	require.Len(t, records, 6)
	require.Equal(t, "action", records[0][5])
	var resources []string
	for _, r := range records[1:] {
		require.Equal(t, "test.thing", r[5])
		require.Equal(t, ws, r[4])
		resources = append(resources, r[7])
	}
	require.ElementsMatch(t, []string{"0", "1", "2", "3", "4"}, resources)
}

// A stored request the job cannot read fails the export with a code instead of retrying.
func TestExportWithUnreadableRequestFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	s := newService(t, db, export.Options{})
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	e, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE exports SET params = '{"selection": {"ids": ["nope"]}, "columns": ["ID"]}' WHERE id = ?`, e.ID)
	require.NoError(t, err)
	err = work(ctx, s, e.ID, 1)
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, err, &cancel)
	got, err := s.Get(ctx, caller(owner), e.ID)
	require.NoError(t, err)
	require.Equal(t, export.StatusFailed, got.Status)
	require.Equal(t, "INVALID_INPUT", got.ErrorCode)
	require.Equal(t, http.StatusConflict, download(t, s, caller(owner), e.ID).Code)
}

func pageArgs(n int) page.Args { return page.Args{First: &n} }

// Through River: the job is queued with the export, a runner of another "instance" writes it,
// rowsDone moves chunk by chunk and each step is published as export.progress, and the EXPORT
// audit entry carries the row count.
func TestExportRunsOnRiverAndPublishesProgress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	dbtest.CreatePurchasedLeads(t, db, ws, 25, dbtest.PurchasesOpts{})
	s := newService(t, db, export.Options{ChunkRows: 10})
	url := dbtest.URL(dbtest.NameOf(ctx, db))

	progress := make(chan map[string]any, 16)
	ready := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = events.ListenReady(lctx, url, func() { close(ready) }, func(ev events.Event) {
			if ev.Type == export.ProgressEvent {
				var p map[string]any
				_ = json.Unmarshal(ev.Payload, &p)
				progress <- p
			}
		})
	}()
	<-ready

	e, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws})
	require.NoError(t, err)
	workers := river.NewWorkers()
	river.AddWorker(workers, export.NewWorker(s))
	r, err := jobs.NewRunner(ctx, url, workers, jobs.RunnerOptions{Concurrency: 2, FetchPollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	var done []float64
	for len(done) == 0 || done[len(done)-1] < 25 {
		select {
		case p := <-progress:
			require.Equal(t, e.ID, p["exportId"])
			require.Equal(t, ws, p["workspaceId"])
			done = append(done, p["rowsDone"].(float64))
			if p["rowsDone"].(float64) == 25 {
				require.Equal(t, export.StatusCompleted, p["status"])
			} else {
				require.Equal(t, export.StatusRunning, p["status"])
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("progress stopped at %v", done)
		}
	}
	require.Equal(t, []float64{10, 20, 25}, done, "rowsDone moves with every chunk")
	got, err := s.Get(ctx, caller(owner), e.ID)
	require.NoError(t, err)
	require.Equal(t, export.StatusCompleted, got.Status)
	require.NotNil(t, got.CompletedAt)
	var rows string
	require.NoError(t, db.NewRaw("SELECT metadata->>'rows' FROM audit_logs WHERE action = 'EXPORT' AND resource_id = ?", e.ID).Scan(ctx, &rows))
	require.Equal(t, "25", rows)
	require.Len(t, readCSV(t, download(t, s, caller(owner), e.ID).Body.Bytes()), 26)
}

// A list that fills its chunks exactly ends with its last full chunk, and an empty list is a file
// with the header alone.
func TestExportChunkBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	s := newService(t, db, export.Options{ChunkRows: 7})
	for _, n := range []int{0, 7, 14} {
		ws, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
		dbtest.CreatePurchasedLeads(t, db, ws, n, dbtest.PurchasesOpts{})
		e, err := s.ExportWorkspaceLeads(ctx, caller(owner), export.LeadsInput{WorkspaceID: ws, Columns: []string{"ID"}})
		require.NoError(t, err)
		require.NoError(t, work(ctx, s, e.ID, 1))
		var chunks int
		require.NoError(t, db.NewRaw("SELECT count(*) FROM export_chunks WHERE export_id = ?", e.ID).Scan(ctx, &chunks))
		require.Equal(t, max(1, n/7), chunks, "%d rows", n)
		got, err := s.Get(ctx, caller(owner), e.ID)
		require.NoError(t, err)
		require.Equal(t, export.StatusCompleted, got.Status)
		require.Equal(t, n, got.RowsDone)
		require.Len(t, readCSV(t, download(t, s, caller(owner), e.ID).Body.Bytes()), n+1)
	}
}
