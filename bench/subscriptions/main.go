// Command subscriptions is the live-dashboard benchmark (make bench-subscriptions): two instances
// of the real server (`leadmarket serve`, built once and run as two processes on loopback ports
// against one scratch database) hold 1,000 graphql-transport-ws subscribers between them —
// platform admins on auditLogAdded, workspace members on leadPurchased for their workspace —
// while carts are bought through marketplace.Service (the real purchase: credits, commission,
// audit entry and event in one transaction) at a steady rate. It prints the delivery latency
// from each purchase's commit to each subscriber's receipt (p50, p99, max), the events lost and
// duplicated, and each instance's peak resident memory (from /proc). Its baseline, in the same
// run, is a bare pgx connection LISTENing on the same channel: the latency of the raw
// NOTIFY of the same purchases.
//
//	go run ./bench/subscriptions [-admins 50] [-members 950] [-workspaces 50] [-rate 100] [-duration 10s] [-database-url URL]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/benchserver"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/partner"
)

const (
	dbName = "lm_bench_subscriptions"
	secret = "bench-subscriptions-secret-0123456789abcdef"
)

func main() { benchdb.Main("bench/subscriptions", run) }

// user is a benchmark account: its token, and the workspace it follows (members) or "" (admins).
type user struct {
	id, subject, email string
	workspaceID        string
	token              string
}

// subscriber is one socket with one subscription; received maps a cart id to its receipt times.
type subscriber struct {
	u        user
	admin    bool
	instance int
	mu       sync.Mutex
	received map[string][]time.Time
	errs     []string
}

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the scratch database "+dbName+" on")
	admins := flag.Int("admins", 50, "platform admins subscribed to auditLogAdded (each on a socket of their own)")
	members := flag.Int("members", 950, "workspace members subscribed to leadPurchased for their workspace")
	workspaces := flag.Int("workspaces", 50, "workspaces the members belong to (the carts go round them)")
	rate := flag.Int("rate", 100, "carts bought per second")
	duration := flag.Duration("duration", 10*time.Second, "how long carts are bought")
	flag.Parse()
	if *admins < 0 || *members < 0 || *workspaces < 1 || *rate < 1 || *duration < time.Second || *admins+*members == 0 {
		return errors.New("-admins and -members at least 0 (not both), -workspaces and -rate at least 1, -duration at least 1s")
	}
	ctx := context.Background()
	bdb, dbURL, done, err := benchdb.Scratch(ctx, *serverURL, dbName, 32)
	if err != nil {
		return err
	}
	defer done()
	carts := *rate * int(duration.Seconds())
	fmt.Printf("subscriptions benchmark: 2 instances, %d admins on auditLogAdded, %d members of %d workspaces on leadPurchased; %d carts at %d/s\n",
		*admins, *members, *workspaces, carts, *rate)

	setupStart := time.Now()
	owners, followers, leadIDs, err := setup(ctx, bdb, *admins, *members, *workspaces, carts)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Printf("setup:    %d users, %d workspaces, %d leads in %s\n", *admins+*members+*workspaces, *workspaces, len(leadIDs),
		time.Since(setupStart).Round(time.Millisecond))

	bin, remove, err := benchserver.Build(ctx)
	if err != nil {
		return err
	}
	defer remove()
	var servers [2]*benchserver.Server
	var peaks [2]benchserver.PeakRSS
	for i := range servers {
		if servers[i], err = benchserver.StartBinary(ctx, bin, dbURL, secret, "DB_MAX_CONNS=10", "WORKER_CONCURRENCY=2"); err != nil {
			return fmt.Errorf("instance %d: %w", i+1, err)
		}
		defer servers[i].Stop()
		stop := peaks[i].Watch(servers[i].PID())
		defer stop()
	}
	idle := [2]int64{benchserver.RSS(servers[0].PID()), benchserver.RSS(servers[1].PID())}

	// The baseline: a bare LISTEN on the events channel, in this process.
	rawCh := make(chan struct{})
	var rawMu sync.Mutex
	raw := map[string]time.Time{}
	lctx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	go func() {
		_ = events.ListenReady(lctx, dbURL, func() { close(rawCh) }, func(ev events.Event) {
			at := time.Now()
			if ev.Type != marketplace.PurchasedEvent {
				return
			}
			var p struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(ev.Payload, &p) == nil {
				rawMu.Lock()
				raw[p.ID] = at
				rawMu.Unlock()
			}
		})
	}()
	<-rawCh

	// The subscribers, alternately on either instance.
	subs := make([]*subscriber, 0, len(followers))
	for i, u := range followers {
		subs = append(subs, &subscriber{u: u, admin: u.workspaceID == "", instance: i % 2, received: map[string][]time.Time{}})
	}
	sctx, stopSockets := context.WithCancel(ctx)
	defer stopSockets()
	openStart := time.Now()
	var opened atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	ready := make(chan error, len(subs))
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			var once sync.Once
			release := func() { once.Do(func() { <-sem }) }
			defer release()
			if err := s.open(sctx, servers[s.instance].URL, func() { release(); ready <- nil }); err != nil {
				ready <- err
			}
		}()
	}
	for range subs {
		if err := <-ready; err != nil {
			return fmt.Errorf("open a subscriber: %w", err)
		}
		opened.Add(1)
	}
	// Each subscription's registration with its broker follows its subscribe message at once;
	// give the last ones a moment.
	time.Sleep(2 * time.Second)
	withSockets := [2]int64{benchserver.RSS(servers[0].PID()), benchserver.RSS(servers[1].PID())}
	fmt.Printf("sockets:  %d open and subscribed in %s (RSS idle %s / %s, with sockets %s / %s)\n", opened.Load(),
		time.Since(openStart).Round(time.Millisecond), mb(idle[0]), mb(idle[1]), mb(withSockets[0]), mb(withSockets[1]))

	// The carts, at the rate, each in a goroutine of its own so a slow commit does not slow the
	// rate; each cart's commit time is when PurchaseLeads returned (the commit acknowledged).
	svc := marketplace.NewService(bdb, partner.Commission{CreditValueCents: 40})
	var cmu sync.Mutex
	committed := map[string]time.Time{}
	cartWorkspace := map[string]string{}
	var buyErrs atomic.Int64
	var firstErr atomic.Value
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	buyStart := time.Now()
	var buys sync.WaitGroup
	for i := range carts {
		<-tick.C
		o := owners[i%len(owners)]
		buys.Add(1)
		go func() {
			defer buys.Done()
			c := &auth.Caller{UserID: o.id, Email: o.email}
			res, err := svc.PurchaseLeads(ctx, c, marketplace.PurchaseInput{WorkspaceID: o.workspaceID, LeadIDs: []string{leadIDs[i]}, IdempotencyKey: uuid.NewString()})
			at := time.Now()
			if err != nil {
				buyErrs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			cmu.Lock()
			committed[res.CartID] = at
			cartWorkspace[res.CartID] = o.workspaceID
			cmu.Unlock()
		}()
	}
	tick.Stop()
	buys.Wait()
	buyTime := time.Since(buyStart)
	if n := buyErrs.Load(); n > 0 {
		return fmt.Errorf("%d purchases failed, the first: %v", n, firstErr.Load())
	}
	fmt.Printf("carts:    %d bought in %s (%.0f/s)\n", len(committed), buyTime.Round(time.Millisecond), float64(len(committed))/buyTime.Seconds())

	// Everything expected, or 10 s more.
	expected := func(s *subscriber) []string {
		var out []string
		for cart, ws := range cartWorkspace {
			if s.admin || ws == s.u.workspaceID {
				out = append(out, cart)
			}
		}
		return out
	}
	want := map[*subscriber][]string{}
	total := 0
	for _, s := range subs {
		want[s] = expected(s)
		total += len(want[s])
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got := 0
		for _, s := range subs {
			s.mu.Lock()
			for _, cart := range want[s] {
				if len(s.received[cart]) > 0 {
					got++
				}
			}
			s.mu.Unlock()
		}
		if got == total {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // late duplicates
	stopSockets()
	wg.Wait()

	var lat []time.Duration
	lost, dups, strays := 0, 0, 0
	var subErrs []string
	for _, s := range subs {
		s.mu.Lock()
		for _, cart := range want[s] {
			times := s.received[cart]
			if len(times) == 0 {
				lost++
				continue
			}
			dups += len(times) - 1
			lat = append(lat, times[0].Sub(committed[cart]))
		}
		for cart := range s.received {
			if !slices.Contains(want[s], cart) {
				strays++ // another workspace's cart: a scoping failure
			}
		}
		subErrs = append(subErrs, s.errs...)
		s.mu.Unlock()
	}
	var rawLat []time.Duration
	rawMissing := 0
	rawMu.Lock()
	for cart, at := range committed {
		if r, ok := raw[cart]; ok {
			rawLat = append(rawLat, r.Sub(at))
		} else {
			rawMissing++
		}
	}
	rawMu.Unlock()

	fmt.Printf("delivery: %d of %d expected deliveries; commit to receipt p50 %s  p99 %s  max %s\n",
		len(lat), total, pct(lat, 50), pct(lat, 99), pct(lat, 100))
	fmt.Printf("          lost %d, duplicated %d, outside the subscriber's scope %d, subscription errors %d\n", lost, dups, strays, len(subErrs))
	fmt.Printf("baseline: bare pgx LISTEN, the same %d purchases' NOTIFY: p50 %s  p99 %s  max %s (missing %d)\n",
		len(rawLat), pct(rawLat, 50), pct(rawLat, 99), pct(rawLat, 100), rawMissing)
	fmt.Printf("memory:   peak RSS instance 1 %s, instance 2 %s\n", mb(peaks[0].Max()), mb(peaks[1].Max()))
	for i, e := range subErrs {
		if i == 5 {
			fmt.Printf("          ... and %d more errors\n", len(subErrs)-5)
			break
		}
		fmt.Println("          error:", e)
	}
	p99 := pct(lat, 99)
	verdict := "met"
	if p99 >= 100*time.Millisecond || lost > 0 || dups > 0 || strays > 0 || peaks[0].Max() >= 200<<20 || peaks[1].Max() >= 200<<20 {
		verdict = "NOT met"
	}
	fmt.Printf("target:   p99 < 100ms, 0 lost, 0 duplicated, RSS < 200 MB per instance: %s\n", verdict)
	return nil
}

// open connects s to the instance at baseURL, initialises, subscribes, calls subscribed, and
// reads until ctx ends.
func (s *subscriber) open(ctx context.Context, baseURL string, subscribed func()) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
	})
	if err != nil {
		return err
	}
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err := wsjson.Write(dctx, c, map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + s.u.token}}); err != nil {
		return err
	}
	var m struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := wsjson.Read(dctx, c, &m); err != nil || m.Type != "connection_ack" {
		return fmt.Errorf("connection_init: %v %s", err, m.Type)
	}
	query := `subscription { auditLogAdded(filter: {action: "lead.purchased"}) { resourceId } }`
	if !s.admin {
		query = fmt.Sprintf(`subscription { leadPurchased(workspaceId: %q) { cartId } }`, s.u.workspaceID)
	}
	if err := wsjson.Write(dctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]string{"query": query}}); err != nil {
		return err
	}
	subscribed()
	go func() {
		<-ctx.Done()
		_ = c.Close(websocket.StatusNormalClosure, "")
	}()
	for {
		m.Payload = nil
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return nil
		}
		at := time.Now()
		switch m.Type {
		case "ping":
			_ = wsjson.Write(ctx, c, map[string]string{"type": "pong"})
			continue
		case "next":
		default:
			s.mu.Lock()
			s.errs = append(s.errs, m.Type+" "+string(m.Payload))
			s.mu.Unlock()
			continue
		}
		var v struct {
			Data struct {
				AuditLogAdded *struct{ ResourceID string }
				LeadPurchased *struct{ CartID string }
			}
		}
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			continue
		}
		cart := ""
		if v.Data.AuditLogAdded != nil {
			cart = v.Data.AuditLogAdded.ResourceID
		} else if v.Data.LeadPurchased != nil {
			cart = v.Data.LeadPurchased.CartID
		}
		s.mu.Lock()
		s.received[cart] = append(s.received[cart], at)
		s.mu.Unlock()
	}
}

// setup writes the accounts set-based, as the seed and the test factories do: admins; workspaces,
// each with an owner (who buys) and credits; members; a partner and one lead per cart. It returns
// the owners, the subscribers' users (admins first) and the lead ids.
func setup(ctx context.Context, bdb *bun.DB, admins, members, workspaces, carts int) (owners, followers []user, leadIDs []string, err error) {
	tokens := auth.NewTokens(secret)
	newUser := func(tx bun.Tx, admin bool) (user, error) {
		u := user{subject: uuid.NewString()}
		u.email = "bench-" + u.subject[:8] + "@subscriptions.example"
		if err := tx.NewRaw("INSERT INTO users (auth_subject, email, is_platform_admin) VALUES (?, ?, ?) RETURNING id",
			u.subject, u.email, admin).Scan(ctx, &u.id); err != nil {
			return u, err
		}
		u.token, err = tokens.Issue(u.subject, u.email, admin, 2*time.Hour)
		return u, err
	}
	err = bdb.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for range admins {
			u, err := newUser(tx, true)
			if err != nil {
				return err
			}
			followers = append(followers, u)
		}
		for i := range workspaces {
			o, err := newUser(tx, false)
			if err != nil {
				return err
			}
			if err := tx.NewRaw("INSERT INTO workspaces (name, created_by) VALUES (?, ?) RETURNING id", fmt.Sprintf("bench ws %d", i), o.id).
				Scan(ctx, &o.workspaceID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (?, ?, 'OWNER')", o.workspaceID, o.id); err != nil {
				return err
			}
			if err := credit.OpenBalance(ctx, tx, o.workspaceID); err != nil {
				return err
			}
			if _, err := credit.Apply(ctx, tx, credit.Entry{WorkspaceID: o.workspaceID, Kind: credit.KindAdjustment,
				Amount: int64(carts) * 10, Reference: "bench:" + o.workspaceID}); err != nil {
				return err
			}
			owners = append(owners, o)
		}
		for i := range members {
			u, err := newUser(tx, false)
			if err != nil {
				return err
			}
			u.workspaceID = owners[i%workspaces].workspaceID
			if _, err := tx.ExecContext(ctx, "INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (?, ?, 'MEMBER')", u.workspaceID, u.id); err != nil {
				return err
			}
			followers = append(followers, u)
		}
		var partnerID string
		if err := tx.NewRaw("INSERT INTO partners (name, commission_rate) VALUES ('bench partner', 0.30) RETURNING id").Scan(ctx, &partnerID); err != nil {
			return err
		}
		news := make([]lead.New, carts)
		for i := range news {
			local := fmt.Sprintf("lead%06d", i)
			email := local + "@acme-" + local + ".example"
			domain := "acme-" + local + ".example"
			news[i] = lead.New{
				PartnerID: partnerID, FirstName: "Jane", LastName: "Doe", Title: "Head of Sales", Seniority: "DIRECTOR",
				CompanyName: "Acme", CompanyDomain: domain, CompanySize: "SIZE_51_200", Industry: "Software", Country: "US",
				Email: email, Phone: "+14155552671", EmailNormalized: email, CompanyDomainNormalized: domain, PhoneE164: "+14155552671",
				PriceCredits: 10, MaxBuyers: 3, Status: "ACTIVE", VerificationStatus: "VALID", CreatedAt: time.Now(),
			}
		}
		leadIDs, err = lead.Insert(ctx, tx, news)
		return err
	})
	return owners, followers, leadIDs, err
}

// pct is the p-th percentile of ds (100: the max), rounded for printing.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = min(max(i-1, 0), len(s)-1)
	return s[i].Round(10 * time.Microsecond)
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }
