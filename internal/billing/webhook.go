package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/metrics"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// MaxWebhookBytes is the largest webhook body accepted; Stripe's events are far smaller.
const MaxWebhookBytes = 256 << 10

// SignatureTolerance is how old a signed webhook may be.
const SignatureTolerance = 300 * time.Second

// WebhookHandler is POST /webhooks/stripe: it verifies the signature, stores the event once by its
// Stripe id with its processing job in the same transaction, and answers at once. A bad, stale,
// missing or unparsable signature, a body that is not an event, or an oversized body gets 400, is
// never stored, and raises a security event (at most one per client address and minute).
func (s *Service) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		payload, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
		if err != nil {
			s.refuseWebhook(ctx, w, "body too large or unreadable", err)
			return
		}
		if len(s.opts.WebhookSecrets) == 0 {
			s.refuseWebhook(ctx, w, "webhook secret not configured", errors.New("STRIPE_WEBHOOK_SECRET is empty"))
			return
		}
		ev, err := s.constructEvent(payload, r.Header.Get("Stripe-Signature"))
		if err != nil {
			s.refuseWebhook(ctx, w, "signature verification failed", err)
			return
		}
		if ev.ID == "" || ev.Type == "" {
			s.refuseWebhook(ctx, w, "not a Stripe event", errors.New("event without id or type"))
			return
		}
		if ev.APIVersion != stripe.APIVersion {
			s.opts.Logger.WarnContext(ctx, "stripe webhook api version differs", "event", ev.ID,
				"event_version", ev.APIVersion, "library_version", stripe.APIVersion)
		}
		stored, err := s.StoreEvent(ctx, ev, payload)
		if err != nil {
			s.opts.Logger.ErrorContext(ctx, "store stripe event", "err", err, "event", ev.ID)
			// 5xx makes Stripe deliver it again later.
			http.Error(w, `{"error":"temporarily unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		if stored {
			s.opts.Metrics.WebhookEvent(string(ev.Type), metrics.WebhookReceived)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "duplicate": !stored})
	})
}

// constructEvent verifies payload's Stripe-Signature header under each endpoint secret in turn
// and returns the event of the first that it matches. stripe-go checks every v1 signature of the
// header against a secret, so a header signed under both the old and the new secret of a roll
// verifies under either. The error is the first secret's when none matches.
func (s *Service) constructEvent(payload []byte, header string) (stripe.Event, error) {
	var first error
	for _, secret := range s.opts.WebhookSecrets {
		ev, err := webhook.ConstructEventWithOptions(payload, header, secret,
			webhook.ConstructEventOptions{Tolerance: SignatureTolerance, IgnoreAPIVersionMismatch: true})
		if err == nil {
			return ev, nil
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			break // a missing, malformed or stale header fails under every secret alike
		}
	}
	return stripe.Event{}, first
}

// refuseWebhook answers 400 with reason. The refusal raises a security event unless the same
// client address already raised one in the last RefusalEventWindow (see refusalThrottle).
func (s *Service) refuseWebhook(ctx context.Context, w http.ResponseWriter, reason string, err error) {
	client := reqinfo.From(ctx).IP
	// Never verified, the body's type is not to be believed (nor to become a label).
	s.opts.Metrics.WebhookEvent("unknown", metrics.WebhookBadSignature)
	s.opts.Logger.WarnContext(ctx, "stripe webhook refused", "reason", reason, "err", err, "client", client)
	if record, unrecorded := s.refusals.admit(client, s.now()); record {
		if serr := audit.RecordSecurity(context.WithoutCancel(ctx), s.db, audit.SecurityEvent{
			Kind: "stripe_webhook_rejected", Risk: audit.RiskHigh,
			Details: map[string]any{"reason": reason, "error": err.Error(), "unrecorded_refusals_before": unrecorded},
		}); serr != nil {
			s.opts.Logger.ErrorContext(ctx, "record security event", "err", serr)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": reason})
}

// StoreEvent stores a verified event once by its id and enqueues its processing in the same
// transaction. It reports whether the event was new.
func (s *Service) StoreEvent(ctx context.Context, ev stripe.Event, payload []byte) (bool, error) {
	var created *time.Time
	if ev.Created > 0 {
		t := time.Unix(ev.Created, 0).UTC()
		created = &t
	}
	stored := false
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO stripe_events (id, type, api_version, livemode, payload, stripe_created)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			ev.ID, string(ev.Type), ev.APIVersion, ev.Livemode, string(storable(payload)), created)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // delivered before: stored and enqueued then
		}
		stored = true
		job, err := s.queue.InsertTx(ctx, tx, ProcessEventArgs{EventID: ev.ID}, nil)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE stripe_events SET job_id = ? WHERE id = ?", job.Job.ID, ev.ID)
		return err
	})
	return stored, err
}

// storable returns payload as jsonb can hold it: jsonb refuses the escape \u0000, which a
// customer-entered field of a genuine event may carry, so such characters become U+FFFD. Payloads
// without it (nearly all) are returned as they are.
func storable(payload []byte) []byte {
	if !bytes.Contains(payload, []byte(`\u0000`)) {
		return payload
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return payload
	}
	var clean func(any) any
	clean = func(v any) any {
		switch x := v.(type) {
		case string:
			return strings.ReplaceAll(x, "\x00", "\uFFFD")
		case []any:
			for i := range x {
				x[i] = clean(x[i])
			}
		case map[string]any:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[strings.ReplaceAll(k, "\x00", "\uFFFD")] = clean(e)
			}
			return m
		}
		return v
	}
	out, err := json.Marshal(clean(v))
	if err != nil {
		return payload
	}
	return out
}

// ProcessEventArgs is the River job that processes one stored Stripe event.
type ProcessEventArgs struct {
	EventID string `json:"event_id"`
}

// Kind names the job.
func (ProcessEventArgs) Kind() string { return "stripe_event" }

// MaxAttempts is the first try plus the five retries of RetrySchedule.
const MaxAttempts = 6

// InsertOpts makes one job per event (unique by its id) with MaxAttempts attempts.
func (ProcessEventArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
