package telemetry

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"
)

// Report is what an error report says besides the error: where it happened. It carries ids and
// names only, never a request's body, headers or contact data.
type Report struct {
	// RequestID is the request's X-Request-Id (the requestId clients see in an INTERNAL error).
	RequestID string
	// Operation is the GraphQL operation's name (else its type).
	Operation string
	// UserID is the signed-in caller's id; never their email.
	UserID string
	// Tags are more names to search reports by (path, job_kind, job_id, ...).
	Tags map[string]string
	// Stack is the panicking goroutine's stack (debug.Stack) when the report is made elsewhere,
	// as River's error handler is. Default empty: ReportPanic takes the stack it is called on.
	Stack string
}

func newSentryClient(o Options) (*sentry.Client, error) {
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         o.SentryDSN,
		Environment: o.SentryEnvironment,
		Release:     release(),
		// No IPs, cookies, headers or bodies added by integrations; scrubEvent removes whatever
		// might still carry contact data or credentials.
		SendDefaultPII:   false,
		BeforeSend:       func(ev *sentry.Event, _ *sentry.EventHint) *sentry.Event { return scrubEvent(ev) },
		BeforeBreadcrumb: scrubBreadcrumb,
		HTTPTransport:    o.SentryTransport,
		// ContextifyFrames would read source lines around each frame into the report: there are
		// no sources beside the binary in production, and source lines are not ours to send.
		Integrations: func(in []sentry.Integration) []sentry.Integration {
			out := in[:0]
			for _, i := range in {
				if i.Name() != "ContextifyFrames" {
					out = append(out, i)
				}
			}
			return out
		},
	})
	if err != nil {
		return nil, fmt.Errorf("SENTRY_DSN: %w", err)
	}
	// Reports carry the trace and span of the context they were made in, so an error found in
	// Sentry leads to its trace.
	client.SetExternalContextTraceResolver(func(ctx context.Context) (sentry.TraceID, sentry.SpanID, bool) {
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() {
			return sentry.TraceID{}, sentry.SpanID{}, false
		}
		return sentry.TraceID(sc.TraceID()), sentry.SpanID(sc.SpanID()), true
	})
	return client, nil
}

// release names the build in reports: its VCS revision when it was built with one, else its
// module version. (Without a release Sentry's SDK would run git in the working directory.)
func release() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "leadmarket"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return "leadmarket@" + s.Value
		}
	}
	return "leadmarket@" + info.Main.Version
}

// Reporting reports whether errors are sent to Sentry.
func (t *Telemetry) Reporting() bool { return t != nil && t.sentry != nil }

// ReportError sends err to Sentry (when SENTRY_DSN is set) with r. err's message is scrubbed of
// anything that looks like an email address, a phone number or a token before it leaves.
func (t *Telemetry) ReportError(ctx context.Context, err error, r Report) {
	if !t.Reporting() || err == nil {
		return
	}
	ev := t.sentry.EventFromException(err, sentry.LevelError)
	if n := len(ev.Exception); n > 0 && ev.Exception[n-1].Stacktrace == nil {
		ev.Exception[n-1].Stacktrace = sentry.NewStacktrace()
	}
	t.capture(ctx, ev, r)
}

// ReportPanic sends a recovered panic to Sentry with r and the stack of the goroutine that
// panicked: call it in the deferred function that recovered v.
func (t *Telemetry) ReportPanic(ctx context.Context, v any, r Report) {
	if !t.Reporting() {
		return
	}
	ev := sentry.NewEvent()
	ev.Level = sentry.LevelFatal
	ex := sentry.Exception{Type: "panic", Value: fmt.Sprint(v), Mechanism: &sentry.Mechanism{Type: "recover", Handled: new(false)}}
	if r.Stack == "" {
		ex.Stacktrace = sentry.NewStacktrace()
	} else {
		ev.Contexts["panic"] = sentry.Context{"stack": r.Stack}
	}
	ev.Exception = []sentry.Exception{ex}
	t.capture(ctx, ev, r)
}

func (t *Telemetry) capture(ctx context.Context, ev *sentry.Event, r Report) {
	scope := sentry.NewScope()
	if r.RequestID != "" {
		scope.SetTag("request_id", r.RequestID)
	}
	if r.Operation != "" {
		scope.SetTag("operation", r.Operation)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		scope.SetTag("trace_id", sc.TraceID().String())
	}
	for k, v := range r.Tags {
		scope.SetTag(k, v)
	}
	if r.UserID != "" {
		scope.SetUser(sentry.User{ID: r.UserID})
	}
	t.sentry.CaptureEvent(ev, &sentry.EventHint{Context: ctx}, scope)
}
