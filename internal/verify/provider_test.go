package verify_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/verify"
)

const (
	mvKey = "mv-test-key-0001"
	zbKey = "zb-test-key-0001"
)

// chainOn is MillionVerifier then ZeroBounce on the fakes, as the service builds it.
func chainOn(mv, zb *fake, timeout time.Duration) verify.Chain {
	return verify.Chain{
		&verify.MillionVerifier{BaseURL: mv.URL(), APIKey: mvKey, Timeout: timeout},
		&verify.ZeroBounce{BaseURL: zb.URL(), APIKey: zbKey, Timeout: timeout},
	}
}

// mvFailures are MillionVerifier's failures: each must be taken for a failure (never a verdict)
// and send the address on to ZeroBounce.
var mvFailures = []struct {
	name   string
	answer answer
	// errText is in the attempt's error when ZeroBounce fails too.
	errText string
}{
	{"result error with HTTP 200", answer{Body: mvError("Insufficient credits")}, "Insufficient credits"},
	{"HTTP 429", answer{Status: http.StatusTooManyRequests, Body: `{"error":"Too many requests"}`}, "HTTP 429"},
	{"HTTP 500", answer{Status: http.StatusInternalServerError, Body: `<html>oops</html>`}, "HTTP 500"},
	{"timeout", answer{Body: mvBody("ok"), Delay: 3 * time.Second}, "no answer within"},
	{"not JSON", answer{Body: `<html><body>Service Unavailable</body></html>`}, "not JSON"},
	{"undocumented result", answer{Body: `{"result":"maybe","resultcode":9}`}, "undocumented result"},
}

// zbFailures are ZeroBounce's failures, as it documents them.
var zbFailures = []struct {
	name    string
	answer  answer
	errText string
}{
	{"error with HTTP 200", answer{Body: `{"error":"Invalid API key or your account ran out of credits"}`}, "ran out of credits"},
	{"message with HTTP 200", answer{Body: `{"message":"Internal server error"}`}, "Internal server error"},
	{"HTTP 400", answer{Status: http.StatusBadRequest, Body: `{"error":"Missing parameter"}`}, "HTTP 400"},
	{"HTTP 429", answer{Status: http.StatusTooManyRequests, Body: `{"error":"Rate limit"}`}, "HTTP 429"},
	{"HTTP 500", answer{Status: http.StatusInternalServerError, Body: ``}, "HTTP 500"},
	{"HTTP 503", answer{Status: http.StatusServiceUnavailable, Body: `Service Unavailable`}, "HTTP 503"},
	{"timeout", answer{Body: zbBody("valid", ""), Delay: 3 * time.Second}, "no answer within"},
	{"not JSON", answer{Body: `valid`}, "not JSON"},
}

// Every row of the status table, through both providers: MillionVerifier's own answers decide
// without ZeroBounce; ZeroBounce's decide when MillionVerifier cannot tell or fails.
func TestChain_EveryStatusThroughBothProviders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mv, zb := newMV(t), newZB(t)
	ch := chainOn(mv, zb, time.Second)

	for _, tc := range []struct{ result, want string }{
		{"ok", lead.StatusValid},
		{"catch_all", lead.StatusCatchAll},
		{"invalid", lead.StatusInvalid},
		{"disposable", lead.StatusInvalid},
	} {
		email := "mv-" + tc.result + "@example.com"
		mv.on(email, answer{Body: mvBody(tc.result)})
		o := ch.Check(ctx, email)
		require.NoError(t, o.Err, tc.result)
		require.Equal(t, tc.want, o.Status, "MillionVerifier %s", tc.result)
		require.Len(t, o.Calls, 1, "MillionVerifier %s decides alone", tc.result)
		require.Equal(t, verify.ProviderMillionVerifier, o.Calls[0].Provider)
		require.JSONEq(t, mvBody(tc.result), string(o.Calls[0].Raw), "the raw answer is kept")
		require.Zero(t, zb.callsOf(email))
	}

	zbRows := []struct{ status, sub, want string }{
		{"valid", "", lead.StatusValid},
		{"invalid", "mailbox_not_found", lead.StatusInvalid},
		{"catch-all", "", lead.StatusCatchAll},
		{"spamtrap", "", lead.StatusInvalid},
		{"abuse", "", lead.StatusRisky},
		{"do_not_mail", "disposable", lead.StatusInvalid},
		{"do_not_mail", "toxic", lead.StatusInvalid},
		{"do_not_mail", "possible_trap", lead.StatusInvalid},
		{"do_not_mail", "global_suppression", lead.StatusInvalid},
		{"do_not_mail", "role_based", lead.StatusRisky},
		{"do_not_mail", "mx_forward", lead.StatusRisky},
	}
	// Through ZeroBounce after MillionVerifier's unknown, and after each of its failures (its
	// timeout is TestChain_FailuresFallThroughAndFail's: it would take a second each here).
	type step struct {
		name   string
		answer answer
	}
	mvFirst := []step{{"unknown", answer{Body: mvBody("unknown")}}}
	for _, f := range mvFailures {
		if f.name != "timeout" {
			mvFirst = append(mvFirst, step{f.name, f.answer})
		}
	}
	for _, first := range mvFirst {
		for _, row := range zbRows {
			email := "zb-" + row.status + "-" + row.sub + "-" + first.name + "@example.com"
			mv.on(email, first.answer)
			zb.on(email, answer{Body: zbBody(row.status, row.sub)})
			o := ch.Check(ctx, email)
			require.NoError(t, o.Err, "%s then %s/%s", first.name, row.status, row.sub)
			require.Equal(t, row.want, o.Status, "MillionVerifier %s, then ZeroBounce %s/%s", first.name, row.status, row.sub)
			require.Len(t, o.Calls, 2)
			require.Equal(t, verify.ProviderZeroBounce, o.Calls[1].Provider)
			require.NotNil(t, o.Calls[1].Raw)
			if first.name == "unknown" {
				require.NoError(t, o.Calls[0].Err)
				require.Equal(t, lead.StatusUnknown, o.Calls[0].Status, "unknown is an answer")
			} else {
				require.Error(t, o.Calls[0].Err, "%s is a failure, never a verdict", first.name)
				require.Empty(t, o.Calls[0].Status)
			}
		}
	}

	// unknown from both: UNKNOWN, a verdict.
	email := "both-unknown@example.com"
	mv.on(email, answer{Body: mvBody("unknown")})
	zb.on(email, answer{Body: zbBody("unknown", "greylisted")})
	o := ch.Check(ctx, email)
	require.NoError(t, o.Err)
	require.Equal(t, lead.StatusUnknown, o.Status)
	require.Len(t, o.Calls, 2)
}

// MillionVerifier failing in every documented way, then ZeroBounce answering: ZeroBounce's answer
// is the verdict. ZeroBounce failing too: a failed attempt with the last error, never a verdict.
func TestChain_FailuresFallThroughAndFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mv, zb := newMV(t), newZB(t)
	ch := chainOn(mv, zb, time.Second)
	for _, f := range mvFailures {
		email := "mvfail-" + f.name + "@example.com"
		mv.on(email, f.answer)
		zb.on(email, answer{Body: zbBody("catch-all", "")})
		o := ch.Check(ctx, email)
		require.NoError(t, o.Err, f.name)
		require.Equal(t, lead.StatusCatchAll, o.Status, "MillionVerifier %s, then ZeroBounce answers", f.name)
		require.Len(t, o.Calls, 2)
		require.ErrorContains(t, o.Calls[0].Err, f.errText, f.name)
		require.NotContains(t, o.Calls[0].Err.Error(), mvKey, "errors never carry the API key")
	}
	for _, f := range zbFailures {
		email := "bothfail-" + f.name + "@example.com"
		mv.on(email, answer{Status: http.StatusBadGateway})
		zb.on(email, f.answer)
		o := ch.Check(ctx, email)
		require.Empty(t, o.Status, "ZeroBounce %s is no verdict", f.name)
		require.False(t, o.Interrupted)
		require.ErrorContains(t, o.Err, "zerobounce: ", f.name)
		require.ErrorContains(t, o.Err, f.errText, f.name)
		require.NotContains(t, o.Err.Error(), zbKey)
		require.Len(t, o.Calls, 2)
	}
	// MillionVerifier cannot tell and ZeroBounce fails: the attempt fails (ZeroBounce may tell
	// next time) rather than settling for UNKNOWN.
	email := "unknown-then-fail@example.com"
	mv.on(email, answer{Body: mvBody("unknown")})
	zb.on(email, answer{Status: http.StatusTooManyRequests})
	o := ch.Check(ctx, email)
	require.Empty(t, o.Status)
	require.ErrorContains(t, o.Err, "HTTP 429")
}

// A provider without a key is skipped: the chain is what is configured; none at all is no
// verdict. A context that ends mid-call is an interruption, not a failed attempt.
func TestChain_SkippedProvidersAndInterruption(t *testing.T) {
	t.Parallel()
	zb := newZB(t)
	zbOnly := verify.Chain{&verify.ZeroBounce{BaseURL: zb.URL(), APIKey: zbKey, Timeout: time.Second}}
	o := zbOnly.Check(context.Background(), "x@example.com")
	require.Equal(t, lead.StatusValid, o.Status)
	require.Len(t, o.Calls, 1)

	o = verify.Chain{}.Check(context.Background(), "x@example.com")
	require.ErrorIs(t, o.Err, verify.ErrNoProvider)

	zb.on("slow@example.com", answer{Body: zbBody("valid", ""), Delay: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	o = zbOnly.Check(ctx, "slow@example.com")
	require.True(t, o.Interrupted)
	require.Empty(t, o.Calls, "an interrupted call is not kept as the provider's failure")

	// The service skips providers without a key.
	svc := verify.NewService(nil, nil, verify.Options{ZeroBounceAPIKey: "k"})
	require.Equal(t, []string{verify.ProviderZeroBounce}, svc.Providers())
	require.True(t, svc.Enabled())
	require.False(t, verify.NewService(nil, nil, verify.Options{}).Enabled())
}

func TestStatusTables(t *testing.T) {
	t.Parallel()
	for result, want := range map[string]string{"ok": "VALID", "catch_all": "CATCH_ALL", "unknown": "UNKNOWN",
		"invalid": "INVALID", "disposable": "INVALID"} {
		got, ok := verify.MillionVerifierStatus(result)
		require.True(t, ok, result)
		require.Equal(t, want, got, result)
	}
	for _, r := range []string{"error", "", "OK"} {
		_, ok := verify.MillionVerifierStatus(r)
		require.False(t, ok, r)
	}
	_, ok := verify.ZeroBounceStatus("valid?", "")
	require.False(t, ok)
}

func TestBackoffGrows(t *testing.T) {
	t.Parallel()
	for attempt, base := range map[int]time.Duration{1: time.Minute, 2: 4 * time.Minute, 3: 16 * time.Minute, 4: time.Hour, 9: time.Hour} {
		d := verify.Backoff(attempt)
		require.GreaterOrEqual(t, d, base, "attempt %d", attempt)
		require.LessOrEqual(t, d, base+base/10, "attempt %d", attempt)
	}
}
