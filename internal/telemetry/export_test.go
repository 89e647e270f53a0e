package telemetry

import (
	"context"
	"io"
	"net/http"

	"github.com/getsentry/sentry-go"
)

// ReportWithRequest reports err with r attached the way Sentry's HTTP integrations attach a
// request (headers, cookies, query string, body), so tests can check what BeforeSend lets out.
func (t *Telemetry) ReportWithRequest(ctx context.Context, err error, r *http.Request) {
	r.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
	r.Header.Set("Cookie", "session=secret-cookie")
	body, _ := io.ReadAll(r.Body)
	scope := sentry.NewScope()
	scope.SetRequest(r)
	scope.SetRequestBody(body)
	ev := t.sentry.EventFromException(err, sentry.LevelError)
	ev.Request = sentry.NewRequest(r)
	ev.Request.Data = string(body)
	ev.Request.Cookies = r.Header.Get("Cookie")
	ev.Request.Headers["Authorization"] = r.Header.Get("Authorization")
	t.sentry.CaptureEvent(ev, &sentry.EventHint{Context: ctx}, scope)
}
