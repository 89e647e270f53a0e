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
	// At orders items in their table and bounds a catch-up (the row's time).
	At time.Time
	// Value is what subscribers receive (audit.Log, ingest.Upload, ...).
	Value any
}

// Source loads the events of one type from the table that owns them.
type Source struct {
	// LoadFunc returns the items named by the notifications' ids, one batch per burst of
	// notifications; ids it cannot find are left out.
	LoadFunc func(ctx context.Context, ids []string) ([]Item, error)
	// SinceFunc returns the items whose At is at or after since, oldest first: the catch-up
	// after the LISTEN connection was lost.
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
	// CatchUpWindow is how far before the last event delivered (or the moment the connection
	// was lost) a catch-up reads, for transactions that began before it and committed after.
	// Default 1 minute.
	CatchUpWindow time.Duration
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
	seen   map[string]map[string]time.Time
	lastAt map[string]time.Time
	ready  chan struct{}
	// reconnects counts the connections after the first.
	reconnects int
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
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Broker{
		o: o, sources: map[string]Source{}, subs: map[string]map[*Subscription]struct{}{},
		seen: map[string]map[string]time.Time{}, lastAt: map[string]time.Time{}, ready: make(chan struct{}),
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

// Subscription is one subscriber's stream of one event type.
type Subscription struct {
	b     *Broker
	typ   string
	match func(any) bool
	ch    chan any
	done  chan struct{}
	once  sync.Once
	err   error
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
	b.mu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
			b.end(s, nil)
		case <-s.done:
		}
	}()
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
	})
}

// Run LISTENs until ctx ends, reconnecting with backoff; it returns ctx's error.
func (b *Broker) Run(ctx context.Context) error {
	notes := make(chan string, 4096)
	first := true
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		lostAt := time.Now()
		err := b.listen(ctx, first, lostAt, notes)
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
func (b *Broker) listen(ctx context.Context, first bool, lostAt time.Time, notes chan string) error {
	if b.o.ConnFunc != nil {
		return b.o.ConnFunc(ctx, func(conn *pgx.Conn) error { return b.listenOn(ctx, conn, first, lostAt, notes) })
	}
	conn, err := pgx.Connect(ctx, b.o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return b.listenOn(ctx, conn, first, lostAt, notes)
}

func (b *Broker) listenOn(ctx context.Context, conn *pgx.Conn, first bool, lostAt time.Time, notes chan string) error {
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	b.mu.Lock()
	wasConnected := b.backendPID != 0
	b.backendPID = conn.PgConn().PID()
	if wasConnected {
		b.reconnects++
	}
	b.mu.Unlock()
	if wasConnected {
		b.catchUp(ctx, lostAt)
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

// ref is the id a notification carries.
type ref struct {
	ID string `json:"id"`
}

func (b *Broker) deliverPayloads(ctx context.Context, payloads []string) {
	type group struct {
		ids []string
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
		_, known := b.sources[ev.Type]
		b.mu.Unlock()
		if !known {
			continue
		}
		g := groups[ev.Type]
		if g == nil {
			g = &group{}
			groups[ev.Type] = g
			order = append(order, ev.Type)
		}
		g.ids = append(g.ids, r.ID)
	}
	for _, typ := range order {
		b.mu.Lock()
		src := b.sources[typ]
		b.mu.Unlock()
		items, err := src.LoadFunc(ctx, groups[typ].ids)
		for try := 1; err != nil && try < 5 && ctx.Err() == nil; try++ {
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
			items, err = src.LoadFunc(ctx, groups[typ].ids)
		}
		if err != nil {
			b.o.Logger.ErrorContext(ctx, "load events", "type", typ, "err", err)
			continue
		}
		// Keep the notifications' (commit) order.
		pos := map[string]int{}
		for i, id := range groups[typ].ids {
			if _, ok := pos[id]; !ok {
				pos[id] = i
			}
		}
		byID := map[int][]Item{}
		for _, it := range items {
			id := it.Key
			if i := indexOfID(it.Key); i > 0 {
				id = it.Key[:i]
			}
			byID[pos[id]] = append(byID[pos[id]], it)
		}
		sorted := make([]Item, 0, len(items))
		for i := range groups[typ].ids {
			sorted = append(sorted, byID[i]...)
		}
		b.deliver(typ, sorted)
	}
}

// indexOfID finds the end of the row id in a key of "id:state".
func indexOfID(key string) int {
	for i := 0; i < len(key); i++ {
		if key[i] == ':' {
			return i
		}
	}
	return -1
}

func (b *Broker) catchUp(ctx context.Context, lostAt time.Time) {
	b.mu.Lock()
	srcs := make(map[string]Source, len(b.sources))
	for typ, s := range b.sources {
		srcs[typ] = s
	}
	b.mu.Unlock()
	for typ, src := range srcs {
		b.mu.Lock()
		since := lostAt
		if at, ok := b.lastAt[typ]; ok && at.Before(since) {
			since = at
		}
		b.mu.Unlock()
		items, err := src.SinceFunc(ctx, since.Add(-b.o.CatchUpWindow))
		if err != nil {
			b.o.Logger.ErrorContext(ctx, "catch up events", "type", typ, "err", err)
			continue
		}
		b.deliver(typ, items)
	}
}

// deliver hands items not delivered before to the matching subscribers, never blocking: a
// subscriber whose buffer is full is ended with ErrTooSlow.
func (b *Broker) deliver(typ string, items []Item) {
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := b.seen[typ]
	if seen == nil {
		seen = map[string]time.Time{}
		b.seen[typ] = seen
	}
	var slow []*Subscription
	for _, it := range items {
		if _, dup := seen[it.Key]; dup {
			continue
		}
		seen[it.Key] = it.At
		if it.At.After(b.lastAt[typ]) {
			b.lastAt[typ] = it.At
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
	horizon := b.lastAt[typ].Add(-2 * b.o.CatchUpWindow)
	for k, at := range seen {
		if at.Before(horizon) {
			delete(seen, k)
		}
	}
	for _, s := range slow {
		b.endLocked(s, ErrTooSlow)
	}
}
