package httpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.0/8", " 192.168.1.7 ", "2001:db8::/32", "::ffff:172.16.0.1"})
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("172.16.0.1/32"),
	}, got)
	_, err = ParseTrustedProxies([]string{"10.0.0.0/8", "proxy.internal"})
	require.ErrorContains(t, err, "proxy.internal")
}

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"127.0.0.1", "10.0.0.0/8"})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, peer string
		xff        []string
		trusted    []netip.Prefix
		want       string
	}{
		{"no proxies configured: the peer", "127.0.0.1:5000", []string{"203.0.113.1"}, nil, "127.0.0.1"},
		{"untrusted peer: X-Forwarded-For ignored", "198.51.100.7:5000", []string{"203.0.113.1"}, trusted, "198.51.100.7"},
		{"trusted peer: the last hop", "127.0.0.1:5000", []string{"203.0.113.1"}, trusted, "203.0.113.1"},
		{"client-written hops are not believed", "127.0.0.1:5000", []string{"1.2.3.4, 203.0.113.1"}, trusted, "203.0.113.1"},
		{"trusted hops are skipped", "127.0.0.1:5000", []string{"203.0.113.1, 10.0.0.5", "10.0.0.6"}, trusted, "203.0.113.1"},
		{"only trusted hops: the farthest", "127.0.0.1:5000", []string{"10.0.0.5"}, trusted, "10.0.0.5"},
		{"no header: the peer", "127.0.0.1:5000", nil, trusted, "127.0.0.1"},
		{"garbage stops the walk", "127.0.0.1:5000", []string{"203.0.113.1, not-an-ip"}, trusted, "127.0.0.1"},
		{"IPv6", "[2001:db8::1]:5000", nil, trusted, "2001:db8::1"},
		{"IPv4-mapped IPv6 peer", "[::ffff:127.0.0.1]:5000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		require.Equal(t, tc.want, clientIP(r, tc.trusted), tc.name)
	}
}

// TestOnlyGraphQLIsBehindTheGraphQLStack checks the routing the guardrails rely on: the webhook
// route reaches its handler directly (never through /graphql's handler, where rate limits
// live), and every response carries the security headers.
func TestOnlyGraphQLIsBehindTheGraphQLStack(t *testing.T) {
	var graphqlCalls, webhookCalls atomic.Int64
	var seenIP atomic.Value
	srv := New(Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			graphqlCalls.Add(1)
			seenIP.Store(reqinfo.From(r.Context()).IP)
			w.Header().Set("RateLimit-Remaining", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		}),
		StripeWebhook: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			webhookCalls.Add(1)
			w.WriteHeader(http.StatusOK)
		}),
		Authenticator:  noAuth{},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
		CORSOrigins:    []string{"https://app.example.com"},
	})
	h := srv.Handler()
	for range 50 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader("{}")))
		require.Equal(t, http.StatusOK, w.Code)
		require.Empty(t, w.Header().Get("RateLimit-Remaining"))
		require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
		require.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
	}
	require.EqualValues(t, 50, webhookCalls.Load())
	require.Zero(t, graphqlCalls.Load())

	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader("{}"))
	r.RemoteAddr = "192.0.2.1:4000"
	r.Header.Set("X-Forwarded-For", "203.0.113.50")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	require.Equal(t, "203.0.113.50", seenIP.Load(), "the request info carries the client behind the trusted proxy")
}

type noAuth struct{}

func (noAuth) Authenticate(_ context.Context, _ string) (*auth.Caller, error) { return nil, nil }

// /readyz is public: it names why the service is not ready, never the error behind it (which may
// carry the database's user, host or file names); that goes to the log.
func TestReadyzShowsOnlyTheReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&NotReady{Reason: "database unreachable", Err: errors.New("connect user=lm_app host=10.1.2.3 password=hunter2")}, "database unreachable"},
		{errors.New("dial tcp 10.1.2.3:5432: user=lm_app"), "not ready"},
	} {
		var logs strings.Builder
		s := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), GraphQL: http.NotFoundHandler(),
			ReadyFunc: func(context.Context) error { return tc.err }})
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.JSONEq(t, `{"status":"unavailable","reason":"`+tc.want+`"}`, rec.Body.String())
		require.Contains(t, logs.String(), "10.1.2.3", "operators still see the cause")
	}
}
