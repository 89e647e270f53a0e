package telemetry

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/getsentry/sentry-go"
)

// What must never leave in an error report, whatever put it in a message: email addresses,
// phone numbers, bearer tokens and JWTs (ours, Supabase's), Stripe keys and webhook secrets.
var (
	emailPattern  = regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+`)
	jwtPattern    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	bearerPattern = regexp.MustCompile(`(?i)\bbearer\s+\S+`)
	secretPattern = regexp.MustCompile(`\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]+|\bwhsec_[A-Za-z0-9]+`)
	// A phone number: E.164 (+ and 8 to 15 digits, as leads store them), 3-3-4 digits with the
	// usual separators, or a bare run of 10 to 15 digits. Dates, UUIDs and hex ids stay.
	phonePattern = regexp.MustCompile(`\+\d{8,15}\b|\(?\b\d{3}\)?[ .-]?\d{3}[ .-]\d{4}\b|\b\d{10,15}\b`)
)

// Scrub replaces what looks like contact data or a credential in s with a placeholder.
func Scrub(s string) string {
	if s == "" {
		return s
	}
	s = bearerPattern.ReplaceAllString(s, "[token]")
	s = jwtPattern.ReplaceAllString(s, "[token]")
	s = secretPattern.ReplaceAllString(s, "[secret]")
	s = emailPattern.ReplaceAllString(s, "[email]")
	return phonePattern.ReplaceAllString(s, "[phone]")
}

// sensitiveHeaders are dropped from a report's request whatever SendDefaultPII says.
var sensitiveHeaders = []string{"Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "Stripe-Signature", "X-Api-Key"}

// scrubEvent is the Sentry client's BeforeSend: no request body, cookies, credentials or query
// string leave, and messages, exception values and breadcrumbs lose whatever looks
// like an email address, a phone number or a token.
func scrubEvent(ev *sentry.Event) *sentry.Event {
	if ev == nil {
		return nil
	}
	if r := ev.Request; r != nil {
		r.Data, r.Cookies, r.QueryString, r.Env = "", "", "", nil
		if u, err := url.Parse(r.URL); err == nil {
			u.RawQuery, u.Fragment, u.User = "", "", nil
			r.URL = u.String()
		} else {
			r.URL = ""
		}
		for k := range r.Headers {
			for _, h := range sensitiveHeaders {
				if strings.EqualFold(k, h) {
					delete(r.Headers, k)
				}
			}
		}
	}
	ev.Message = Scrub(ev.Message)
	for i := range ev.Exception {
		ev.Exception[i].Value = Scrub(ev.Exception[i].Value)
		if st := ev.Exception[i].Stacktrace; st != nil {
			for j := range st.Frames {
				f := &st.Frames[j]
				f.PreContext, f.ContextLine, f.PostContext, f.Vars = nil, "", nil, nil
			}
		}
	}
	for _, b := range ev.Breadcrumbs {
		scrubBreadcrumb(b, nil)
	}
	// Only the user's id: no email, name or IP address.
	ev.User = sentry.User{ID: ev.User.ID}
	return ev
}

// scrubBreadcrumb is the Sentry client's BeforeBreadcrumb: the same scrubbing for breadcrumbs.
func scrubBreadcrumb(b *sentry.Breadcrumb, _ *sentry.BreadcrumbHint) *sentry.Breadcrumb {
	if b == nil {
		return nil
	}
	b.Message = Scrub(b.Message)
	for k, v := range b.Data {
		if s, ok := v.(string); ok {
			b.Data[k] = Scrub(s)
		} else {
			delete(b.Data, k)
		}
	}
	return b
}
