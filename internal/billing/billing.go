// Package billing sells credits through Stripe: credit packages, Checkout Sessions for them, and
// the Stripe webhook whose events grant credits once, take them back on refunds and flag disputes,
// processed on River with a fixed retry schedule and an admin's view of every event.
package billing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// Options configure the Service.
type Options struct {
	// StripeSecretKey is STRIPE_SECRET_KEY; empty makes purchaseCredits unavailable.
	StripeSecretKey string
	// StripeAPIURL is STRIPE_API_URL (https://api.stripe.com, or stripe-mock's address).
	StripeAPIURL string
	// WebhookSecrets are STRIPE_WEBHOOK_SECRET's endpoint secrets: a webhook signed under any of
	// them is accepted (during a roll Stripe signs with the new one and, for up to 24 hours, the
	// old one too). Empty refuses every webhook.
	WebhookSecrets []string
	Logger         *slog.Logger
	// Metrics counts webhook events (received, refused, each processing attempt, FAILED) and
	// the credits Stripe payments grant. Default nil: nothing is counted.
	Metrics *metrics.Metrics
	// InstrumentTransportFunc wraps the transport of the Stripe API client (tracing: a client
	// span per call). Default nil: stripe-go's own client.
	InstrumentTransportFunc func(http.RoundTripper) http.RoundTripper
}

// stripeTimeout bounds a Stripe API call, as stripe-go's default client does.
const stripeTimeout = 80 * time.Second

// Service is billing's entry point.
type Service struct {
	db     *bun.DB
	queue  *jobs.Queue
	stripe *client.API
	opts   Options
	now    func() time.Time
	// refusals bounds the security events of refused webhook deliveries.
	refusals *refusalThrottle
}

// NewService returns a Service on db that enqueues event processing on queue.
func NewService(db *bun.DB, queue *jobs.Queue, o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Service{db: db, queue: queue, opts: o, now: time.Now, refusals: newRefusalThrottle(RefusalEventWindow)}
	if o.StripeSecretKey != "" {
		bc := &stripe.BackendConfig{
			URL: stripe.String(o.StripeAPIURL), LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelError},
		}
		if o.InstrumentTransportFunc != nil {
			// stripe-go's default client, with the transport wrapped.
			bc.HTTPClient = &http.Client{Timeout: stripeTimeout, Transport: o.InstrumentTransportFunc(http.DefaultTransport)}
		}
		backends := &stripe.Backends{API: stripe.GetBackendWithConfig(stripe.APIBackend, bc)}
		backends.Connect, backends.Uploads = backends.API, backends.API
		s.stripe = &client.API{}
		s.stripe.Init(o.StripeSecretKey, backends)
	}
	return s
}

// Package is a credit package on sale.
type Package struct {
	ID         string `bun:"id"`
	Name       string `bun:"name"`
	Credits    int64  `bun:"credits"`
	PriceCents int64  `bun:"price_cents"`
	Currency   string `bun:"currency"`
}

// Packages returns the active packages, cheapest first.
func (s *Service) Packages(ctx context.Context) ([]Package, error) {
	var ps []Package
	if err := s.db.NewRaw(`SELECT id, name, credits, price_cents, currency FROM credit_packages
		WHERE active ORDER BY price_cents, id`).Scan(ctx, &ps); err != nil {
		return nil, fmt.Errorf("credit packages: %w", err)
	}
	return ps, nil
}
