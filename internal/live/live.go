// Package live serves the admin dashboards' subscriptions: it registers each subscribable event
// type with the instance's events.Broker (loading rows through the tables' owning packages),
// checks each subscriber's access like the query its subscription mirrors, and filters the
// broker's stream by the subscriber's scope in memory.
package live

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// SubscriberTooSlow is the code of the error that ends a subscription whose subscriber fell a
// whole buffer (WS_SUBSCRIBER_BUFFER) behind.
const SubscriberTooSlow apperr.Code = "SUBSCRIBER_TOO_SLOW"

// catchUpPage is how many rows one page of a table's catch-up reads (the broker reads page
// after page until it is up to date).
const catchUpPage = 1000

// Stream is one subscription: C delivers values until it is closed; Err then says why (nil:
// the subscriber left or the stream ended normally; SUBSCRIBER_TOO_SLOW).
type Stream[T any] struct {
	C   <-chan T
	Err func() error
}

// Service answers the subscriptions.
type Service struct {
	db     *bun.DB
	broker *events.Broker
	audit  *audit.Service
	logger *slog.Logger

	statsMu sync.Mutex
	// stats holds one shared computation per interval.
	stats map[int]*statsGroup
	// StatsComputed counts the stats computations (tests: one per interval per instance).
	statsComputed int
	statsFunc     func(ctx context.Context) (Stats, error)
}

// NewService registers the subscribable event types with broker and returns the Service.
func NewService(db *bun.DB, broker *events.Broker, auditSvc *audit.Service, logger *slog.Logger) *Service {
	s := &Service{db: db, broker: broker, audit: auditSvc, logger: logger, stats: map[int]*statsGroup{}}
	s.statsFunc = s.computeStats
	broker.Register(audit.AddedEvent, events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			// A millisecond either side of the entries' own times; zero (every partition) when a
			// notification carried none (one queued before the migration that added them).
			from, to, ok := events.Span(refs)
			if ok {
				from, to = from.Add(-time.Millisecond), to.Add(time.Millisecond)
			}
			return logItems(audit.LogsByIDs(ctx, db, events.IDs(refs), from, to))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return logItems(audit.LogsAfter(ctx, db, since, catchUpPage))
		},
	})
	broker.Register(audit.SecurityRaisedEvent, events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			return securityItems(audit.SecurityEventsByIDs(ctx, db, events.IDs(refs)))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return securityItems(audit.SecurityEventsAfter(ctx, db, since, catchUpPage))
		},
	})
	broker.Register(marketplace.PurchasedEvent, events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			return cartItems(marketplace.CartsByIDs(ctx, db, events.IDs(refs)))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return cartItems(marketplace.CartsAfter(ctx, db, since, catchUpPage))
		},
	})
	broker.Register(billing.FailedEvent, events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			return failureItems(billing.FailuresByIDs(ctx, db, events.IDs(refs)))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return failureItems(billing.FailuresAfter(ctx, db, since, catchUpPage))
		},
	})
	broker.Register(ingest.ProgressEvent, events.Source{
		LoadFunc: func(ctx context.Context, refs []events.Ref) ([]events.Item, error) {
			return uploadItems(ingest.UploadsByIDs(ctx, db, events.IDs(refs)))
		},
		SinceFunc: func(ctx context.Context, since time.Time) ([]events.Item, error) {
			return uploadItems(ingest.UploadsChangedAfter(ctx, db, since, catchUpPage))
		},
	})
	return s
}

func logItems(logs []audit.Log, err error) ([]events.Item, error) {
	items := make([]events.Item, len(logs))
	for i, l := range logs {
		items[i] = events.Item{Key: l.ID, At: l.OccurredAt, Value: l}
	}
	return items, err
}

func securityItems(evs []audit.Security, err error) ([]events.Item, error) {
	items := make([]events.Item, len(evs))
	for i, e := range evs {
		items[i] = events.Item{Key: e.ID, At: e.OccurredAt, Value: e}
	}
	return items, err
}

func cartItems(carts []marketplace.CartEvent, err error) ([]events.Item, error) {
	items := make([]events.Item, len(carts))
	for i, c := range carts {
		items[i] = events.Item{Key: c.CartID, At: c.OccurredAt, Value: c}
	}
	return items, err
}

func failureItems(fs []billing.Failure, err error) ([]events.Item, error) {
	items := make([]events.Item, len(fs))
	for i, f := range fs {
		items[i] = events.Item{Key: f.ID + ":" + f.FailedAt.Format(time.RFC3339Nano), At: f.FailedAt, Value: f.Event}
	}
	return items, err
}

func uploadItems(us []ingest.Changed, err error) ([]events.Item, error) {
	items := make([]events.Item, len(us))
	for i, u := range us {
		items[i] = events.Item{Key: u.ProgressKey(), At: u.UpdatedAt, Value: u.Upload}
	}
	return items, err
}

// stream adapts a broker subscription to a typed Stream, ending it with SUBSCRIBER_TOO_SLOW when
// the broker dropped the subscriber; until, when not nil, ends it after the value it accepts.
func stream[T any](ctx context.Context, sub *events.Subscription, first []T, until func(T) bool) Stream[T] {
	return streamDistinct(ctx, sub, first, until, nil)
}

// streamDistinct is stream, skipping a value whose key (when key is not nil) is the key of the
// value sent before it: an event the broker loaded before the first values were read shows the
// state they already show.
func streamDistinct[T any](ctx context.Context, sub *events.Subscription, first []T, until func(T) bool, key func(T) string) Stream[T] {
	out := make(chan T, 1)
	var mu sync.Mutex
	var end error
	go func() {
		defer close(out)
		defer sub.Close()
		last, sent := "", false
		send := func(v T) bool {
			if key != nil {
				k := key(v)
				if sent && k == last {
					return true
				}
				last, sent = k, true
			}
			select {
			case out <- v:
				return until == nil || !until(v)
			case <-ctx.Done():
				return false
			}
		}
		for _, v := range first {
			if !send(v) {
				return
			}
		}
		for v := range sub.C() {
			if !send(v.(T)) {
				return
			}
		}
		if errors.Is(sub.Err(), events.ErrTooSlow) {
			mu.Lock()
			end = apperr.New(SubscriberTooSlow, "this subscription fell too far behind and was ended; subscribe again")
			mu.Unlock()
		}
	}()
	return Stream[T]{C: out, Err: func() error {
		mu.Lock()
		defer mu.Unlock()
		return end
	}}
}

// AuditLogAdded streams the new audit entries f selects, scoped like audit.Search: platform
// admins everything, workspace owners and admins their workspace (named in f.WorkspaceID).
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) AuditLogAdded(ctx context.Context, c *auth.Caller, f audit.Filter) (Stream[audit.Log], error) {
	if err := s.audit.CanWatch(ctx, c, f); err != nil {
		return Stream[audit.Log]{}, err
	}
	sub := s.broker.Subscribe(ctx, audit.AddedEvent, func(v any) bool { return f.Matches(v.(audit.Log)) })
	return stream[audit.Log](ctx, sub, nil, nil), nil
}

// SecurityEventRaised streams new security events of minRisk or higher; platform admins only.
// Errors: FORBIDDEN.
func (s *Service) SecurityEventRaised(ctx context.Context, c *auth.Caller, minRisk string) (Stream[audit.Security], error) {
	if err := c.AdminAccess(); err != nil {
		return Stream[audit.Security]{}, err
	}
	sub := s.broker.Subscribe(ctx, audit.SecurityRaisedEvent, func(v any) bool {
		return audit.AtLeast(v.(audit.Security).RiskLevel, minRisk)
	})
	return stream[audit.Security](ctx, sub, nil, nil), nil
}

// LeadPurchased streams carts bought: platform admins every workspace's or workspaceID's;
// workspace members only their own, which they must name. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) LeadPurchased(ctx context.Context, c *auth.Caller, workspaceID string) (Stream[marketplace.CartEvent], error) {
	if workspaceID != "" {
		if err := apperr.CheckID(workspaceID); err != nil {
			return Stream[marketplace.CartEvent]{}, err
		}
	}
	if err := c.MemberOrAdmin(func() error {
		if workspaceID == "" {
			return apperr.New(apperr.InvalidInput, "name your workspace (workspaceId)")
		}
		return workspace.RequireMemberOrAdmin(ctx, s.db, workspaceID, c)
	}); err != nil {
		return Stream[marketplace.CartEvent]{}, err
	}
	sub := s.broker.Subscribe(ctx, marketplace.PurchasedEvent, func(v any) bool {
		return workspaceID == "" || v.(marketplace.CartEvent).WorkspaceID == workspaceID
	})
	return stream[marketplace.CartEvent](ctx, sub, nil, nil), nil
}

// WebhookEventFailed streams the Stripe events that become FAILED; platform admins only.
// Errors: FORBIDDEN.
func (s *Service) WebhookEventFailed(ctx context.Context, c *auth.Caller) (Stream[billing.Event], error) {
	if err := c.AdminAccess(); err != nil {
		return Stream[billing.Event]{}, err
	}
	sub := s.broker.Subscribe(ctx, billing.FailedEvent, nil)
	return stream[billing.Event](ctx, sub, nil, nil), nil
}

// LeadUploadProgress streams an upload's state: its current state first, then each change,
// ending after COMPLETED or FAILED. The upload's partner members and platform admins only.
// Errors: NOT_FOUND, FORBIDDEN, INVALID_INPUT.
func (s *Service) LeadUploadProgress(ctx context.Context, c *auth.Caller, uploadID string) (Stream[ingest.Upload], error) {
	if err := apperr.CheckID(uploadID); err != nil {
		return Stream[ingest.Upload]{}, err
	}
	// Subscribed before reading the current state, so no change falls between the two; a change
	// the first message already shows is not shown again.
	var mu sync.Mutex
	last := ""
	sub := s.broker.Subscribe(ctx, ingest.ProgressEvent, func(v any) bool {
		u := v.(ingest.Upload)
		if u.ID != uploadID {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		k := ingest.Changed{Upload: u}.ProgressKey()
		if k == last {
			return false
		}
		last = k
		return true
	})
	u, err := ingest.UploadByID(ctx, s.db, uploadID)
	if err == nil && u == nil {
		err = apperr.New(apperr.NotFound, "no such upload")
	}
	if err == nil {
		err = partner.RequireMemberOrAdmin(ctx, s.db, u.PartnerID, c)
	}
	if err != nil {
		sub.Close()
		return Stream[ingest.Upload]{}, err
	}
	mu.Lock()
	last = ingest.Changed{Upload: *u}.ProgressKey()
	mu.Unlock()
	done := func(u ingest.Upload) bool {
		return u.Status == ingest.StatusCompleted || u.Status == ingest.StatusFailed
	}
	progress := func(u ingest.Upload) string { return ingest.Changed{Upload: u}.ProgressKey() }
	return streamDistinct[ingest.Upload](ctx, sub, []ingest.Upload{*u}, done, progress), nil
}

// Stats are the admins' live dashboard figures.
type Stats struct {
	At                    time.Time
	LeadsActive           int
	LeadsSoldToday        int
	PurchasesToday        int
	CreditsSpentToday     int64
	CreditsPurchasedToday int64
	UploadsInProgress     int
	VerificationPending   int
	WebhookEventsFailed   int
}

func (s *Service) computeStats(ctx context.Context) (Stats, error) {
	st := Stats{At: time.Now().UTC()}
	ls, err := lead.CountStats(ctx, s.db)
	if err != nil {
		return st, err
	}
	st.LeadsActive, st.VerificationPending = ls.Active, ls.VerificationPending
	day, err := marketplace.CountToday(ctx, s.db)
	if err != nil {
		return st, err
	}
	st.LeadsSoldToday, st.PurchasesToday, st.CreditsSpentToday = day.LeadsSold, day.Purchases, day.CreditsSpent
	if st.CreditsPurchasedToday, err = credit.PurchasedToday(ctx, s.db); err != nil {
		return st, err
	}
	if st.UploadsInProgress, err = ingest.CountInProgress(ctx, s.db); err != nil {
		return st, err
	}
	if st.WebhookEventsFailed, err = billing.CountFailed(ctx, s.db); err != nil {
		return st, err
	}
	return st, nil
}
