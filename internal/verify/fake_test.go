package verify_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// answer is what a fake provider answers one request with.
type answer struct {
	// Status is the HTTP status. Default 200.
	Status int
	// Body is the response body as the provider documents it.
	Body string
	// Delay is how long the fake takes to answer.
	Delay time.Duration
}

// fake is a verification provider on httptest (127.0.0.1) that answers as MillionVerifier or
// ZeroBounce document, checks that requests are shaped as they document, and records the calls
// in flight (at most), the calls per address and per API key.
type fake struct {
	t        *testing.T
	kind     string // "mv" or "zb"
	srv      *httptest.Server
	mu       sync.Mutex
	byEmail  map[string]answer
	fallback func(email string) answer
	calls    map[string]int
	byKey    map[string]int
	// hold, when set, makes every call after the holdFrom-th wait for it to close.
	hold       chan struct{}
	holdFrom   int64
	inFlight   atomic.Int64
	maxFlight  atomic.Int64
	totalCalls atomic.Int64
}

func newFake(t *testing.T, kind string, fallback func(email string) answer) *fake {
	t.Helper()
	f := &fake{t: t, kind: kind, byEmail: map[string]answer{}, fallback: fallback, calls: map[string]int{}, byKey: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// newMV is a fake MillionVerifier answering "ok" unless told otherwise.
func newMV(t *testing.T) *fake {
	return newFake(t, "mv", func(string) answer { return answer{Body: mvBody("ok")} })
}

// newZB is a fake ZeroBounce answering "valid" unless told otherwise.
func newZB(t *testing.T) *fake {
	return newFake(t, "zb", func(string) answer { return answer{Body: zbBody("valid", "")} })
}

func (f *fake) URL() string { return f.srv.URL }

// on makes the fake answer a for email.
func (f *fake) on(email string, a answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byEmail[email] = a
}

// setFallback changes the answer for addresses without one of their own.
func (f *fake) setFallback(fn func(email string) answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fallback = fn
}

// holdCalls makes calls wait until the returned func is called.
func (f *fake) holdCalls() (release func()) { return f.holdCallsAfter(0) }

// holdCallsAfter makes the calls after the first n (counted from the fake's start) wait until
// the returned func is called.
func (f *fake) holdCallsAfter(n int64) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold := make(chan struct{})
	f.hold, f.holdFrom = hold, n
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.hold = nil
			f.mu.Unlock()
			close(hold)
		})
	}
}

func (f *fake) callsOf(email string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[email]
}

func (f *fake) callsWithKey(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byKey[key]
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	// A call stops being in flight before its answer leaves: the caller can only give its slot
	// back, and another call start, after that.
	inFlight := true
	done := func() {
		if inFlight {
			inFlight = false
			f.inFlight.Add(-1)
		}
	}
	defer done()
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	callNo := f.totalCalls.Add(1)
	q := r.URL.Query()
	var email, key string
	switch f.kind {
	case "mv":
		// GET /api/v3/?api=KEY&email=EMAIL&timeout=SECONDS, timeout 2 to 60.
		timeout := q.Get("timeout")
		if r.Method != http.MethodGet || r.URL.Path != "/api/v3/" || q.Get("email") == "" || timeout == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var secs int
		if _, err := fmt.Sscan(timeout, &secs); err != nil || secs < 2 || secs > 60 {
			http.Error(w, "bad timeout", http.StatusBadRequest)
			return
		}
		email, key = q.Get("email"), q.Get("api")
		if key == "" {
			writeJSON(w, http.StatusOK, mvError("Invalid API key"))
			return
		}
	case "zb":
		// GET /v2/validate?api_key=KEY&email=EMAIL&ip_address= (ip_address required, may be empty).
		if _, ok := q["ip_address"]; r.Method != http.MethodGet || r.URL.Path != "/v2/validate" || q.Get("email") == "" || !ok {
			writeJSON(w, http.StatusBadRequest, `{"error":"Missing parameter"}`)
			return
		}
		email, key = q.Get("email"), q.Get("api_key")
		if key == "" {
			writeJSON(w, http.StatusOK, `{"error":"Invalid API key or your account ran out of credits"}`)
			return
		}
	}
	f.mu.Lock()
	f.calls[email]++
	f.byKey[key]++
	a, ok := f.byEmail[email]
	if !ok {
		a = f.fallback(email)
	}
	hold := f.hold
	if callNo <= f.holdFrom {
		hold = nil
	}
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if a.Delay > 0 {
		select {
		case <-time.After(a.Delay):
		case <-r.Context().Done():
			return
		}
	}
	status := a.Status
	if status == 0 {
		status = http.StatusOK
	}
	done()
	writeJSON(w, status, a.Body)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

var mvCodes = map[string]int{"ok": 1, "catch_all": 2, "unknown": 3, "error": 4, "disposable": 5, "invalid": 6}

// mvBody is MillionVerifier's answer for result.
func mvBody(result string) string {
	sub := map[string]string{"ok": "ok", "catch_all": "unknown", "unknown": "timeout", "invalid": "invalid", "disposable": "disposable"}[result]
	b, _ := json.Marshal(map[string]any{
		"email": "someone@example.com", "quality": "good", "result": result, "resultcode": mvCodes[result],
		"subresult": sub, "free": false, "role": false, "didyoumean": "", "credits": 4999, "executiontime": 1,
		"error": "", "livemode": true,
	})
	return string(b)
}

// mvError is MillionVerifier's error answer (sent with HTTP 200).
func mvError(msg string) string {
	b, _ := json.Marshal(map[string]any{
		"email": "", "quality": "", "result": "error", "resultcode": 4, "subresult": "", "free": false, "role": false,
		"didyoumean": "", "credits": 0, "executiontime": 0, "error": msg, "livemode": false,
	})
	return string(b)
}

// zbBody is ZeroBounce's answer for status and sub_status.
func zbBody(status, sub string) string {
	b, _ := json.Marshal(map[string]any{
		"address": "someone@example.com", "status": status, "sub_status": sub, "free_email": false, "did_you_mean": nil,
		"account": "someone", "domain": "example.com", "domain_age_days": "9000", "smtp_provider": "", "mx_found": "true",
		"mx_record": "mx.example.com", "firstname": nil, "lastname": nil, "gender": nil, "country": nil, "region": nil,
		"city": nil, "zipcode": nil, "processed_at": time.Now().UTC().Format("2006-01-02 15:04:05.000"),
	})
	return string(b)
}
