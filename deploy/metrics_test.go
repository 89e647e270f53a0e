package deploy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/riverqueue/river"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/live"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// metric is one metric the service exports: its kind and labels, with the values a label may
// take where they are a fixed set (nil: any value).
type metric struct {
	kind   string // counter, gauge, histogram
	labels map[string][]string
}

// Label value sets, as the metrics contract of issue 14 names them.
var (
	handlers         = []string{"graphql", "webhook_stripe", "rejections_csv", "exports", "health", "ready", "metrics", "graphiql", "other"}
	operationTypes   = []string{"query", "mutation", "subscription"}
	webhookStatuses  = []string{"received", "processed", "ignored", "retried", "failed", "bad_signature"}
	jobOutcomes      = []string{"completed", "retried", "discarded", "snoozed", "cancelled"}
	rateLimitTiers   = []string{"purchase", "browse", "default"}
	providers        = []string{"millionverifier", "zerobounce"}
	queues           = []string{river.QueueDefault, verify.Queue}
	operationOutcome = []string{"ok", "error", "refused"}
	// errorCodes are the extensions.code values the alerts select; add a code here, from its
	// constant, before an alert uses it.
	errorCodes = []string{string(apperr.Internal), string(live.SubscriberTooSlow)}
)

// exported are the metrics /metrics serves (the contract between the service and these alerts;
// docs/operations.md lists them for operators). Prometheus' own `up` is there for every target.
var exported = map[string]metric{
	"http_requests_total":                          {"counter", map[string][]string{"handler": handlers, "method": nil, "code": nil}},
	"http_request_duration_seconds":                {"histogram", map[string][]string{"handler": handlers, "method": nil, "code": nil}},
	"http_requests_in_flight":                      {"gauge", map[string][]string{"handler": handlers}},
	"graphql_operations_total":                     {"counter", map[string][]string{"type": operationTypes, "name": nil, "outcome": operationOutcome}},
	"graphql_operation_duration_seconds":           {"histogram", map[string][]string{"type": operationTypes, "name": nil}},
	"graphql_errors_total":                         {"counter", map[string][]string{"code": errorCodes}},
	"graphql_guard_rejections_total":               {"counter", map[string][]string{"rule": nil}},
	"rate_limit_refusals_total":                    {"counter", map[string][]string{"tier": rateLimitTiers}},
	"webhook_events_total":                         {"counter", map[string][]string{"type": nil, "status": webhookStatuses}},
	"webhook_event_processing_duration_seconds":    {"histogram", map[string][]string{"type": nil}},
	"webhook_event_retries_total":                  {"counter", map[string][]string{"type": nil}},
	"webhook_events_failed_total":                  {"counter", map[string][]string{"type": nil}},
	"river_jobs_total":                             {"counter", map[string][]string{"kind": nil, "outcome": jobOutcomes}},
	"river_job_duration_seconds":                   {"histogram", map[string][]string{"kind": nil}},
	"river_queue_oldest_available_job_age_seconds": {"gauge", map[string][]string{"queue": queues}},
	"river_jobs_available":                         {"gauge", map[string][]string{"queue": queues}},
	"credits_purchased_total":                      {"counter", nil},
	"credits_spent_total":                          {"counter", nil},
	"leads_ingested_total":                         {"counter", nil},
	"leads_rejected_total":                         {"counter", map[string][]string{"reason": nil}},
	"verification_calls_total":                     {"counter", map[string][]string{"provider": providers, "result": nil}},
	"graphql_subscriptions_active":                 {"gauge", map[string][]string{"field": nil}},
	"graphql_subscription_events_total":            {"counter", map[string][]string{"field": nil}},
	"db_pool_open_connections":                     {"gauge", nil},
	"db_pool_in_use_connections":                   {"gauge", nil},
	"db_pool_idle_connections":                     {"gauge", nil},
	"db_pool_max_open_connections":                 {"gauge", nil},
	"db_pool_wait_count_total":                     {"counter", nil},
	"db_pool_wait_duration_seconds_total":          {"counter", nil},
	"up":                                           {"gauge", nil},
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

// lookup finds the metric a series name belongs to: a metric, or a histogram's _bucket (which
// adds le), _sum or _count series. go_* and process_* are the runtime's collectors.
func lookup(name string) (metric, bool) {
	if m, ok := exported[name]; ok {
		return m, m.kind != "histogram"
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := exported[base]; ok && m.kind == "histogram" {
				if suffix == "_bucket" {
					labels := map[string][]string{"le": nil}
					for k, v := range m.labels {
						labels[k] = v
					}
					m.labels = labels
				}
				return m, true
			}
		}
	}
	if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return metric{kind: "runtime"}, true
	}
	return metric{}, false
}

// checkExpr reports what in expr selects something the service does not export: an unknown
// metric (or a histogram without its suffix), a label the metric does not have, a value outside
// a label's fixed set, or a grouping label none of the expression's metrics has.
func checkExpr(expr string) error {
	q, err := parseQuery(expr)
	if err != nil {
		return err
	}
	if len(q.selectors) == 0 {
		return fmt.Errorf("%q selects no metric", expr)
	}
	available := slices.Clone(targetLabels)
	var errs []string
	for _, sel := range q.selectors {
		m, ok := lookup(sel.name)
		if !ok {
			errs = append(errs, fmt.Sprintf("metric %s is not exported", sel.name))
			continue
		}
		for l := range m.labels {
			available = append(available, l)
		}
		for _, mt := range sel.matchers {
			allowed, has := m.labels[mt.label]
			switch {
			case mt.label == "__name__" || slices.Contains(targetLabels, mt.label) || m.kind == "runtime":
			case !has:
				errs = append(errs, fmt.Sprintf("%s has no label %s", sel.name, mt.label))
			case allowed != nil && (mt.op == "=" || mt.op == "!=") && !slices.Contains(allowed, mt.value):
				errs = append(errs, fmt.Sprintf("%s{%s} is never %q (one of %s)", sel.name, mt.label, mt.value, strings.Join(allowed, ", ")))
			}
		}
	}
	for _, l := range q.grouping {
		if !slices.Contains(available, l) {
			errs = append(errs, fmt.Sprintf("grouping label %s is on none of the expression's metrics", l))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
