package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/page"
)

// mixedFile has n rows: every fifth repeats an earlier one, every seventh has a bad e-mail.
func mixedFile(n int, tag string) string {
	var b strings.Builder
	b.WriteString(header)
	for i := range n {
		switch {
		case i%7 == 6:
			fmt.Fprintf(&b, "not-an-email-%d,Ann,Lee,Acme,,,\n", i)
		case i%5 == 4:
			fmt.Fprintf(&b, "  %s%d@MIXED.example ,Ann,Lee,Acme,,,\n", tag, i/2)
		default:
			fmt.Fprintf(&b, "%s%d@mixed.example,Ann,Lee,Acme,,,\n", tag, i)
		}
	}
	return b.String()
}

var errKilled = errors.New("killed between batches")

// A job stopped between batches (its process killed, or its context cancelled) and run again
// ends with the same counts and rejections as a run that was never stopped, and no lead twice.
func TestUploadResumesAfterAnInterruption(t *testing.T) {
	t.Parallel()
	const rows = 61
	file := mixedFile(rows, "m")

	whole := newEnv(t, ingest.ServiceOptions{BatchRows: 4})
	ws := whole.supplier()
	want := whole.process(ws, whole.upload(ws, file, ingest.UploadInput{}).ID)
	wantRejections := summarize(whole.rejections(ws, want.ID))
	require.Equal(t, rows, want.RowsTotal)
	require.NotZero(t, want.DuplicateCount)
	require.NotZero(t, want.InvalidCount)

	e := newEnv(t, ingest.ServiceOptions{BatchRows: 4})
	s := e.supplier()
	u := e.upload(s, file, ingest.UploadInput{})
	batches := 0
	ingest.SetAfterBatch(e.svc, func(string) error {
		batches++
		if batches%3 == 0 {
			return errKilled
		}
		return nil
	})
	ctx := context.Background()
	runs := 0
	for done := false; !done; runs++ {
		var err error
		done, err = e.svc.Process(ctx, u.ID)
		if !done {
			require.ErrorIs(t, err, errKilled)
			mid := e.get(s, u.ID)
			require.Equal(t, ingest.StatusProcessing, mid.Status)
			require.Equal(t, mid.RowsProcessed, mid.AcceptedCount+mid.DuplicateCount+mid.InvalidCount)
			require.Equal(t, mid.AcceptedCount, e.leadCount(s.PartnerID), "what a batch counted is what it committed")
		}
	}
	require.Greater(t, runs, 4)

	// And once with a cancelled context: the run stops, and the next one goes on.
	ctx2, cancel := context.WithCancel(ctx)
	e2 := newEnv(t, ingest.ServiceOptions{BatchRows: 4})
	s2 := e2.supplier()
	u2 := e2.upload(s2, file, ingest.UploadInput{})
	ingest.SetAfterBatch(e2.svc, func(string) error { cancel(); return nil })
	done, err := e2.svc.Process(ctx2, u2.ID)
	require.False(t, done)
	require.ErrorIs(t, err, context.Canceled)
	ingest.SetAfterBatch(e2.svc, nil)

	for _, r := range []struct {
		e *env
		s supplier
		u *ingest.Upload
	}{{e, s, u}, {e2, s2, e2.process(s2, u2.ID)}} {
		got := r.e.get(r.s, r.u.ID)
		require.Equal(t, ingest.StatusCompleted, got.Status)
		require.Equal(t, counts(want), counts(got))
		require.Equal(t, wantRejections, summarize(r.e.rejections(r.s, got.ID)))
		require.Equal(t, want.AcceptedCount, r.e.leadCount(r.s.PartnerID), "no lead inserted twice")
		require.Equal(t, 1, r.e.count("SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'lead_upload.completed'", got.ID))
	}
}

// A dry run checks, counts and records every rejection, dedup within the file across batches
// included, and inserts no lead: the same counts as the real upload that follows it.
func TestUploadDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 3})
	s, other := e.supplier(), e.supplier()
	e.process(other, e.upload(other, header+"m0@mixed.example,Ann,Lee,Acme,,,\n", ingest.UploadInput{}).ID)
	file := mixedFile(30, "m")

	dry := e.process(s, e.upload(s, file, ingest.UploadInput{DryRun: true}).ID)
	require.True(t, dry.DryRun)
	require.Equal(t, ingest.StatusCompleted, dry.Status)
	require.Zero(t, e.leadCount(s.PartnerID), "a dry run inserts nothing")
	dryRejections := summarize(e.rejections(s, dry.ID))
	require.Contains(t, dryRejections, got{2, ingest.ReasonDuplicateCrossPartner, ""})
	require.Contains(t, dryRejections, got{6, ingest.ReasonDuplicateInFile, ""}, "row 6 repeats row 4, a batch earlier")

	real := e.process(s, e.upload(s, file, ingest.UploadInput{}).ID)
	require.Equal(t, counts(dry), counts(real))
	require.Equal(t, dryRejections, summarize(e.rejections(s, real.ID)))
	require.Equal(t, real.AcceptedCount, e.leadCount(s.PartnerID))
}

// The same idempotency key with the same file and input returns the first upload; with another
// file, or the same file and other input, it is refused.
func TestUploadIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{})
	s := e.supplier()
	file := mixedFile(10, "i")
	first := e.upload(s, file, ingest.UploadInput{IdempotencyKey: "upload-1", FileName: "a.csv"})
	again := e.upload(s, file, ingest.UploadInput{IdempotencyKey: "upload-1", FileName: "renamed.csv"})
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, 1, e.count("SELECT count(*) FROM lead_uploads WHERE partner_id = ?", s.PartnerID))
	require.Equal(t, 1, e.count("SELECT count(*) FROM river_job WHERE args->>'upload_id' = ?", first.ID))

	for name, in := range map[string]ingest.UploadInput{
		"another file":          {File: strings.NewReader(mixedFile(11, "i"))},
		"another dryRun":        {File: strings.NewReader(file), DryRun: true},
		"another default price": {File: strings.NewReader(file), DefaultPriceCredits: new(7)},
	} {
		in.PartnerID, in.IdempotencyKey = s.PartnerID, "upload-1"
		_, err := e.svc.Upload(context.Background(), s.Caller, in)
		require.Equal(t, apperr.IdempotencyKeyReused, apperr.CodeOf(err), name)
	}
	// Processed meanwhile, the replay shows the upload as it is now.
	e.process(s, first.ID)
	again = e.upload(s, file, ingest.UploadInput{IdempotencyKey: "upload-1"})
	require.Equal(t, ingest.StatusCompleted, again.Status)
	// A refused file is an upload too, replayed like any other.
	failed := e.upload(s, header, ingest.UploadInput{IdempotencyKey: "upload-2"})
	require.Equal(t, ingest.StatusFailed, failed.Status)
	require.Equal(t, failed.ID, e.upload(s, header, ingest.UploadInput{IdempotencyKey: "upload-2"}).ID)
	// Without a key, the same file is uploaded twice.
	require.NotEqual(t, e.upload(s, file, ingest.UploadInput{}).ID, e.upload(s, file, ingest.UploadInput{}).ID)
}

// Only the partner's members and platform admins (with MFA) upload for a partner and see its
// uploads, rejections and stats; anyone else gets FORBIDDEN, or nothing where an upload's
// existence would show.
func TestUploadAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{})
	ctx := context.Background()
	owner, other := e.supplier(), e.supplier()
	_, buyerUser := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	buyer := &auth.Caller{UserID: buyerUser.ID}
	adminUser := dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true})
	adminAAL1 := &auth.Caller{UserID: adminUser.ID, IsPlatformAdmin: true, AAL: "aal1"}
	adminAAL2 := &auth.Caller{UserID: adminUser.ID, IsPlatformAdmin: true, AAL: auth.AAL2}
	u := e.process(owner, e.upload(owner, mixedFile(10, "x"), ingest.UploadInput{}).ID)

	upload := func(c *auth.Caller) error {
		_, err := e.svc.Upload(ctx, c, ingest.UploadInput{PartnerID: owner.PartnerID, File: strings.NewReader(mixedFile(3, "y"))})
		return err
	}
	for name, c := range map[string]*auth.Caller{"another partner": other.Caller, "a buyer": buyer, "an admin without MFA": adminAAL1} {
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(upload(c)), name)
		got, err := e.svc.Get(ctx, c, u.ID)
		require.NoError(t, err, name)
		require.Nil(t, got, name)
		_, err = e.svc.List(ctx, c, owner.PartnerID, page.Args{})
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), name)
		p, err := e.svc.Rejections(ctx, c, u.ID, "", page.Args{})
		require.NoError(t, err, name)
		require.Empty(t, p.Items, name)
		_, err = e.svc.Stats(ctx, c, owner.PartnerID)
		require.Equal(t, apperr.Forbidden, apperr.CodeOf(err), name)
	}
	require.Equal(t, apperr.Unauthenticated, apperr.CodeOf(upload(nil)))
	require.Equal(t, 6, e.count(`SELECT count(*) FROM security_events WHERE kind = 'access_denied' AND details->>'resourceId' = ?`, u.ID),
		"each probe of the upload (read, rejections) by someone else is a security event")

	require.NoError(t, upload(adminAAL2), "platform admins with MFA upload for any partner")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_logs WHERE action = 'lead_upload.created' AND actor_type = 'PLATFORM_ADMIN'
		AND actor_user_id = ?`, adminUser.ID))
	got, err := e.svc.Get(ctx, adminAAL2, u.ID)
	require.NoError(t, err)
	require.Equal(t, u.ID, got.ID)
	list, err := e.svc.List(ctx, owner.Caller, owner.PartnerID, page.Args{})
	require.NoError(t, err)
	require.Len(t, list.Items, 2, "newest first")
	require.Equal(t, u.ID, list.Items[1].ID)
	_, err = e.svc.Get(ctx, owner.Caller, "not-an-id")
	require.Equal(t, apperr.InvalidInput, apperr.CodeOf(err))
}

// The upload's job, run by River: a unique job per upload, working it to the end; when its last
// attempt fails the upload is FAILED with PROCESSING_FAILED and its staging goes.
func TestUploadWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 3})
	ctx := context.Background()
	s := e.supplier()
	w := ingest.NewWorker(e.svc)
	u := e.upload(s, mixedFile(10, "w"), ingest.UploadInput{})
	var jobID int64
	require.NoError(t, e.db.NewRaw("SELECT id FROM river_job WHERE kind = ? AND args->>'upload_id' = ?",
		ingest.ProcessArgs{}.Kind(), u.ID).Scan(ctx, &jobID))
	job := &river.Job[ingest.ProcessArgs]{JobRow: &rivertype.JobRow{ID: jobID, Attempt: 1, MaxAttempts: ingest.ProcessMaxAttempts},
		Args: ingest.ProcessArgs{UploadID: u.ID}}
	require.NoError(t, w.Work(ctx, job))
	require.Equal(t, ingest.StatusCompleted, e.get(s, u.ID).Status)
	require.Less(t, w.Timeout(job), 10*time.Minute, "below the rescue of stuck jobs")

	broken := e.upload(s, mixedFile(10, "v"), ingest.UploadInput{})
	_, err := e.db.ExecContext(ctx, "UPDATE lead_uploads SET header = '{nonsense}' WHERE id = ?", broken.ID)
	require.NoError(t, err)
	job.Args.UploadID = broken.ID
	require.Error(t, w.Work(ctx, job), "a failing attempt is retried")
	require.Equal(t, ingest.StatusQueued, e.get(s, broken.ID).Status, "nothing of the failed attempt stays")
	job.Attempt = job.MaxAttempts
	require.Error(t, w.Work(ctx, job))
	got := e.get(s, broken.ID)
	require.Equal(t, ingest.StatusFailed, got.Status)
	require.Equal(t, string(ingest.CodeProcessingFailed), *got.ErrorCode)
	require.Zero(t, e.count("SELECT count(*) FROM lead_upload_rows WHERE upload_id = ?", broken.ID))
	require.Equal(t, 1, e.count("SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'lead_upload.failed'", broken.ID))

	job.Args.UploadID = "6f1f7c3e-0000-4000-8000-000000000000"
	var cancelled *river.JobCancelError
	require.ErrorAs(t, w.Work(ctx, job), &cancelled, "a job without its upload is cancelled, not retried")
}

// Every change of an upload is published (lead_upload.progress) when it commits: queued, each
// batch, completed.
func TestUploadPublishesProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen []map[string]any
	ready := make(chan struct{})
	go func() {
		_ = events.ListenReady(ctx, dbtest.URL(dbtest.NameOf(ctx, e.db)), func() { close(ready) }, func(ev events.Event) {
			if ev.Type != ingest.ProgressEvent {
				return
			}
			var p map[string]any
			if json.Unmarshal(ev.Payload, &p) == nil {
				mu.Lock()
				seen = append(seen, p)
				mu.Unlock()
			}
		})
	}()
	<-ready
	s := e.supplier()
	u := e.process(s, e.upload(s, mixedFile(10, "p"), ingest.UploadInput{}).ID)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0 && seen[len(seen)-1]["status"] == ingest.StatusCompleted
	}, 10*time.Second, 20*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, ingest.StatusQueued, seen[0]["status"])
	require.Len(t, seen, 4, "queued, two full batches, then the last batch completing it")
	last := seen[len(seen)-1]
	require.Equal(t, u.ID, last["uploadId"])
	require.EqualValues(t, 10, last["rowsProcessed"])
	require.EqualValues(t, u.AcceptedCount, last["acceptedCount"])
	for i := 1; i < len(seen); i++ {
		require.GreaterOrEqual(t, seen[i]["rowsProcessed"], seen[i-1]["rowsProcessed"])
	}
}

// An upload whose job ended without finishing it (discarded by River's rescuer after its process
// died in the last attempt) is FAILED by the hourly clean-up; one whose job is alive is not.
func TestFailAbandonedUploads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{})
	ctx := context.Background()
	s := e.supplier()
	abandoned := e.upload(s, mixedFile(5, "ab"), ingest.UploadInput{})
	alive := e.upload(s, mixedFile(5, "al"), ingest.UploadInput{})
	_, err := e.db.ExecContext(ctx, `UPDATE lead_uploads SET status = 'PROCESSING', updated_at = now() - interval '1 hour'
		WHERE id IN (?, ?)`, abandoned.ID, alive.ID)
	require.NoError(t, err)
	_, err = e.db.ExecContext(ctx, "UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'upload_id' = ?", abandoned.ID)
	require.NoError(t, err)

	n, err := e.svc.FailAbandonedUploads(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got := e.get(s, abandoned.ID)
	require.Equal(t, ingest.StatusFailed, got.Status)
	require.Equal(t, string(ingest.CodeProcessingFailed), *got.ErrorCode)
	require.Zero(t, e.count("SELECT count(*) FROM lead_upload_rows WHERE upload_id = ?", abandoned.ID))
	require.Equal(t, ingest.StatusProcessing, e.get(s, alive.ID).Status)
	n, err = e.svc.FailAbandonedUploads(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}
