package billing

import (
	"sync"
	"time"
)

// RefusalEventWindow is how often refused webhook deliveries from one client address may raise a
// security event. The endpoint is public and unauthenticated: without a bound, anyone could make
// it write a row per request. Every refusal is still logged, and the next event from the same
// address says how many went unrecorded before it.
const RefusalEventWindow = time.Minute

// maxRefusalClients bounds the addresses remembered; past it, new addresses share one entry, so a
// flood from many addresses still raises at most one event per window for all of them.
const maxRefusalClients = 10_000

// refusalThrottle decides which refused deliveries raise a security event.
type refusalThrottle struct {
	mu     sync.Mutex
	window time.Duration
	seen   map[string]*refusalWindow
}

type refusalWindow struct {
	start      time.Time
	unrecorded int
}

func newRefusalThrottle(window time.Duration) *refusalThrottle {
	return &refusalThrottle{window: window, seen: map[string]*refusalWindow{}}
}

// admit reports whether a refusal from client at now raises a security event and, if it does,
// how many refusals from client went unrecorded since its previous event.
func (t *refusalThrottle) admit(client string, now time.Time) (record bool, unrecorded int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.seen[client]
	if !ok && len(t.seen) >= maxRefusalClients {
		for c, old := range t.seen {
			if now.Sub(old.start) >= t.window && old.unrecorded == 0 {
				delete(t.seen, c)
			}
		}
		if len(t.seen) >= maxRefusalClients {
			client = "*"
			w, ok = t.seen[client]
		}
	}
	if ok && now.Sub(w.start) < t.window {
		w.unrecorded++
		return false, 0
	}
	if ok {
		unrecorded = w.unrecorded
	}
	t.seen[client] = &refusalWindow{start: now}
	return true, unrecorded
}
