package verify_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// childDatabaseEnv, when set, makes the test binary a verification instance on that database
// (runChild) instead of running tests: the process TestKilledMidSweep_LosesNoLead kills.
const (
	childDatabaseEnv = "VERIFY_TEST_CHILD_DATABASE_URL"
	childMVEnv       = "VERIFY_TEST_CHILD_MILLIONVERIFIER_URL"
)

// childLease is the lease of the child's leads: short, so that the test need not wait long for
// them to be taken again once the child is dead.
const childLease = 2 * time.Second

// runChild is an instance as `leadmarket serve` runs verification: a River client working the
// verify queue, after a sweep that takes every pending lead. It runs until it is killed.
func runChild(url string) int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "verify child:", err)
		return 2
	}
	bdb, err := db.Open(ctx, url, 10)
	if err != nil {
		return fail(err)
	}
	queue, err := jobs.NewQueue(bdb.DB)
	if err != nil {
		return fail(err)
	}
	svc := verify.NewService(bdb, queue, verify.Options{
		MillionVerifierAPIKey: mvKey, MillionVerifierURL: os.Getenv(childMVEnv), Concurrency: 3,
		Timeout: time.Minute, BatchSize: 10, Lease: childLease, Logger: quiet,
	})
	w := river.NewWorkers()
	svc.Workers(w)
	r, err := jobs.NewRunner(ctx, url, w, jobs.RunnerOptions{Concurrency: 2, Queues: map[string]int{verify.Queue: 3}, Logger: quiet})
	if err != nil {
		return fail(err)
	}
	if err := r.Start(ctx); err != nil {
		return fail(err)
	}
	if _, err := svc.Sweep(ctx); err != nil {
		return fail(err)
	}
	select {} // until SIGKILL
}

// A process killed mid-sweep (SIGKILL: no clean-up, its River jobs left running, calls in flight
// cut off) loses no lead: right after, each lead is verified (with its one verdict) or still
// pending; another instance then takes the dead one's leads once their lease runs out and
// verifies them all, none twice.
func TestKilledMidSweep_LosesNoLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	const leads, answered = 40, 12
	ids := make([]string, leads)
	for i := range ids {
		ids[i], _ = e.pendingLead(partnerID, dbtest.LeadOpts{})
	}
	// The provider answers the first calls and then hangs, as if it had slowed down when the
	// process died.
	release := e.mv.holdCallsAfter(answered)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childDatabaseEnv+"="+e.dbURL, childMVEnv+"="+e.mv.URL())
	child.Stderr = os.Stderr
	require.NoError(t, child.Start())
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = child.Process.Kill()
			if err := <-exited; err == nil {
				t.Log("the child exited by itself")
			}
		}
	})
	waitFor(t, "the child verifies some leads and has calls in flight", func() bool {
		return scalar[int](t, e.db, "SELECT count(*) FROM leads WHERE partner_id = ? AND verification_status = 'VALID'", partnerID) >= answered-3 &&
			e.mv.inFlight.Load() == 3
	})
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	killed = true
	require.Error(t, <-exited, "the child dies of the signal")

	type row struct {
		ID       string `bun:"id"`
		Status   string `bun:"verification_status"`
		Verdicts int    `bun:"verdicts"`
		Calls    int    `bun:"calls"`
	}
	states := func() []row {
		var rs []row
		require.NoError(t, e.db.NewRaw(`SELECT l.id, l.verification_status,
				(SELECT count(*) FROM lead_verifications v WHERE v.lead_id = l.id AND v.status IS NOT NULL) AS verdicts,
				(SELECT count(*) FROM lead_verifications v WHERE v.lead_id = l.id) AS calls
			FROM leads AS l WHERE l.partner_id = ?`, partnerID).Scan(ctx, &rs))
		return rs
	}
	verified := 0
	for _, r := range states() {
		switch r.Status {
		case "VALID":
			verified++
			require.Equal(t, 1, r.Verdicts, "lead %s: a verdict is written with its call", r.ID)
		case "PENDING":
			require.Zero(t, r.Calls, "lead %s: nothing half-written", r.ID)
		default:
			t.Fatalf("lead %s: %s after the kill", r.ID, r.Status)
		}
	}
	require.Positive(t, verified)
	require.Less(t, verified, leads, "the child died with work left")
	t.Logf("killed with %d of %d leads verified and %d calls in flight", verified, leads, 3)

	// Another instance takes over: the dead one's leases run out and the sweep takes its leads
	// again (the dead one's jobs that never started are worked too, with their own leases).
	release()
	time.Sleep(childLease)
	svc := e.service(func(o *verify.Options) { o.BatchSize = 10 })
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	require.Positive(t, n)
	require.LessOrEqual(t, n, leads-verified, "only leads the dead process held")
	e.runner(svc)
	waitFor(t, "every lead verified", func() bool {
		return scalar[int](t, e.db, "SELECT count(*) FROM leads WHERE partner_id = ? AND verification_status = 'VALID'", partnerID) == leads
	})
	for _, r := range states() {
		require.Equal(t, 1, r.Verdicts, "lead %s verified once", r.ID)
	}
}
