package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/page"
)

// Event is a stored Stripe event as admins see it.
type Event struct {
	ID            string     `bun:"id"`
	Type          string     `bun:"type"`
	Status        string     `bun:"status"`
	Attempts      int        `bun:"attempts"`
	NextAttemptAt *time.Time `bun:"next_attempt_at"`
	LastError     *string    `bun:"last_error"`
	JobID         *int64     `bun:"job_id"`
	ReceivedAt    time.Time  `bun:"received_at"`
	ProcessedAt   *time.Time `bun:"processed_at"`
}

const eventColumns = "id, type, status, attempts, next_attempt_at, last_error, job_id, received_at, processed_at"

// Attempt is one processing attempt of an event.
type Attempt struct {
	EventID    string     `bun:"event_id"`
	Attempt    int        `bun:"attempt"`
	StartedAt  time.Time  `bun:"started_at"`
	FinishedAt *time.Time `bun:"finished_at"`
	Error      *string    `bun:"error"`
}

// EventFilter narrows ListEvents.
type EventFilter struct {
	Status        string
	Type          string
	ReceivedAfter *time.Time
}

// EventPages are the page sizes of ListEvents.
var EventPages = page.Bounds{Default: 50, Max: 200}

// ListEvents returns a page of the events matching f, newest first. Platform admins only.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) ListEvents(ctx context.Context, c *auth.Caller, f EventFilter, args page.Args) (page.Page[Event], error) {
	if err := c.AdminAccess(); err != nil {
		return page.Page[Event]{}, err
	}
	limit, after, err := page.Open(args, EventPages, func(p page.TimeID) bool { return stripeID(p.I) && p.ValidTime() })
	if err != nil {
		return page.Page[Event]{}, err
	}
	// The admins' list may lag by a replica's delay (db.Reader); a retry's result reads the primary.
	q := db.Reader(ctx, s.db).NewSelect().TableExpr("stripe_events").ColumnExpr(eventColumns).
		OrderExpr("received_at DESC, id DESC").Limit(int64(limit + 1))
	if f.Status != "" {
		q.Where("status = ?", f.Status)
	}
	if f.Type != "" {
		q.Where("type = ?", f.Type)
	}
	if f.ReceivedAfter != nil {
		if err := apperr.CheckTime("receivedAfter", *f.ReceivedAfter); err != nil {
			return page.Page[Event]{}, err
		}
		q.Where("received_at > ?", *f.ReceivedAfter)
	}
	if after != nil {
		q.Where("(received_at, id) < (?, ?)", after.T, after.I)
	}
	var evs []Event
	if err := q.Scan(ctx, &evs); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return page.Page[Event]{}, fmt.Errorf("list stripe events: %w", err)
	}
	return page.New(evs, limit, func(e Event) any { return page.TimeID{T: e.ReceivedAt, I: e.ID} }), nil
}

// GetEvent returns one event, or nil. Platform admins only. Errors: FORBIDDEN.
func (s *Service) GetEvent(ctx context.Context, c *auth.Caller, id string) (*Event, error) {
	if err := c.AdminAccess(); err != nil {
		return nil, err
	}
	return s.event(ctx, s.db, id)
}

func (s *Service) event(ctx context.Context, db bun.IDB, id string) (*Event, error) {
	var e Event
	err := db.NewRaw("SELECT "+eventColumns+" FROM stripe_events WHERE id = ?", id).Scan(ctx, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stripe event %s: %w", id, err)
	}
	return &e, nil
}

// Attempts returns the attempt logs of events, oldest attempt first, keyed by event id: one
// statement for any number of events.
func (s *Service) Attempts(ctx context.Context, eventIDs []string) (map[string][]Attempt, error) {
	out := make(map[string][]Attempt, len(eventIDs))
	if len(eventIDs) == 0 {
		return out, nil
	}
	var as []Attempt
	if err := s.db.NewSelect().TableExpr("stripe_event_attempts").
		Column("event_id", "attempt", "started_at", "finished_at", "error").
		Where("event_id IN (?)", bun.List(eventIDs)).OrderExpr("event_id, attempt").Scan(ctx, &as); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("stripe event attempts: %w", err)
	}
	for _, a := range as {
		out[a.EventID] = append(out[a.EventID], a)
	}
	return out, nil
}

// RetryEvent queues an event's processing again now, whatever its status; processing a processed
// event changes nothing. Platform admins only. Errors: FORBIDDEN, NOT_FOUND.
func (s *Service) RetryEvent(ctx context.Context, c *auth.Caller, id string) (*Event, error) {
	if err := c.AdminAccess(); err != nil {
		return nil, err
	}
	var out *Event
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		out, err = s.retry(ctx, tx, c, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("retry stripe event %s: %w", id, err)
	}
	return out, nil
}

// RetryFailedEvents queues again every FAILED event received since since. Platform admins only.
// Errors: FORBIDDEN.
func (s *Service) RetryFailedEvents(ctx context.Context, c *auth.Caller, since time.Time) ([]Event, error) {
	if err := c.AdminAccess(); err != nil {
		return nil, err
	}
	var out []Event
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var ids []string
		if err := tx.NewRaw(`SELECT id FROM stripe_events WHERE status = 'FAILED' AND received_at >= ?
			ORDER BY received_at LIMIT 1000 FOR UPDATE`, since).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for _, id := range ids {
			e, err := s.retry(ctx, tx, c, id)
			if err != nil {
				return err
			}
			out = append(out, *e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retry failed stripe events: %w", err)
	}
	return out, nil
}

func (s *Service) retry(ctx context.Context, tx bun.Tx, c *auth.Caller, id string) (*Event, error) {
	e, err := s.event(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, apperr.New(apperr.NotFound, "stripe event %s not found", id)
	}
	if e.JobID != nil {
		// River deletes finished jobs after a while (a day for completed, a week for discarded
		// ones); an event whose job is gone gets a new one.
		if err := s.queue.RetryTx(ctx, tx, *e.JobID); errors.Is(err, rivertype.ErrNotFound) {
			e.JobID = nil
		} else if err != nil {
			return nil, err
		}
	}
	if e.JobID == nil {
		job, err := s.queue.InsertTx(ctx, tx, ProcessEventArgs{EventID: id}, nil)
		if err != nil {
			return nil, err
		}
		e.JobID = &job.Job.ID
	}
	if e.Status != StatusProcessed && e.Status != StatusIgnored {
		if _, err := tx.ExecContext(ctx, `UPDATE stripe_events SET status = 'RETRYING', next_attempt_at = now(), job_id = ?
			WHERE id = ?`, e.JobID, id); err != nil {
			return nil, err
		}
	}
	if err := audit.Record(ctx, tx, audit.Entry{
		ActorUserID: c.UserID, ActorType: audit.ActorPlatformAdmin, Action: "stripe_event.retried", ResourceType: "stripe_event",
		ResourceID: id, Old: map[string]any{"status": e.Status, "attempts": e.Attempts}, Severity: audit.SeverityNotice,
	}); err != nil {
		return nil, err
	}
	return s.event(ctx, tx, id)
}

// AbandonAfter is how long an unfinished event may go without a live processing job before
// FailAbandonedEvents marks it FAILED.
const AbandonAfter = 10 * time.Minute

// FailAbandonedEvents marks FAILED the events that are not finished but have no processing job
// left to finish them: a process that died during the last attempt leaves its event PROCESSING,
// and River's rescuer discards the job, attempts used up. FAILED, the event is in front of admins
// and their bulk retry. It returns how many events it marked; an hourly clean-up runs it.
func (s *Service) FailAbandonedEvents(ctx context.Context) (int64, error) {
	var types []string
	err := s.db.NewRaw(`UPDATE stripe_events e SET status = 'FAILED', next_attempt_at = NULL,
			last_error = coalesce(e.last_error || '; ', '') || 'its processing job ended without finishing it'
		WHERE e.status IN ('RECEIVED', 'PROCESSING', 'RETRYING') AND e.received_at < now() - ?::interval
			AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = e.job_id
				AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))
		RETURNING e.type`,
		fmt.Sprintf("%d seconds", int(AbandonAfter.Seconds()))).Scan(ctx, &types)
	if err != nil {
		return 0, fmt.Errorf("fail abandoned stripe events: %w", err)
	}
	byType := map[string]int{}
	for _, t := range types {
		byType[t]++
	}
	for t, n := range byType {
		s.opts.Metrics.WebhookEventsFailed(t, n)
	}
	return int64(len(types)), nil
}

// stripeID reports whether s looks like a Stripe object id ("evt_1Nq…"): letters, digits and
// underscores, at most 255 of them.
func stripeID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
