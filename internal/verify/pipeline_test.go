package verify_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// A job's leads get their verdicts, every call is kept with the provider's raw answer, and the
// partner's pass rate follows the verdicts: the next sale's commission has the bonus it earns.
func TestVerifyLeads_VerdictsCallsAndPassRate(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})

	// 19 valid addresses and one invalid one: a pass rate of 95 %, worth +5 points.
	var ids []string
	for range 19 {
		id, _ := e.pendingLead(partnerID, dbtest.LeadOpts{})
		ids = append(ids, id)
	}
	invalidID, invalidEmail := e.pendingLead(partnerID, dbtest.LeadOpts{})
	e.mv.on(invalidEmail, answer{Body: mvBody("invalid")})
	ids = append(ids, invalidID)
	rate, err := verify.PassRate(ctx, e.db, partnerID)
	require.NoError(t, err)
	require.Nil(t, rate, "no rate before a lead is verified")

	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: ids, Token: uuid.NewString()}))
	for _, id := range ids {
		s := e.state(id)
		want := lead.StatusValid
		if id == invalidID {
			want = lead.StatusInvalid
		}
		require.Equal(t, want, s.Status)
		require.NotNil(t, s.VerifiedAt)
		require.Nil(t, s.DueAt, "the verification is closed")
		require.Nil(t, s.Lease)
		calls, err := verify.Calls(ctx, e.db, id)
		require.NoError(t, err)
		require.Len(t, calls, 1)
		require.Equal(t, verify.ProviderMillionVerifier, calls[0].Provider)
		require.Equal(t, verify.PurposePipeline, calls[0].Purpose)
		require.Equal(t, 1, calls[0].Attempt)
		require.Equal(t, want, *calls[0].Status)
		require.NotNil(t, calls[0].Raw)
		require.Contains(t, *calls[0].Raw, `"resultcode"`)
	}
	require.Equal(t, 20, e.mv.callsWithKey(mvKey))
	require.Zero(t, e.zb.totalCalls.Load())

	rate, err = verify.PassRate(ctx, e.db, partnerID)
	require.NoError(t, err)
	require.InDelta(t, 0.95, *rate, 1e-9)
	require.InDelta(t, 0.95, scalar[float64](t, e.db, "SELECT verification_pass_rate::float8 FROM partners WHERE id = ?", partnerID), 1e-9,
		"the commission's pass rate is the real one")

	// The INVALID lead is not for sale; a valid one sells at 30 + 5 % commission.
	ws, owner := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{Credits: 100})
	caller := &auth.Caller{UserID: owner.ID}
	_, err = e.marketplace().PurchaseLeads(ctx, caller, marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: []string{invalidID}, IdempotencyKey: uuid.NewString()})
	require.True(t, apperr.Is(err, apperr.NotFound), "%v", err)
	res, err := e.marketplace().PurchaseLeads(ctx, caller, marketplace.PurchaseInput{WorkspaceID: ws, LeadIDs: ids[:1], IdempotencyKey: uuid.NewString()})
	require.NoError(t, err)
	require.InDelta(t, 0.35, scalar[float64](t, e.db, "SELECT rate::float8 FROM partner_earnings WHERE lead_purchase_id = ?", res.Purchases[0].ID), 1e-9)

	// verifiedAt reaches the lead as buyers read it.
	l, err := lead.Visible(ctx, e.db, lead.Viewer{UserID: owner.ID}, ids[0])
	require.NoError(t, err)
	require.NotNil(t, l.VerifiedAt)
}

// Both providers failing is one failed attempt: the lead stays PENDING and comes back after the
// backoff (not before, neither to a job nor to the sweep); after the last attempt it is UNKNOWN
// with the last error kept.
func TestVerifyLeads_AttemptsBackoffAndUnknown(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	id, email := e.pendingLead(partnerID, dbtest.LeadOpts{})
	e.mv.on(email, answer{Status: http.StatusInternalServerError, Body: "oops"})
	e.zb.on(email, answer{Status: http.StatusTooManyRequests, Body: `{"error":"Too many requests"}`})

	for attempt := 1; attempt <= 3; attempt++ {
		require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{id}, Token: uuid.NewString()}))
		s := e.state(id)
		require.Equal(t, attempt, s.Attempts)
		require.Nil(t, s.Lease)
		if attempt < 3 {
			require.Equal(t, lead.StatusPending, s.Status, "attempt %d", attempt)
			require.Nil(t, s.VerifiedAt)
			require.NotNil(t, s.DueIn)
			require.InDelta(t, float64(attempt*60), *s.DueIn, 1, "the backoff after attempt %d", attempt)
			// Not due: neither a job nor the sweep takes it.
			require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{id}, Token: uuid.NewString()}))
			n, err := svc.Sweep(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
			require.Equal(t, attempt, e.mv.callsOf(email), "no call during the backoff")
			execSQL(t, e.db, "UPDATE leads SET verification_due_at = now() - interval '1 second' WHERE id = ?", id) // as if it passed
			continue
		}
		require.Equal(t, lead.StatusUnknown, s.Status, "UNKNOWN after the last attempt")
		require.NotNil(t, s.VerifiedAt)
		require.Nil(t, s.DueAt)
	}
	calls, err := verify.Calls(ctx, e.db, id)
	require.NoError(t, err)
	require.Len(t, calls, 6, "both providers, three attempts")
	for i, c := range calls {
		require.Equal(t, i/2+1, c.Attempt)
		require.True(t, c.CheckFailed)
		require.Nil(t, c.Status)
	}
	require.Contains(t, *calls[5].Error, "HTTP 429: Too many requests", "the last error is kept")
	require.Equal(t, verify.ProviderZeroBounce, calls[5].Provider)
	require.Equal(t, 3, e.mv.callsOf(email))
	require.Equal(t, 3, e.zb.callsOf(email))

	// A closed verification is not taken again.
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	st, err := svc.Stats(ctx, &auth.Caller{UserID: dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true}).ID, IsPlatformAdmin: true, AAL: auth.AAL2})
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.FailuresLast24h, int64(3))
	require.Len(t, st.ByProvider, 2)
	for _, p := range st.ByProvider {
		require.GreaterOrEqual(t, p.Failures, int64(3), p.Provider)
	}
}

// A job keeps its leads while its lease lasts: another token (a second job, the sweep) does not
// take them, and a job that lost its lease (it ran past it and the sweep took the leads again)
// writes nothing and calls nobody.
func TestVerifyLeads_LeasesKeepLeadsToOneJob(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	id, email := e.pendingLead(partnerID, dbtest.LeadOpts{})

	first := uuid.NewString()
	taken, err := lead.TakeForVerification(ctx, e.db, []string{id}, first, time.Hour)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	again, err := lead.TakeForVerification(ctx, e.db, []string{id}, uuid.NewString(), time.Hour)
	require.NoError(t, err)
	require.Empty(t, again, "held by the first job")
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "held by the first job")

	// The first job's lease runs out: the sweep takes the lead under its own.
	execSQL(t, e.db, "UPDATE leads SET verification_due_at = now() - interval '1 second' WHERE id = ?", id)
	n, err = svc.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	swept := *e.state(id).Lease
	require.NotEqual(t, first, swept)

	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{id}, Token: first}))
	require.Zero(t, e.mv.callsOf(email), "the job that lost its lease does nothing")
	require.Equal(t, lead.StatusPending, e.state(id).Status)
	v, err := lead.SetVerdict(ctx, e.db, id, first, lead.StatusValid)
	require.NoError(t, err)
	require.False(t, v.Applied, "a verdict under a lost lease is not written")

	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{id}, Token: swept}))
	require.Equal(t, 1, e.mv.callsOf(email))
	require.Equal(t, lead.StatusValid, e.state(id).Status)
}

// EnqueueTx inserts the jobs in the caller's transaction (none if it rolls back), on the verify
// queue in batches; with verification off it inserts nothing and the leads stay PENDING.
func TestEnqueueTx(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service(func(o *verify.Options) { o.BatchSize = 100 })
	ids := make([]string, 250)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	jobsOf := func(db bun.IDB) int {
		return scalar[int](t, db, `SELECT count(*) FROM river_job WHERE kind = 'verify_leads' AND queue = 'verify'
			AND args->>'purpose' = 'PIPELINE' AND args->'lead_ids'->>0 = ANY(?::text[])`,
			pgdialect.Array([]string{ids[0], ids[100], ids[200]}))
	}

	tx, err := e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	n, err := svc.EnqueueTx(ctx, tx, ids)
	require.NoError(t, err)
	require.Equal(t, 3, n, "batches of 100")
	require.Equal(t, 3, jobsOf(tx))
	require.NoError(t, tx.Rollback())
	require.Zero(t, jobsOf(e.db), "no job without the transaction")

	tx, err = e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = svc.EnqueueTx(ctx, tx, ids)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.Equal(t, 3, jobsOf(e.db))
	require.Equal(t, 250, scalar[int](t, e.db, `SELECT sum(jsonb_array_length(args->'lead_ids')) FROM river_job
		WHERE kind = 'verify_leads' AND args->'lead_ids'->>0 = ANY(?::text[])`, pgdialect.Array([]string{ids[0], ids[100], ids[200]})))

	off := verify.NewService(e.db, e.queue, verify.Options{Logger: quiet})
	tx, err = e.db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	n, err = off.EnqueueTx(ctx, tx, []string{uuid.NewString()})
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = off.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, off.PeriodicJobs(), "no sweep while verification is off")
	_, err = off.Reverify(ctx, &auth.Caller{IsPlatformAdmin: true, AAL: auth.AAL2}, []string{uuid.NewString()})
	require.True(t, apperr.Is(err, apperr.Unavailable), "%v", err)
}

// An admin's re-verification reopens leads whatever their status: each keeps its status until
// the new verdict, which then replaces it.
func TestReverify(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	id, email := e.pendingLead(partnerID, dbtest.LeadOpts{VerificationStatus: "VALID"})
	e.mv.on(email, answer{Body: mvBody("catch_all")})
	admin := &auth.Caller{UserID: dbtest.CreateUser(t, e.db, dbtest.UserOpts{IsPlatformAdmin: true}).ID, IsPlatformAdmin: true, AAL: auth.AAL2}

	_, err := svc.Reverify(ctx, &auth.Caller{UserID: admin.UserID}, []string{id})
	require.True(t, apperr.Is(err, apperr.Forbidden))
	_, err = svc.Reverify(ctx, &auth.Caller{UserID: admin.UserID, IsPlatformAdmin: true}, []string{id})
	require.True(t, apperr.Is(err, apperr.Forbidden), "admins need aal2")
	_, err = svc.Reverify(ctx, admin, []string{"nope"})
	require.True(t, apperr.Is(err, apperr.InvalidInput))

	n, err := svc.Reverify(ctx, admin, []string{id, id, uuid.NewString()})
	require.NoError(t, err)
	require.Equal(t, 1, n, "the unknown id is left out, the repeated one counted once")
	s := e.state(id)
	require.Equal(t, lead.StatusValid, s.Status, "the status stands until the new verdict")
	require.NotNil(t, s.Lease)
	var args verify.LeadsArgs
	raw := scalar[[]byte](t, e.db, `SELECT args FROM river_job WHERE kind = 'verify_leads' AND args->>'token' = ?`, *s.Lease)
	require.NoError(t, json.Unmarshal(raw, &args))
	require.Equal(t, verify.PurposeReverify, args.Purpose)
	require.True(t, scalar[bool](t, e.db, `SELECT EXISTS (SELECT 1 FROM audit_logs WHERE action = 'leads.reverification_requested' AND actor_user_id = ?)`, admin.UserID))

	require.NoError(t, svc.VerifyLeads(ctx, args))
	require.Equal(t, lead.StatusCatchAll, e.state(id).Status)
	calls, err := verify.Calls(ctx, e.db, id)
	require.NoError(t, err)
	require.Equal(t, verify.PurposeReverify, calls[len(calls)-1].Purpose)
}

// verificationStats: admins only; counts by status (every status listed), verdicts of the last
// day, provider calls, and the calls in flight (slots held) right now.
func TestStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	svc := e.service()
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	var ids []string
	for range 3 {
		id, _ := e.pendingLead(partnerID, dbtest.LeadOpts{})
		ids = append(ids, id)
	}
	e.pendingLead(partnerID, dbtest.LeadOpts{})
	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: ids, Token: uuid.NewString()}))

	_, err := svc.Stats(ctx, &auth.Caller{UserID: uuid.NewString()})
	require.True(t, apperr.Is(err, apperr.Forbidden))
	admin := &auth.Caller{IsPlatformAdmin: true, AAL: auth.AAL2}

	// A call in flight holds a slot while it runs.
	release := e.mv.holdCalls()
	held := make(chan error, 1)
	go func() {
		held <- verify.NewLimiter(e.db, 3).Do(ctx, func() {
			_ = verify.Chain{&verify.MillionVerifier{BaseURL: e.mv.URL(), APIKey: mvKey, Timeout: 5 * time.Second}}.Check(ctx, "held@example.com")
		})
	}()
	waitFor(t, "the call is in flight", func() bool { return e.mv.inFlight.Load() == 1 })
	st, err := svc.Stats(ctx, admin)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.InFlight)
	release()
	require.NoError(t, <-held)

	require.EqualValues(t, 1, st.Pending)
	require.EqualValues(t, 3, st.VerifiedLast24h)
	require.Len(t, st.ByStatus, len(lead.VerificationStatuses))
	byStatus := map[string]int64{}
	for _, c := range st.ByStatus {
		byStatus[c.Status] = c.Count
	}
	require.Equal(t, map[string]int64{"PENDING": 1, "VALID": 3, "INVALID": 0, "CATCH_ALL": 0, "RISKY": 0, "UNKNOWN": 0}, byStatus)
	require.Equal(t, []verify.ProviderCount{{Provider: "millionverifier", Calls: 3}, {Provider: "zerobounce"}}, st.ByProvider)
	require.Zero(t, st.FailuresLast24h)
	st, err = svc.Stats(ctx, admin)
	require.NoError(t, err)
	require.Zero(t, st.InFlight, "the slot was given back")
}

// A partner's pass rate is recounted at most every PassRateEvery while its leads are verified:
// the verdicts in between are counted when that time has passed.
func TestPassRate_RecountedAtMostEveryPassRateEvery(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t)
	ctx := context.Background()
	svc := e.service(func(o *verify.Options) { o.PassRateEvery = 2 * time.Second })
	partnerID := dbtest.CreatePartner(t, e.db, dbtest.PartnerOpts{})
	rate := func() float64 {
		return scalar[float64](t, e.db, "SELECT verification_pass_rate::float8 FROM partners WHERE id = ?", partnerID)
	}
	valid, _ := e.pendingLead(partnerID, dbtest.LeadOpts{})
	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{valid}, Token: uuid.NewString()}))
	require.InDelta(t, 1.0, rate(), 1e-9, "the first recount is at once")

	invalid, email := e.pendingLead(partnerID, dbtest.LeadOpts{})
	e.mv.on(email, answer{Body: mvBody("invalid")})
	require.NoError(t, svc.VerifyLeads(ctx, verify.LeadsArgs{LeadIDs: []string{invalid}, Token: uuid.NewString()}))
	require.InDelta(t, 1.0, rate(), 1e-9, "recounted a moment ago: this one waits")
	waitFor(t, "the recount after PassRateEvery", func() bool { return rate() > 0.49 && rate() < 0.51 })
}
