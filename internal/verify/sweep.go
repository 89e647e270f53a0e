package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// SweepArgs is the periodic job that takes the leads whose verification is due and enqueues them.
type SweepArgs struct{}

// Kind names the job.
func (SweepArgs) Kind() string { return "verify_sweep" }

// SweepWorker works SweepArgs jobs.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	svc *Service
}

// NewSweepWorker returns the worker of svc's sweep.
func NewSweepWorker(svc *Service) *SweepWorker { return &SweepWorker{svc: svc} }

// Work runs one sweep.
func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	n, err := w.svc.Sweep(ctx)
	if n > 0 {
		w.svc.o.Logger.InfoContext(ctx, "verification sweep", "leads", n)
	}
	return err
}

// sweepChunk is how many leads one sweep transaction takes.
const sweepChunk = 1000

// Sweep takes up to Options.SweepLimit leads whose verification is due — PENDING leads nobody
// holds, leads whose backoff after a failed attempt has passed, and those held by a job past its
// lease (its process died) — and enqueues their jobs, each chunk in one transaction with its
// leases. It also refreshes the pass rates of the partners given verdicts since the sweep before
// last, in case a job died between its verdicts and its refresh, and enqueues again the check of
// bounce reports left pending by a job that is gone. It returns how many leads it enqueued; with
// verification off, none.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	if !s.Enabled() {
		return 0, nil
	}
	total := 0
	for total < s.o.SweepLimit {
		var ids []string
		err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			token := uuid.NewString()
			var err error
			if ids, err = lead.TakeDue(ctx, tx, min(sweepChunk, s.o.SweepLimit-total), token, s.o.Lease); err != nil || len(ids) == 0 {
				return err
			}
			_, err = s.insertJobs(ctx, tx, ids, token, PurposePipeline)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("verification sweep: %w", err)
		}
		total += len(ids)
		if len(ids) < sweepChunk {
			break
		}
	}
	if n, err := s.requeueStuckReports(ctx, time.Now().Add(-s.o.Lease)); err != nil {
		return total, err
	} else if n > 0 {
		s.o.Logger.WarnContext(ctx, "verification sweep: bounce reports enqueued again", "reports", n)
	}
	partners, err := partnersVerifiedSince(ctx, s.db, time.Now().Add(-2*s.o.SweepInterval))
	if err != nil {
		return total, err
	}
	return total, s.refreshPassRates(ctx, partners)
}

// PeriodicJobs are the sweep, every Options.SweepInterval and at start; none when verification
// is off.
func (s *Service) PeriodicJobs() []*river.PeriodicJob {
	if !s.Enabled() {
		return nil
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(s.o.SweepInterval),
		func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})}
}

// Workers adds the verification workers to w: lead batches, bounce reports and the sweep. They
// are registered whether or not verification is on, so that jobs queued before a restart
// without keys are still known.
func (s *Service) Workers(w *river.Workers) {
	river.AddWorker(w, NewLeadsWorker(s))
	river.AddWorker(w, NewBounceWorker(s))
	river.AddWorker(w, NewSweepWorker(s))
}
