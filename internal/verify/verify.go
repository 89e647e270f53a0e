// Package verify verifies leads' e-mail addresses (DESIGN §6) and gives buyers their credits
// back for a bought address that turns out dead.
//
// The pipeline asks MillionVerifier first and ZeroBounce when MillionVerifier fails or cannot
// tell, keeps every call (lead_verifications), and writes each lead's verdict (lead.SetVerdict)
// under the lease of the River job that took it, so that a job that dies anywhere loses no lead:
// whatever it did not write stays open and is taken again. Jobs come from a completed upload
// (EnqueueTx, in the transaction that completes it), from the periodic sweep (pending leads, and
// failed ones whose backoff has passed) and from admins (Reverify). At most VERIFY_CONCURRENCY
// provider calls are in flight across every instance (Limiter).
//
// A lead found INVALID stops being sellable at once (the sellable rule), and every purchase of it
// within BOUNCE_REFUND_WINDOW is refunded once (ledger REFUND "bounce:<purchase>") with its
// partner's commission reversed, in the verdict's transaction. Buyers ask for it with a bounce
// report (ReportBounce), which re-checks the address with a fresh provider call. The partners'
// pass rates (valid / verified) follow the verdicts, so each new sale's commission bonus is the
// real one.
//
// Tables: lead_verifications and bounce_reports are this package's; leads, lead_purchases,
// credits and partner earnings are reached through their owners.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/partner"
)

// Queue is the River queue of verification's jobs: a queue of its own, so that a backlog of
// leads to verify never holds up webhooks and the other jobs of the default queue.
const Queue = "verify"

// Job priorities within Queue (River works 1 first): a buyer waiting on a bounce report before an
// admin's re-verification before the pipeline's backlog.
const (
	priorityBounce   = 1
	priorityReverify = 2
	priorityPipeline = 3
)

// Why a lead was checked (lead_verifications.purpose).
const (
	PurposePipeline = "PIPELINE"
	PurposeReverify = "REVERIFY"
	PurposeBounce   = "BOUNCE"
)

// Options configure a Service. Zero fields take the defaults named.
type Options struct {
	// MillionVerifierAPIKey is MILLIONVERIFIER_API_KEY; empty skips MillionVerifier.
	MillionVerifierAPIKey string
	// MillionVerifierURL is MILLIONVERIFIER_URL. Default https://api.millionverifier.com.
	MillionVerifierURL string
	// ZeroBounceAPIKey is ZEROBOUNCE_API_KEY; empty skips ZeroBounce.
	ZeroBounceAPIKey string
	// ZeroBounceURL is ZEROBOUNCE_URL. Default https://api.zerobounce.net.
	ZeroBounceURL string
	// Concurrency is VERIFY_CONCURRENCY, the most provider calls in flight across every instance.
	// Default 5.
	Concurrency int
	// Timeout is VERIFY_TIMEOUT, the longest one provider call may take. Default 20s.
	Timeout time.Duration
	// MaxAttempts is VERIFY_MAX_ATTEMPTS: after this many failed attempts a lead is UNKNOWN.
	// Default 3.
	MaxAttempts int
	// SweepInterval is VERIFY_SWEEP_INTERVAL, how often the sweep runs. Default 5m.
	SweepInterval time.Duration
	// RefundWindow is BOUNCE_REFUND_WINDOW: purchases this recent are refunded when their lead is
	// found INVALID, and may be reported. Default 30 days.
	RefundWindow time.Duration
	// Lease is how long a job holds the leads it took before another may take them (its process
	// may have died). Default 30m: longer than River's rescue of stuck jobs (10m), which runs a
	// dead process's job again with its lease, and than JobTimeout.
	Lease time.Duration
	// JobTimeout bounds one run of a job of leads; what it did not get to is left to its next run.
	// Default 5m.
	JobTimeout time.Duration
	// BatchSize is how many leads one job verifies. Default 100.
	BatchSize int
	// SweepLimit is the most leads one sweep takes. Default 25,000.
	SweepLimit int
	// PassRateEvery is how often at most a partner's pass rate is recounted while its leads are
	// being verified (the count reads all its leads); verdicts in between are counted at the end of
	// that time. Default 10s.
	PassRateEvery time.Duration
	// Backoff is how long after failed attempt number n (from 1) the lead may be tried again.
	// Default Backoff.
	Backoff func(attempt int) time.Duration
	// HTTPClient calls the providers. Default a client of its own.
	HTTPClient *http.Client
	// Metrics counts provider calls by provider and result (verification_calls_total). Default
	// nil: not counted.
	Metrics *metrics.Metrics
	// InstrumentTransportFunc wraps HTTPClient's transport (tracing: a client span per provider
	// call). Default nil: none.
	InstrumentTransportFunc func(http.RoundTripper) http.RoundTripper
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Backoff is the default wait after failed attempt number attempt: 1 minute, then 4, 16, and at
// most an hour, each stretched by up to a tenth at random so that leads that failed together do
// not come back together (ZeroBounce blocks a key that keeps sending failing requests).
func Backoff(attempt int) time.Duration {
	d := time.Minute
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 4
	}
	d = min(d, time.Hour)
	return d + time.Duration(rand.Int64N(int64(d/10)+1))
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MillionVerifierURL == "" {
		o.MillionVerifierURL = "https://api.millionverifier.com"
	}
	if o.ZeroBounceURL == "" {
		o.ZeroBounceURL = "https://api.zerobounce.net"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 5
	}
	def(&o.Timeout, 20*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	def(&o.SweepInterval, 5*time.Minute)
	def(&o.RefundWindow, 30*24*time.Hour)
	def(&o.Lease, 30*time.Minute)
	def(&o.JobTimeout, 5*time.Minute)
	def(&o.PassRateEvery, 10*time.Second)
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.SweepLimit <= 0 {
		o.SweepLimit = 25_000
	}
	if o.Backoff == nil {
		o.Backoff = Backoff
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: o.Concurrency * 2, IdleConnTimeout: 90 * time.Second,
		}}
	}
	if o.InstrumentTransportFunc != nil {
		c := *o.HTTPClient
		c.Transport = o.InstrumentTransportFunc(c.Transport)
		o.HTTPClient = &c
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Service verifies leads and handles bounce reports.
type Service struct {
	db      *bun.DB
	queue   *jobs.Queue
	o       Options
	chain   Chain
	limiter *Limiter
	rates   rateRefresh
}

// rateRefresh is when each partner's pass rate was last recounted by this process, and the
// partners whose recount waits for PassRateEvery to pass.
type rateRefresh struct {
	mu      sync.Mutex
	last    map[string]time.Time
	pending map[string]bool
	timer   *time.Timer
}

// NewService returns the verification service on db, inserting its jobs with queue.
func NewService(db *bun.DB, queue *jobs.Queue, o Options) *Service {
	o.defaults()
	var chain Chain
	if o.MillionVerifierAPIKey != "" {
		chain = append(chain, &MillionVerifier{BaseURL: o.MillionVerifierURL, APIKey: o.MillionVerifierAPIKey, Timeout: o.Timeout, Client: o.HTTPClient})
	}
	if o.ZeroBounceAPIKey != "" {
		chain = append(chain, &ZeroBounce{BaseURL: o.ZeroBounceURL, APIKey: o.ZeroBounceAPIKey, Timeout: o.Timeout, Client: o.HTTPClient})
	}
	return &Service{db: db, queue: queue, o: o, chain: chain, limiter: NewLimiter(db, o.Concurrency),
		rates: rateRefresh{last: map[string]time.Time{}, pending: map[string]bool{}}}
}

// Enabled reports whether a provider is configured. Without one, verification is off: leads
// stay PENDING (the sweep takes them once a key is set), and re-verification and bounce reports
// are UNAVAILABLE.
func (s *Service) Enabled() bool { return len(s.chain) > 0 }

// Providers names the configured providers, in the order they are asked.
func (s *Service) Providers() []string {
	names := make([]string, len(s.chain))
	for i, p := range s.chain {
		names[i] = p.Name()
	}
	return names
}

// Concurrency is the most provider calls in flight across every instance (VERIFY_CONCURRENCY).
func (s *Service) Concurrency() int { return s.o.Concurrency }

// LeadsArgs is the job that verifies a batch of leads held (or to be taken) under Token's lease.
type LeadsArgs struct {
	LeadIDs []string `json:"lead_ids"`
	Token   string   `json:"token"`
	// Purpose is PurposePipeline or PurposeReverify.
	Purpose string `json:"purpose"`
}

// Kind names the job.
func (LeadsArgs) Kind() string { return "verify_leads" }

// InsertOpts puts the job on Queue behind bounce reports.
func (LeadsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, Priority: priorityPipeline}
}

// LeadsWorker works LeadsArgs jobs.
type LeadsWorker struct {
	river.WorkerDefaults[LeadsArgs]
	svc *Service
}

// NewLeadsWorker returns the worker of svc's lead jobs.
func NewLeadsWorker(svc *Service) *LeadsWorker { return &LeadsWorker{svc: svc} }

// Timeout is Options.JobTimeout: a run that reaches it stops, and its next run goes on.
func (w *LeadsWorker) Timeout(*river.Job[LeadsArgs]) time.Duration { return w.svc.o.JobTimeout }

// Work verifies the job's leads.
func (w *LeadsWorker) Work(ctx context.Context, job *river.Job[LeadsArgs]) error {
	return w.svc.VerifyLeads(ctx, job.Args)
}

// EnqueueTx enqueues the verification of leadIDs in tx, in jobs of Options.BatchSize leads, so
// that it starts as soon as tx commits (and never if tx rolls back). ingest calls it in the
// transaction that completes an upload (or each batch of it) with the leads it accepted. It
// returns how many jobs it inserted: none when verification is off, when the leads stay PENDING
// for the sweep to take once a provider is configured. A lead the sweep takes meanwhile is left
// to the sweep's job: no lead is checked twice.
func (s *Service) EnqueueTx(ctx context.Context, tx bun.Tx, leadIDs []string) (int, error) {
	if !s.Enabled() || len(leadIDs) == 0 {
		return 0, nil
	}
	return s.insertJobs(ctx, tx, leadIDs, "", PurposePipeline)
}

// insertJobs inserts LeadsArgs jobs for ids in batches, under token (a new one per job when empty).
func (s *Service) insertJobs(ctx context.Context, tx bun.Tx, ids []string, token, purpose string) (int, error) {
	priority := priorityPipeline
	if purpose == PurposeReverify {
		priority = priorityReverify
	}
	var params []river.InsertManyParams
	for batch := range slices.Chunk(ids, s.o.BatchSize) {
		t := token
		if t == "" {
			t = uuid.NewString()
		}
		params = append(params, river.InsertManyParams{
			Args:       LeadsArgs{LeadIDs: batch, Token: t, Purpose: purpose},
			InsertOpts: &river.InsertOpts{Queue: Queue, Priority: priority},
		})
	}
	if err := s.queue.InsertManyTx(ctx, tx, params); err != nil {
		return 0, err
	}
	return len(params), nil
}

// recordTimeout bounds writing what a provider call found: it is written even when the job's
// context has ended, since the call was made (and may have been charged).
const recordTimeout = 30 * time.Second

// VerifyLeads verifies the leads of a job: it takes those still open under the job's lease, asks
// the providers about each (each call in a Limiter slot, so at most Options.Concurrency in flight
// across every instance) and writes each verdict or failed attempt, in a transaction of its own,
// as soon as it has it. When ctx ends first, the leads
// it did not get to are let go (taken again by the job's next run or the sweep) and ctx's error
// is returned.
func (s *Service) VerifyLeads(ctx context.Context, args LeadsArgs) error {
	if !s.Enabled() {
		return nil
	}
	purpose := args.Purpose
	if purpose == "" {
		purpose = PurposePipeline
	}
	taken, err := lead.TakeForVerification(ctx, s.db, args.LeadIDs, args.Token, s.o.Lease)
	if err != nil || len(taken) == 0 {
		return err
	}
	var (
		mu       sync.Mutex
		partners = map[string]bool{}
		left     []string
	)
	// Twice as many as there are slots: while one writes what its call found, another holds
	// the slot it gave back.
	var g errgroup.Group
	g.SetLimit(2 * s.o.Concurrency)
	for _, l := range taken {
		g.Go(func() error {
			changed, err := s.verifyOne(ctx, l, args.Token, purpose)
			mu.Lock()
			defer mu.Unlock()
			if changed {
				partners[l.PartnerID] = true
			}
			if err != nil && ctx.Err() != nil {
				left = append(left, l.ID)
				return nil
			}
			return err
		})
	}
	err = g.Wait()
	after, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if rerr := s.passRatesChanged(after, keys(partners)); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if len(left) > 0 {
		if _, rerr := lead.Release(after, s.db, left, args.Token); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return errors.Join(fmt.Errorf("verify leads: stopped with %d of %d left: %w", len(left), len(taken), ctx.Err()), err)
	}
	if err != nil {
		return fmt.Errorf("verify leads: %w", err)
	}
	return nil
}

// verifyOne makes one attempt at lead l and writes it; changed reports a new verdict.
func (s *Service) verifyOne(ctx context.Context, l lead.ToVerify, token, purpose string) (changed bool, err error) {
	var out Outcome
	if err := s.limiter.Do(ctx, func() { out = s.chain.Check(ctx, l.Email) }); err != nil {
		return false, err
	}
	for _, c := range out.Calls {
		s.o.Metrics.VerificationCall(c.Provider, c.Status, c.Err != nil)
	}
	if out.Interrupted {
		return false, out.Err
	}
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	attempt := l.Attempts + 1
	err = s.db.RunInTx(recordCtx, nil, func(ctx context.Context, tx bun.Tx) error {
		if out.Status == "" {
			f, err := lead.FailAttempt(ctx, tx, l.ID, token, attempt, s.o.MaxAttempts, s.o.Backoff(attempt))
			if err != nil {
				return err
			}
			changed = f.Applied && f.Closed && l.Status == lead.StatusPending
			if changed {
				s.o.Logger.WarnContext(ctx, "lead verification gave up", "lead", l.ID, "attempts", attempt, "err", out.Err)
			}
			return insertCalls(ctx, tx, l, purpose, attempt, out)
		}
		v, err := lead.SetVerdict(ctx, tx, l.ID, token, out.Status)
		if err != nil {
			return err
		}
		if v.Applied {
			changed = true
			if out.Status == lead.StatusInvalid && v.BuyersCount > 0 {
				if _, err := s.refundLead(ctx, tx, l.ID, v.Previous, refundCause{Purpose: purpose}); err != nil {
					return err
				}
			}
		}
		return insertCalls(ctx, tx, l, purpose, attempt, out)
	})
	if err != nil {
		return false, fmt.Errorf("record verification of lead %s: %w", l.ID, err)
	}
	return changed, nil
}

// passRatesChanged recounts the pass rates of partnerIDs, whose leads were given verdicts: at
// once for those not recounted within Options.PassRateEvery, after it for the others (a timer of
// this process; the sweep recounts the partners of recent verdicts in case the process ends
// first). A partner with many leads is recounted every few seconds, not after every job.
func (s *Service) passRatesChanged(ctx context.Context, partnerIDs []string) error {
	now := time.Now()
	var due []string
	r := &s.rates
	r.mu.Lock()
	for _, id := range partnerIDs {
		if now.Sub(r.last[id]) >= s.o.PassRateEvery {
			due = append(due, id)
			r.last[id] = now
			delete(r.pending, id)
		} else {
			r.pending[id] = true
		}
	}
	if len(r.pending) > 0 && r.timer == nil {
		r.timer = time.AfterFunc(s.o.PassRateEvery, s.recountPending)
	}
	r.mu.Unlock()
	return s.refreshPassRates(ctx, due)
}

// recountPending recounts the partners whose recount passRatesChanged put off.
func (s *Service) recountPending() {
	r := &s.rates
	r.mu.Lock()
	ids := keys(r.pending)
	now := time.Now()
	for _, id := range ids {
		r.last[id] = now
	}
	r.pending, r.timer = map[string]bool{}, nil
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := s.refreshPassRates(ctx, ids); err != nil {
		s.o.Logger.WarnContext(ctx, "recount pass rates", "partners", len(ids), "err", err)
	}
}

// refreshPassRates recomputes the pass rates of partnerIDs from their leads' verdicts and stores
// them, so that the next sale's commission uses them (partner.Commission.Accrue).
func (s *Service) refreshPassRates(ctx context.Context, partnerIDs []string) error {
	if len(partnerIDs) == 0 {
		return nil
	}
	slices.Sort(partnerIDs)
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := partner.LockForPassRates(ctx, tx, partnerIDs); err != nil {
			return err
		}
		rates, err := PassRates(ctx, tx, partnerIDs)
		if err != nil {
			return err
		}
		out := make([]partner.PassRate, 0, len(rates))
		for _, id := range partnerIDs {
			if r, ok := rates[id]; ok {
				out = append(out, partner.PassRate{PartnerID: id, Rate: r})
			}
		}
		return partner.SetPassRates(ctx, tx, out)
	})
}

// PassRates returns the verification pass rate of each of partnerIDs that has a verified lead:
// its VALID leads over its verified ones (every status but PENDING, which are the verdicts).
// Partners without a verified lead are left out: they have no rate yet. It is the figure
// partnerStats.verificationPassRate shows and commissions are charged by.
func PassRates(ctx context.Context, db bun.IDB, partnerIDs []string) (map[string]float64, error) {
	counts, err := lead.VerificationCounts(ctx, db, partnerIDs)
	if err != nil {
		return nil, err
	}
	rates := make(map[string]float64, len(counts))
	for _, c := range counts {
		if c.Verified > 0 {
			rates[c.PartnerID] = float64(c.Valid) / float64(c.Verified)
		}
	}
	return rates, nil
}

// PassRate is PassRates for one partner: nil until one of its leads is verified.
func PassRate(ctx context.Context, db bun.IDB, partnerID string) (*float64, error) {
	rates, err := PassRates(ctx, db, []string{partnerID})
	if err != nil {
		return nil, err
	}
	if r, ok := rates[partnerID]; ok {
		return &r, nil
	}
	return nil, nil
}

// MaxReverify is the most leads one Reverify takes.
const MaxReverify = 1000

// Reverify asks for a new verification of each of leadIDs, whatever its status, and enqueues it;
// a lead keeps its status until the new verdict. It returns how many leads exist and were
// enqueued. Platform admins only. Errors: FORBIDDEN, INVALID_INPUT (1 to MaxReverify ids),
// UNAVAILABLE when verification is off.
func (s *Service) Reverify(ctx context.Context, c *auth.Caller, leadIDs []string) (int, error) {
	if err := c.AdminAccess(); err != nil {
		return 0, err
	}
	if !s.Enabled() {
		return 0, apperr.New(apperr.Unavailable, "email verification is off: no provider API key is configured")
	}
	if len(leadIDs) == 0 || len(leadIDs) > MaxReverify {
		return 0, apperr.New(apperr.InvalidInput, "leadIds holds 1 to %d ids", MaxReverify)
	}
	seen := make(map[string]bool, len(leadIDs))
	ids := make([]string, 0, len(leadIDs))
	for _, id := range leadIDs {
		if err := apperr.CheckID(id); err != nil {
			return 0, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	var n int
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		token := uuid.NewString()
		found, err := lead.Reopen(ctx, tx, ids, token, s.o.Lease)
		if err != nil || len(found) == 0 {
			return err
		}
		n = len(found)
		if _, err := s.insertJobs(ctx, tx, found, token, PurposeReverify); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{
			ActorUserID: c.UserID, ActorType: audit.ActorPlatformAdmin, Action: "leads.reverification_requested",
			ResourceType: "lead", ResourceID: found[0], Severity: audit.SeverityNotice,
			Metadata: map[string]any{"leadIds": found, "count": n},
		})
	})
	if err != nil {
		return 0, fmt.Errorf("reverify leads: %w", err)
	}
	return n, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
