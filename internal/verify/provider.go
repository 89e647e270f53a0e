package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// Provider names, as lead_verifications and verificationStats name them.
const (
	ProviderMillionVerifier = "millionverifier"
	ProviderZeroBounce      = "zerobounce"
)

// Call is one provider call as it went: our reading of the answer, or why there was none.
type Call struct {
	Provider string
	// Status is our status for the answer (lead.StatusValid, ...); empty when the call failed.
	Status string
	// Err is why the call failed: a timeout, an HTTP error, the provider's own error, an answer
	// that is not what the provider documents. Its text never holds the API key.
	Err error
	// Raw is the provider's JSON answer as it came (also for its errors); nil when there was none
	// or it was not JSON.
	Raw json.RawMessage
	// Latency is how long the call took.
	Latency time.Duration
}

// Provider asks one email verification service about an address.
type Provider interface {
	// Name is the provider's name (ProviderMillionVerifier, ProviderZeroBounce).
	Name() string
	// Check asks about email and returns the call; it never returns without a Status or an Err.
	Check(ctx context.Context, email string) Call
}

// maxAnswerBytes bounds what is read of an answer: the providers' are a few hundred bytes.
const maxAnswerBytes = 64 << 10

// get sends GET rawURL within timeout and returns the status code and body. A transport error
// comes back without the URL, whose query holds the API key.
func get(ctx context.Context, client *http.Client, rawURL string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, nil, errors.New("bad provider URL")
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err == nil {
		defer res.Body.Close()
		var body []byte
		body, err = io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
		if err == nil {
			return res.StatusCode, body, nil
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return 0, nil, fmt.Errorf("no answer within %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return 0, nil, fmt.Errorf("request failed: %w", err)
}

// jsonOrNil returns body when it is one JSON value, else nil.
func jsonOrNil(body []byte) json.RawMessage {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || !json.Valid(body) {
		return nil
	}
	return json.RawMessage(body)
}

// snippet is the start of an answer that is not what it should be, for the error text.
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return strconv.Quote(s)
}

// MillionVerifier is the MillionVerifier v3 single-address API:
// GET {BaseURL}/api/v3/?api=KEY&email=EMAIL&timeout=SECONDS.
type MillionVerifier struct {
	// BaseURL is MILLIONVERIFIER_URL. Default https://api.millionverifier.com.
	BaseURL string
	// APIKey is MILLIONVERIFIER_API_KEY.
	APIKey string
	// Timeout bounds a call (VERIFY_TIMEOUT); MillionVerifier is asked to answer within it.
	Timeout time.Duration
	// Client sends the requests. Default http.DefaultClient.
	Client *http.Client
}

// Name is ProviderMillionVerifier.
func (*MillionVerifier) Name() string { return ProviderMillionVerifier }

// millionVerifierAnswer is the part of MillionVerifier's answer we read.
type millionVerifierAnswer struct {
	Result     string `json:"result"`
	ResultCode int    `json:"resultcode"`
	SubResult  string `json:"subresult"`
	Error      string `json:"error"`
}

// millionVerifierResults are the results by resultcode.
var millionVerifierResults = map[int]string{1: "ok", 2: "catch_all", 3: "unknown", 4: "error", 5: "disposable", 6: "invalid"}

// MillionVerifierStatus is our status for a MillionVerifier result: ok is VALID, catch_all
// CATCH_ALL, unknown UNKNOWN (ask ZeroBounce), invalid and disposable INVALID. It reports false
// for error and for a result it does not document.
func MillionVerifierStatus(result string) (string, bool) {
	switch result {
	case "ok":
		return lead.StatusValid, true
	case "catch_all":
		return lead.StatusCatchAll, true
	case "unknown":
		return lead.StatusUnknown, true
	case "invalid", "disposable":
		return lead.StatusInvalid, true
	}
	return "", false
}

// Check asks MillionVerifier about email. Its errors (a bad key, no credits, a blocked IP) come
// with HTTP 200 and result "error": they are failures, never a verdict.
func (m *MillionVerifier) Check(ctx context.Context, email string) Call {
	start := time.Now()
	// MillionVerifier's own timeout (2 to 60 s) is a second under ours, so that it answers
	// "unknown" before we give up on it.
	secs := min(max(int(m.Timeout.Seconds())-1, 2), 60)
	q := url.Values{"api": {m.APIKey}, "email": {email}, "timeout": {strconv.Itoa(secs)}}
	code, body, err := get(ctx, clientOr(m.Client), strings.TrimRight(m.BaseURL, "/")+"/api/v3/?"+q.Encode(), m.Timeout)
	c := Call{Provider: ProviderMillionVerifier, Raw: jsonOrNil(body)}
	c.Status, c.Err = m.read(code, body, err)
	c.Latency = time.Since(start)
	return c
}

func (m *MillionVerifier) read(code int, body []byte, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var a millionVerifierAnswer
	decodeErr := json.Unmarshal(body, &a)
	if code != http.StatusOK {
		if decodeErr == nil && a.Error != "" {
			return "", fmt.Errorf("HTTP %d: %s", code, a.Error)
		}
		return "", fmt.Errorf("HTTP %d", code)
	}
	if decodeErr != nil {
		return "", fmt.Errorf("answer is not JSON: %s", snippet(body))
	}
	result := a.Result
	if result == "" {
		result = millionVerifierResults[a.ResultCode]
	}
	if result == "error" {
		msg := a.Error
		if msg == "" {
			msg = "no detail"
		}
		return "", fmt.Errorf("provider error: %s", msg)
	}
	status, ok := MillionVerifierStatus(result)
	if !ok {
		return "", fmt.Errorf("undocumented result %q", result)
	}
	return status, nil
}

// ZeroBounce is the ZeroBounce v2 validate API:
// GET {BaseURL}/v2/validate?api_key=KEY&email=EMAIL&ip_address=.
type ZeroBounce struct {
	// BaseURL is ZEROBOUNCE_URL. Default https://api.zerobounce.net.
	BaseURL string
	// APIKey is ZEROBOUNCE_API_KEY.
	APIKey string
	// Timeout bounds a call (VERIFY_TIMEOUT).
	Timeout time.Duration
	// Client sends the requests. Default http.DefaultClient.
	Client *http.Client
}

// Name is ProviderZeroBounce.
func (*ZeroBounce) Name() string { return ProviderZeroBounce }

// zeroBounceAnswer is the part of ZeroBounce's answer we read.
type zeroBounceAnswer struct {
	Status    string `json:"status"`
	SubStatus string `json:"sub_status"`
	Error     string `json:"error"`
	Message   string `json:"message"`
}

// ZeroBounceStatus is our status for a ZeroBounce status and sub_status: valid is VALID;
// invalid, spamtrap, and do_not_mail with sub_status disposable, toxic, possible_trap or
// global_suppression are INVALID; catch-all is CATCH_ALL; abuse and any other do_not_mail are
// RISKY; unknown is UNKNOWN. It reports false for a status it does not document.
func ZeroBounceStatus(status, subStatus string) (string, bool) {
	switch status {
	case "valid":
		return lead.StatusValid, true
	case "invalid", "spamtrap":
		return lead.StatusInvalid, true
	case "catch-all":
		return lead.StatusCatchAll, true
	case "unknown":
		return lead.StatusUnknown, true
	case "abuse":
		return lead.StatusRisky, true
	case "do_not_mail":
		switch subStatus {
		case "disposable", "toxic", "possible_trap", "global_suppression":
			return lead.StatusInvalid, true
		}
		return lead.StatusRisky, true
	}
	return "", false
}

// Check asks ZeroBounce about email. Its errors are a JSON object with error (or message), or
// HTTP 400, 429 or 5xx: failures, never a verdict.
func (z *ZeroBounce) Check(ctx context.Context, email string) Call {
	start := time.Now()
	// ip_address is required and may be empty.
	rawURL := strings.TrimRight(z.BaseURL, "/") + "/v2/validate?api_key=" + url.QueryEscape(z.APIKey) +
		"&email=" + url.QueryEscape(email) + "&ip_address="
	code, body, err := get(ctx, clientOr(z.Client), rawURL, z.Timeout)
	c := Call{Provider: ProviderZeroBounce, Raw: jsonOrNil(body)}
	c.Status, c.Err = z.read(code, body, err)
	c.Latency = time.Since(start)
	return c
}

func (z *ZeroBounce) read(code int, body []byte, err error) (string, error) {
	if err != nil {
		return "", err
	}
	var a zeroBounceAnswer
	decodeErr := json.Unmarshal(body, &a)
	msg := a.Error
	if msg == "" {
		msg = a.Message
	}
	if code != http.StatusOK {
		if decodeErr == nil && msg != "" {
			return "", fmt.Errorf("HTTP %d: %s", code, msg)
		}
		return "", fmt.Errorf("HTTP %d", code)
	}
	if decodeErr != nil {
		return "", fmt.Errorf("answer is not JSON: %s", snippet(body))
	}
	if a.Status == "" {
		if msg == "" {
			msg = "no status in the answer"
		}
		return "", fmt.Errorf("provider error: %s", msg)
	}
	status, ok := ZeroBounceStatus(a.Status, a.SubStatus)
	if !ok {
		return "", fmt.Errorf("undocumented status %q", a.Status)
	}
	return status, nil
}

func clientOr(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}

// ErrNoProvider is an attempt's error when no provider is configured (no API key set).
var ErrNoProvider = errors.New("no verification provider is configured")

// Outcome is one attempt at verifying an address: its calls and the verdict, or why there was none.
type Outcome struct {
	// Calls are the calls made, in order.
	Calls []Call
	// Status is the verdict; empty when the attempt failed.
	Status string
	// Err is why the attempt failed: the last provider failure (or ErrNoProvider).
	Err error
	// Interrupted is true when the attempt stopped because its context ended (a shutdown, a job
	// past its time), not because a provider failed: it does not count as an attempt.
	Interrupted bool
}

// Chain asks its providers in order until one gives a verdict.
type Chain []Provider

// Check makes one attempt at verifying email: MillionVerifier first, the next provider when one
// fails (a timeout, an HTTP error, its own error, an undocumented answer) or cannot tell
// (unknown). The first verdict other than UNKNOWN decides. UNKNOWN is the verdict only when
// every provider answered and none could tell; when one of them failed instead, the attempt fails
// (it may tell another time), and the caller counts it.
func (ch Chain) Check(ctx context.Context, email string) Outcome {
	var o Outcome
	if len(ch) == 0 {
		o.Err = ErrNoProvider
		return o
	}
	var lastErr error
	for _, p := range ch {
		c := p.Check(ctx, email)
		if ctx.Err() != nil {
			o.Interrupted, o.Err = true, ctx.Err()
			return o
		}
		o.Calls = append(o.Calls, c)
		if c.Err != nil {
			lastErr = fmt.Errorf("%s: %w", c.Provider, c.Err)
			continue
		}
		if c.Status != lead.StatusUnknown {
			o.Status = c.Status
			return o
		}
	}
	if lastErr != nil {
		o.Err = lastErr
		return o
	}
	o.Status = lead.StatusUnknown
	return o
}
