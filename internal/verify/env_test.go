package verify_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/verify"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// commission is the marketplace's commission as the tests sell with it: 40 cents a credit, +2.5
// points at a 90 % pass rate, +5 at 95 %.
var commission = partner.Commission{CreditValueCents: 40, Tiers: []partner.BonusTier{{PassRate: 0.90, Points: 2.5}, {PassRate: 0.95, Points: 5}}}

// env is verification on a database with fake providers.
type env struct {
	t     *testing.T
	db    *bun.DB
	dbURL string // "" on the test's transaction, which a runner cannot see
	mv    *fake
	zb    *fake
	queue *jobs.Queue
}

// newTxEnv runs on the test's own transaction (dbtest.TxDB): for tests that run no River client.
func newTxEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, dbtest.TxDB(t), "")
}

// newEnv runs on a database of the test's own, for tests whose jobs River works (or that need
// real concurrency).
func newEnv(t *testing.T) *env {
	t.Helper()
	db := dbtest.FreshDB(t)
	return newEnvOn(t, db, dbtest.URL(dbtest.NameOf(context.Background(), db)))
}

func newEnvOn(t *testing.T, db *bun.DB, url string) *env {
	t.Helper()
	queue, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	return &env{t: t, db: db, dbURL: url, mv: newMV(t), zb: newZB(t), queue: queue}
}

// options are the service's options on the fakes: both providers, 3 slots, a 2 s timeout, 3
// attempts and a backoff of n minutes after attempt n; mod changes them.
func (e *env) options(mod ...func(*verify.Options)) verify.Options {
	o := verify.Options{
		MillionVerifierAPIKey: mvKey, MillionVerifierURL: e.mv.URL(), ZeroBounceAPIKey: zbKey, ZeroBounceURL: e.zb.URL(),
		Concurrency: 3, Timeout: 2 * time.Second, MaxAttempts: 3, Logger: quiet,
		Backoff: func(n int) time.Duration { return time.Duration(n) * time.Minute },
	}
	for _, m := range mod {
		m(&o)
	}
	return o
}

func (e *env) service(mod ...func(*verify.Options)) *verify.Service {
	return verify.NewService(e.db, e.queue, e.options(mod...))
}

// runner works svc's jobs (an instance) until the test ends.
func (e *env) runner(svc *verify.Service) *jobs.Runner {
	e.t.Helper()
	require.NotEmpty(e.t, e.dbURL, "a runner needs committed jobs: use newEnv")
	w := river.NewWorkers()
	svc.Workers(w)
	r, err := jobs.NewRunner(context.Background(), e.dbURL, w, jobs.RunnerOptions{
		Concurrency: 2, Queues: map[string]int{verify.Queue: svc.Concurrency()},
		FetchPollInterval: 100 * time.Millisecond, Logger: quiet,
	})
	require.NoError(e.t, err)
	require.NoError(e.t, r.Start(context.Background()))
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.Stop(ctx)
	})
	return r
}

func (e *env) marketplace() *marketplace.Service { return marketplace.NewService(e.db, commission) }

// pendingLead makes a PENDING lead of partnerID and returns its id and the address providers are
// asked about.
func (e *env) pendingLead(partnerID string, o dbtest.LeadOpts) (id, email string) {
	e.t.Helper()
	o.PartnerID = partnerID
	if o.VerificationStatus == "" {
		o.VerificationStatus = "PENDING"
	}
	id = dbtest.CreateLead(e.t, e.db, o)
	return id, scalar[string](e.t, e.db, "SELECT email_normalized FROM leads WHERE id = ?", id)
}

// leadState is a lead's verification columns.
type leadState struct {
	Status     string     `bun:"verification_status"`
	Attempts   int        `bun:"verification_attempts"`
	DueAt      *time.Time `bun:"verification_due_at"`
	Lease      *string    `bun:"verification_lease"`
	VerifiedAt *time.Time `bun:"verified_at"`
	// DueIn is verification_due_at - now() in seconds (now() is the test transaction's start
	// on a TxDB).
	DueIn *float64 `bun:"due_in"`
}

func (e *env) state(id string) leadState {
	e.t.Helper()
	var s leadState
	require.NoError(e.t, e.db.NewRaw(`SELECT verification_status, verification_attempts, verification_due_at,
		verification_lease::text AS verification_lease, verified_at,
		extract(epoch FROM verification_due_at - now())::float8 AS due_in FROM leads WHERE id = ?`, id).Scan(context.Background(), &s))
	return s
}

func scalar[T any](t *testing.T, db bun.IDB, query string, args ...any) T {
	t.Helper()
	var v T
	require.NoError(t, db.NewRaw(query, args...).Scan(context.Background(), &v))
	return v
}

func execSQL(t *testing.T, db bun.IDB, query string, args ...any) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), query, args...)
	require.NoError(t, err)
}

// balance is a workspace's credits, checked against the sum of its ledger.
func balance(t *testing.T, db bun.IDB, workspaceID string) int64 {
	t.Helper()
	b := scalar[int64](t, db, "SELECT credits FROM credit_balances WHERE workspace_id = ?", workspaceID)
	sum := scalar[int64](t, db, "SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE workspace_id = ?", workspaceID)
	require.Equal(t, sum, b, "balance must equal the sum of the ledger")
	return b
}

// waitFor polls cond until it holds or a minute passes (the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, time.Minute, 20*time.Millisecond, what)
}
