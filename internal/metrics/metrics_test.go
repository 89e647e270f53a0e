package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// A nil *Metrics records nothing and never panics: code that does not care passes none.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Register()
	m.SQLStatements(3)
	m.GraphQLOperation("query", "x", OutcomeOK)
	m.GraphQLDuration("query", "x", time.Second)
	m.GraphQLError("FORBIDDEN")
	m.GuardRejection("depth")
	m.RateLimitRefusal("BROWSE")
	m.SubscriptionStarted("f")()
	m.SubscriptionEvent("f")
	m.WebhookEvent("t", WebhookReceived)
	m.WebhookAttempt("t", WebhookFailed, time.Second)
	m.WebhookEventsFailed("t", 2)
	m.Job("k", JobCompleted, time.Second)
	m.CreditsPurchased(1)
	m.CreditsSpent(1)
	m.LeadsIngested(1)
	m.LeadsRejected("INVALID_EMAIL", 1)
	m.VerificationCall("zerobounce", "VALID", false)
	fams, err := m.Gatherer().Gather()
	require.NoError(t, err)
	require.Empty(t, fams)
}

func TestLabelsFollowTheContract(t *testing.T) {
	m := New()
	m.RateLimitRefusal("PURCHASE")
	m.RateLimitRefusal("BROWSE")
	m.RateLimitRefusal("STANDARD")
	m.WebhookAttempt("charge.refunded", WebhookRetried, 10*time.Millisecond)
	m.WebhookAttempt("charge.refunded", WebhookFailed, 10*time.Millisecond)
	m.WebhookEventsFailed("charge.refunded", 2)
	m.VerificationCall("millionverifier", "RISKY", false)
	m.VerificationCall("millionverifier", "", true)
	end := m.SubscriptionStarted("leadPurchased")
	end()
	end() // a second end is a no-op

	require.NoError(t, testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(`
# HELP rate_limit_refusals_total Operations refused by the rate limiter (RATE_LIMITED), by tier.
# TYPE rate_limit_refusals_total counter
rate_limit_refusals_total{tier="browse"} 1
rate_limit_refusals_total{tier="default"} 1
rate_limit_refusals_total{tier="purchase"} 1
# HELP webhook_event_retries_total Failed attempts at a Stripe event that will be retried, by type.
# TYPE webhook_event_retries_total counter
webhook_event_retries_total{type="charge.refunded"} 1
# HELP webhook_events_failed_total Stripe events that became FAILED, by type.
# TYPE webhook_events_failed_total counter
webhook_events_failed_total{type="charge.refunded"} 3
# HELP webhook_events_total Stripe webhook events by type and status (received, processed, ignored, retried, failed, bad_signature).
# TYPE webhook_events_total counter
webhook_events_total{status="failed",type="charge.refunded"} 3
webhook_events_total{status="retried",type="charge.refunded"} 1
# HELP verification_calls_total Email verification provider calls by provider and result (the verdict in lower case, or error).
# TYPE verification_calls_total counter
verification_calls_total{provider="millionverifier",result="error"} 1
verification_calls_total{provider="millionverifier",result="risky"} 1
# HELP graphql_subscriptions_active GraphQL subscriptions open on this instance by root field.
# TYPE graphql_subscriptions_active gauge
graphql_subscriptions_active{field="leadPurchased"} 0
`), "rate_limit_refusals_total", "webhook_event_retries_total", "webhook_events_failed_total", "webhook_events_total",
		"verification_calls_total", "graphql_subscriptions_active"))
	require.Equal(t, 1, testutil.CollectAndCount(m.webhookTime), "one series: the event type")
}
