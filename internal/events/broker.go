package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Item is one deliverable event as its owning package loaded it from its table.
type Item struct {
	// Key identifies the event (a row id; an upload's id with its progress): an item whose key
	// was delivered already is not delivered again, which is how a catch-up after a reconnect
	// and the notifications that overlap it never show a subscriber anything twice.
	Key string
	// At orders items in their table and is the broker's position in it (the row's time, from
	// the database's clock): a catch-up reads from the last delivered item's At.
	At time.Time
	// Value is what subscribers receive (audit.Log, ingest.Upload, ...).
	Value any
}

// Ref is what one notification names: the row's id and, when its publisher sent it ("at"), the
// time that places the row in its table (audit_logs' occurred_at, its partition key), so that a
// load reads one partition's index instead of every partition's; zero when not sent.
type Ref struct {
	ID string
	At time.Time
}

// IDs returns the refs' ids.
func IDs(refs []Ref) []string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids
}

// Span returns the earliest and latest At of refs, and false when any has none.
func Span(refs []Ref) (from, to time.Time, ok bool) {
	for i, r := range refs {
		if r.At.IsZero() {
			return time.Time{}, time.Time{}, false
		}
		if i == 0 || r.At.Before(from) {
			from = r.At
		}
		if i == 0 || r.At.After(to) {
			to = r.At
		}
	}
	return from, to, len(refs) > 0
}

// Source loads the events of one type from the table that owns them.
type Source struct {
	// LoadFunc returns the items named by the notifications' refs, one batch per burst of
	// notifications; refs it cannot find are left out.
	LoadFunc func(ctx context.Context, refs []Ref) ([]Item, error)
	// SinceFunc returns a page of the items whose At is at or after since, oldest first (at most
	// a few thousand: the broker asks again from the page's last At until a page brings nothing
	// newer), for the catch-up after the LISTEN connection was lost. A page must not end inside
	// one event (a cart's purchases).
	SinceFunc func(ctx context.Context, since time.Time) ([]Item, error)
}

// ErrTooSlow ends a subscription whose subscriber fell a whole buffer behind.
var ErrTooSlow = errors.New("subscriber too slow")

// BrokerOptions configure a Broker. Zero fields take their defaults.
type BrokerOptions struct {
	// DatabaseURL is where the broker LISTENs (one connection per instance), unless ConnFunc is
	// set.
	DatabaseURL string
	// ConnFunc, when set, runs fn on a dedicated connection it does not return to a pool (the
	// app's: a connection of its bun pool, discarded afterwards).
	ConnFunc func(ctx context.Context, fn func(*pgx.Conn) error) error
	// Buffer is how many events a subscriber may fall behind before it is ended with
	// ErrTooSlow (WS_SUBSCRIBER_BUFFER). Default 256.
	Buffer int
	// CatchUpWindow (WS_CATCHUP_WINDOW) is how far before its position in a table (the At of
	// the last event delivered from it, else the moment of the first LISTEN) a catch-up reads
	// again: an event's At is its transaction's start, so a transaction that was open across
	// that position and committed while the connection was down has an earlier At. It bounds
	// how long such a transaction may run, not how long an outage may last: a catch-up reads
	// everything after the position, however far back. Default 1 minute.
	CatchUpWindow time.Duration
	// CatchUpWait is how long a catch-up waits for a subscriber with a full buffer to read
	// anything before it gives up on it (and the subscriber, full, is ended with ErrTooSlow);
	// the others are delivered to at their own pace. Default 10 s.
	CatchUpWait time.Duration
	// MaxBackoff caps the wait between reconnect attempts (doubling from 50 ms). Default 5 s.
	MaxBackoff time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Broker fans the events committed on any instance out to this instance's subscribers: one
// LISTEN connection, each burst of notifications loaded once per type (Source.LoadFunc) and then
// matched against every subscriber's scope in memory. When the connection drops it reconnects
// with backoff and catches up from the tables (Source.SinceFunc), skipping what it delivered.
type Broker struct {
	o       BrokerOptions
	mu      sync.Mutex
	sources map[string]Source
	subs    map[string]map[*Subscription]struct{}
	// seen holds the keys delivered per type with their At, pruned past twice the window.
	seen map[string]map[string]time.Time
	// pos is each type's position: the latest At delivered, or the database's time at the
	// first LISTEN.
	pos      map[string]time.Time
	prunedAt map[string]time.Time
	ready    chan struct{}
	// reconnects counts the connections after the first; caughtUp the items catch-ups delivered.
	reconnects int
	caughtUp   int
	backendPID uint32
}

// NewBroker returns a Broker; register its sources, then Run it.
func NewBroker(o BrokerOptions) *Broker {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.CatchUpWindow <= 0 {
		o.CatchUpWindow = time.Minute
	}
	if o.CatchUpWait <= 0 {
		o.CatchUpWait = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Broker{
		o: o, sources: map[string]Source{}, subs: map[string]map[*Subscription]struct{}{},
		seen: map[string]map[string]time.Time{}, pos: map[string]time.Time{}, prunedAt: map[string]time.Time{}, ready: make(chan struct{}),
	}
}

// Register makes events of type typ deliverable through s. Call it before Run.
func (b *Broker) Register(typ string, s Source) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sources[typ] = s
}

// Ready is closed once the first LISTEN is in place.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// BackendPID is the PostgreSQL backend of the current LISTEN connection (0 before the first):
// tests terminate it.
func (b *Broker) BackendPID() uint32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.backendPID
}

// Reconnects counts the LISTEN connections made after the first.
func (b *Broker) Reconnects() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reconnects
}

// CaughtUp counts the items catch-ups delivered (not delivered before): tests check that a
// catch-up, not a notification, brought them.
func (b *Broker) CaughtUp() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.caughtUp
}

// Subscription is one subscriber's stream of one event type.
type Subscription struct {
	b     *Broker
	typ   string
	match func(any) bool
	ch    chan any
	done  chan struct{}
	once  sync.Once
	err   error
	// stopWatch stops the end on ctx (set under b.mu with the registration).
	stopWatch func() bool
}

// C delivers the matching events' values; it is closed when the subscription ends.
func (s *Subscription) C() <-chan any { return s.ch }

// Err is why C was closed: ErrTooSlow, or nil after Close.
func (s *Subscription) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() { s.b.end(s, nil) }

// Subscribe returns a subscription to the events of typ whose value match accepts (match runs
// on the broker's goroutine: keep it to in-memory checks). It ends with ctx.
func (b *Broker) Subscribe(ctx context.Context, typ string, match func(any) bool) *Subscription {
	s := &Subscription{b: b, typ: typ, match: match, ch: make(chan any, b.o.Buffer), done: make(chan struct{})}
	b.mu.Lock()
	if b.subs[typ] == nil {
		b.subs[typ] = map[*Subscription]struct{}{}
	}
	b.subs[typ][s] = struct{}{}
	// No goroutine per subscriber: AfterFunc ends s when ctx ends (its func, on a goroutine of
	// its own, waits for b.mu), and endLocked stops it.
	s.stopWatch = context.AfterFunc(ctx, func() { b.end(s, nil) })
	b.mu.Unlock()
	return s
}

func (b *Broker) end(s *Subscription, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.endLocked(s, err)
}

// endLocked ends s under b.mu, so that deliver (which sends under b.mu) never sends on a
// closed channel.
func (b *Broker) endLocked(s *Subscription, err error) {
	s.once.Do(func() {
		delete(b.subs[s.typ], s)
		s.err = err
		close(s.done)
		close(s.ch)
		if s.stopWatch != nil {
			s.stopWatch()
		}
	})
}

// Run LISTENs until ctx ends, reconnecting with backoff; it returns ctx's error.
func (b *Broker) Run(ctx context.Context) error {
	notes := make(chan string, 4096)
	first := true
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listen(ctx, first, notes)
		if ctx.Err() != nil {
			break
		}
		if !first || err != nil {
			b.o.Logger.WarnContext(ctx, "event listener lost its connection; reconnecting", "err", err, "backoff", backoff)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, b.o.MaxBackoff)
		if b.BackendPID() != 0 {
			first = false
		}
	}
	return ctx.Err()
}

// listen runs one LISTEN connection: on a reconnect it catches up before delivering live
// notifications (which LISTEN already queues meanwhile, so nothing falls between the two).
func (b *Broker) listen(ctx context.Context, first bool, notes chan string) error {
	if b.o.ConnFunc != nil {
		return b.o.ConnFunc(ctx, func(conn *pgx.Conn) error { return b.listenOn(ctx, conn, first, notes) })
	}
	conn, err := pgx.Connect(ctx, b.o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return b.listenOn(ctx, conn, first, notes)
}

func (b *Broker) listenOn(ctx context.Context, conn *pgx.Conn, first bool, notes chan string) error {
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Positions are the database's times, like the rows' At: the instance's clock plays no part.
	var listenedAt time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&listenedAt); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	b.mu.Lock()
	wasConnected := b.backendPID != 0
	b.backendPID = conn.PgConn().PID()
	if wasConnected {
		b.reconnects++
	}
	for typ := range b.sources {
		if _, ok := b.pos[typ]; !ok {
			b.pos[typ] = listenedAt
		}
	}
	b.mu.Unlock()
	if wasConnected {
		b.catchUp(ctx)
	}
	if first {
		select {
		case <-b.ready:
		default:
			close(b.ready)
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.dispatch(lctx, ctx, notes)
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			cancel()
			wg.Wait()
			// Deliver what was received before the loss, in order, before the catch-up.
			b.drain(ctx, notes)
			return err
		}
		notes <- n.Payload
	}
}

// dispatch delivers notifications in bursts: whatever has queued up is loaded together. It stops
// when stop ends (the connection was lost), but loads with ctx, so a burst taken is delivered.
func (b *Broker) dispatch(stop, ctx context.Context, notes chan string) {
	for {
		select {
		case <-stop.Done():
			return
		case p := <-notes:
			batch := []string{p}
		more:
			for len(batch) < 1000 {
				select {
				case p := <-notes:
					batch = append(batch, p)
				default:
					break more
				}
			}
			b.deliverPayloads(ctx, batch)
		}
	}
}

func (b *Broker) drain(ctx context.Context, notes chan string) {
	var batch []string
	for {
		select {
		case p := <-notes:
			batch = append(batch, p)
		default:
			if len(batch) > 0 {
				b.deliverPayloads(ctx, batch)
			}
			return
		}
	}
}

// ref is the id (and the row's time, when sent) a notification carries.
type ref struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

func (b *Broker) deliverPayloads(ctx context.Context, payloads []string) {
	type group struct {
		src   Source
		refs  []Ref
		items []Item
		err   error
	}
	var order []string
	groups := map[string]*group{}
	for _, p := range payloads {
		var ev Event
		var r ref
		if json.Unmarshal([]byte(p), &ev) != nil || json.Unmarshal(ev.Payload, &r) != nil || r.ID == "" {
			continue
		}
		b.mu.Lock()
		src, known := b.sources[ev.Type]
		b.mu.Unlock()
		if !known {
			continue
		}
		g := groups[ev.Type]
		if g == nil {
			g = &group{src: src}
			groups[ev.Type] = g
			order = append(order, ev.Type)
		}
		g.refs = append(g.refs, Ref(r))
	}
	// Each type's rows are loaded at the same time (one purchase publishes its cart and its
	// audit entry: neither waits for the other's round trip); each type is then delivered in
	// its notifications' (commit) order, the types in the order they first came.
	var wg sync.WaitGroup
	for _, typ := range order {
		g := groups[typ]
		wg.Go(func() {
			g.items, g.err = g.src.LoadFunc(ctx, g.refs)
			for try := 1; g.err != nil && try < 5 && ctx.Err() == nil; try++ {
				time.Sleep(time.Duration(try) * 100 * time.Millisecond)
				g.items, g.err = g.src.LoadFunc(ctx, g.refs)
			}
		})
	}
	wg.Wait()
	for _, typ := range order {
		g := groups[typ]
		if g.err != nil {
			b.o.Logger.ErrorContext(ctx, "load events", "type", typ, "err", g.err)
			continue
		}
		pos := map[string]int{}
		for i, r := range g.refs {
			if _, ok := pos[r.ID]; !ok {
				pos[r.ID] = i
			}
		}
		byID := map[int][]Item{}
		for _, it := range g.items {
			id := it.Key
			if i := indexOfID(it.Key); i > 0 {
				id = it.Key[:i]
			}
			byID[pos[id]] = append(byID[pos[id]], it)
		}
		sorted := make([]Item, 0, len(g.items))
		for i := range g.refs {
			sorted = append(sorted, byID[i]...)
		}
		b.deliverPaced(ctx, typ, sorted, burstWait, false, map[*Subscription]bool{})
	}
}

// burstWait is how long a burst of notifications larger than half a buffer waits for room in the
// subscribers' buffers (deliverPaced); bursts up to half a buffer never wait.
const burstWait = 100 * time.Millisecond

// indexOfID finds the end of the row id in a key of "id:state".
func indexOfID(key string) int {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return i
		}
	}
	return -1
}

// catchUp reads every table from its position (less CatchUpWindow) to now, page by page, and
// delivers what was not delivered before, pacing itself to the subscribers (deliverPaced).
func (b *Broker) catchUp(ctx context.Context) {
	b.mu.Lock()
	srcs := make(map[string]Source, len(b.sources))
	for typ, s := range b.sources {
		srcs[typ] = s
	}
	b.mu.Unlock()
	// A subscriber given up on once in this catch-up is not waited for again.
	gaveUp := map[*Subscription]bool{}
	for typ, src := range srcs {
		b.mu.Lock()
		since := b.pos[typ].Add(-b.o.CatchUpWindow)
		b.mu.Unlock()
		for ctx.Err() == nil {
			items, err := src.SinceFunc(ctx, since)
			if err != nil {
				b.o.Logger.ErrorContext(ctx, "catch up events", "type", typ, "since", since, "err", err)
				break
			}
			n := b.deliverPaced(ctx, typ, items, b.o.CatchUpWait, true, gaveUp)
			b.mu.Lock()
			b.caughtUp += n
			b.mu.Unlock()
			// The next page starts at this one's last At (its items there are skipped as
			// delivered); a page that brings nothing later ends the catch-up.
			if len(items) == 0 || !items[len(items)-1].At.After(since) {
				break
			}
			since = items[len(items)-1].At
		}
		// Live delivery never waits: it starts once the backlog is down to half a buffer.
		b.awaitRoom(ctx, typ, b.o.Buffer/2, b.o.CatchUpWait, true, gaveUp)
	}
}

// deliverPaced delivers items in steps of half a buffer, waiting before each step (up to wait)
// for every subscriber of typ to have room for it: a backlog larger than a buffer reaches the
// subscribers that keep reading instead of ending them all. A subscriber that does not make room
// joins gaveUp and is not waited for again (it overflows and is ended). A catch-up (patient)
// waits before every step, and as long as the subscribers it waits for keep reading; live bursts
// wait only when larger than a step, and at most wait.
func (b *Broker) deliverPaced(ctx context.Context, typ string, items []Item, wait time.Duration, patient bool, gaveUp map[*Subscription]bool) int {
	step := max(1, b.o.Buffer/2)
	if !patient && len(items) <= step {
		return b.deliver(typ, items)
	}
	n := 0
	for len(items) > 0 {
		k := min(step, len(items))
		b.awaitRoom(ctx, typ, b.o.Buffer-k, wait, patient, gaveUp)
		n += b.deliver(typ, items[:k])
		items = items[k:]
	}
	return n
}

// awaitRoom waits until no subscriber of typ (but those in gaveUp) holds more than maxLen
// undelivered values, or wait has passed: then those still full join gaveUp. Patient, it gives
// up only on those whose backlog did not shrink in a whole wait (nothing is delivered meanwhile,
// so a backlog only shrinks while its subscriber reads), and waits on while others shrink theirs.
func (b *Broker) awaitRoom(ctx context.Context, typ string, maxLen int, wait time.Duration, patient bool, gaveUp map[*Subscription]bool) {
	deadline := time.Now().Add(wait)
	backlog := map[*Subscription]int{}
	for {
		b.mu.Lock()
		full := map[*Subscription]int{}
		for s := range b.subs[typ] {
			if n := len(s.ch); !gaveUp[s] && n > maxLen {
				full[s] = n
			}
		}
		b.mu.Unlock()
		if len(full) == 0 {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Now().Before(deadline) {
			for s, n := range full {
				if _, ok := backlog[s]; !ok {
					backlog[s] = n
				}
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		reading := false
		for s, n := range full {
			if was, ok := backlog[s]; !patient || ok && n >= was {
				gaveUp[s] = true
				continue
			}
			backlog[s] = n
			reading = true
		}
		if !reading {
			return
		}
		deadline = time.Now().Add(wait)
	}
}

// deliver hands items not delivered before to the matching subscribers, never blocking: a
// subscriber whose buffer is full is ended with ErrTooSlow. It returns how many items were new.
func (b *Broker) deliver(typ string, items []Item) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := b.seen[typ]
	if seen == nil {
		seen = map[string]time.Time{}
		b.seen[typ] = seen
	}
	var slow []*Subscription
	fresh := 0
	for _, it := range items {
		if _, dup := seen[it.Key]; dup {
			continue
		}
		fresh++
		seen[it.Key] = it.At
		if it.At.After(b.pos[typ]) {
			b.pos[typ] = it.At
		}
		for s := range b.subs[typ] {
			if s.match != nil && !s.match(it.Value) {
				continue
			}
			select {
			case s.ch <- it.Value:
			default:
				// Ended after this burst: the others are not held up by it.
				slow = append(slow, s)
				delete(b.subs[typ], s)
			}
		}
	}
	// A catch-up reads from pos less the window: keys older than twice that are never read again.
	// Pruned once a second at most, not on every burst.
	if now := time.Now(); now.Sub(b.prunedAt[typ]) >= time.Second {
		b.prunedAt[typ] = now
		horizon := b.pos[typ].Add(-2 * b.o.CatchUpWindow)
		for k, at := range seen {
			if at.Before(horizon) {
				delete(seen, k)
			}
		}
	}
	for _, s := range slow {
		b.endLocked(s, ErrTooSlow)
	}
	return fresh
}
