package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
	"github.com/leadmarket/leadmarket/internal/jobs"
)

// expect reads the next message (skipping pings) and requires it to be for id.
func (w *wsClient) expect(id string) wsMessage {
	w.t.Helper()
	m := w.next()
	require.Equal(w.t, id, m.ID, "%s %s", m.Type, m.Payload)
	return m
}

// refused requires the next message to be an error for id with extensions.code code.
func (w *wsClient) refused(id, code string) {
	w.t.Helper()
	m := w.expect(id)
	require.Equal(w.t, "error", m.Type, string(m.Payload))
	var errs []gqlError
	require.NoError(w.t, json.Unmarshal(m.Payload, &errs))
	require.NotEmpty(w.t, errs)
	require.Equal(w.t, code, errs[0].Extensions["code"], string(m.Payload))
}

// data requires m to be a next and decodes its data into v.
func data(t *testing.T, m wsMessage, v any) {
	t.Helper()
	require.Equal(t, "next", m.Type, string(m.Payload))
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(m.Payload, &res))
	require.Empty(t, res.Errors)
	require.NoError(t, json.Unmarshal(res.Data, v))
}

// quiet requires that nothing but pings arrives for d.
func (w *wsClient) quiet(d time.Duration) {
	w.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r, ok := <-w.messages():
			require.True(w.t, ok && r.err == nil, "the socket failed: %v", r.err)
			require.Contains(w.t, []string{"ping", "pong"}, r.m.Type, "unexpected %s %s", r.m.Type, r.m.Payload)
		case <-deadline:
			return
		}
	}
}

// registered gives subscriptions just sent time to reach the broker.
func registered() { time.Sleep(300 * time.Millisecond) }

type cartMessage struct {
	LeadPurchased struct {
		CartID, WorkspaceID string
		CreditsSpent        int
		Purchases           []struct {
			ID           string
			CreditsSpent int
			Lead         struct{ ID string }
		}
	}
}

// leadPurchased: a workspace member sees only their workspace's carts and must name it; a
// member of another workspace is refused; platform admins see every cart, or one workspace's.
func TestLeadPurchasedScoped(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	api := inst.api
	ws1, owner1 := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	ws2, owner2 := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 100})
	member1 := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws1, member1.ID, "MEMBER")
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	partnerID := dbtest.CreatePartner(t, db, dbtest.PartnerOpts{})
	leadA := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 7})
	leadB := dbtest.CreateLead(t, db, dbtest.LeadOpts{PartnerID: partnerID, PriceCredits: 5})

	const sub = `subscription($ws: ID) { leadPurchased(workspaceId: $ws) { cartId workspaceId creditsSpent purchases { id creditsSpent lead { id } } } }`
	subscribe := func(w *wsClient, id string, workspaceID any) {
		body, err := json.Marshal(map[string]any{"query": sub, "variables": map[string]any{"ws": workspaceID}})
		require.NoError(t, err)
		require.NoError(t, w.send(wsMessage{ID: id, Type: "subscribe", Payload: body}))
	}
	memberWS := openWS(t, api, api.token(member1, false))
	subscribe(memberWS, "none", nil)
	memberWS.refused("none", "INVALID_INPUT")
	subscribe(memberWS, "other", ws2)
	memberWS.refused("other", "FORBIDDEN")
	subscribe(memberWS, "mine", ws1)
	adminAll := openWS(t, api, api.token(admin, true))
	subscribe(adminAll, "all", nil)
	adminOne := openWS(t, api, api.token(admin, true))
	subscribe(adminOne, "ws2", ws2)
	// An admin without MFA is no admin: a non-member, refused for another workspace's carts.
	noMFA := openWS(t, api, api.token(admin, false))
	subscribe(noMFA, "ws2", ws2)
	noMFA.refused("ws2", "FORBIDDEN")
	registered()

	buy := func(owner dbtest.User, ws string, leads ...string) {
		res := api.do(api.token(owner, false), `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { creditsSpent } }`,
			map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": leads, "idempotencyKey": uuid.NewString()}})
		require.Empty(t, res.Errors)
	}
	buy(owner2, ws2, leadA)        // another workspace's cart first
	buy(owner1, ws1, leadA, leadB) // then the member's own

	var got cartMessage
	data(t, memberWS.expect("mine"), &got)
	require.Equal(t, ws1, got.LeadPurchased.WorkspaceID, "the member's first cart is their own: another workspace's never arrives")
	require.Equal(t, 12, got.LeadPurchased.CreditsSpent)
	require.Len(t, got.LeadPurchased.Purchases, 2)
	leads := []string{got.LeadPurchased.Purchases[0].Lead.ID, got.LeadPurchased.Purchases[1].Lead.ID}
	require.ElementsMatch(t, []string{leadA, leadB}, leads)
	memberWS.quiet(300 * time.Millisecond)

	for _, want := range []string{ws2, ws1} {
		data(t, adminAll.expect("all"), &got)
		require.Equal(t, want, got.LeadPurchased.WorkspaceID, "an admin sees every workspace's carts, in commit order")
	}
	data(t, adminOne.expect("ws2"), &got)
	require.Equal(t, ws2, got.LeadPurchased.WorkspaceID)
	require.Len(t, got.LeadPurchased.Purchases, 1)
	require.Equal(t, leadA, got.LeadPurchased.Purchases[0].Lead.ID)
	adminOne.quiet(300 * time.Millisecond)
}

// auditLogAdded for workspace roles: owners and admins of a workspace follow its entries (and
// must name it); its plain members, and owners of other workspaces, are refused.
func TestAuditLogAddedWorkspaceRoles(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	api := inst.api
	ws1, owner1 := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	ws2, owner2 := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	wsAdmin := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws1, wsAdmin.ID, "ADMIN")
	sub := func(ws string) string {
		if ws == "" {
			return `subscription { auditLogAdded { action workspaceId } }`
		}
		return fmt.Sprintf(`subscription { auditLogAdded(filter: {workspaceId: %q}) { action workspaceId } }`, ws)
	}
	other := openWS(t, api, api.token(owner2, false))
	other.subscribe("ws1", sub(ws1))
	other.refused("ws1", "FORBIDDEN")
	other.subscribe("all", sub(""))
	other.refused("all", "FORBIDDEN")
	other.subscribe("own", sub(ws2))
	ownerWS := openWS(t, api, api.token(owner1, false))
	ownerWS.subscribe("o", sub(ws1))
	adminWS := openWS(t, api, api.token(wsAdmin, false))
	adminWS.subscribe("a", sub(ws1))
	registered()

	record(t, db, ws2, "test.ws2", true)
	record(t, db, ws1, "test.ws1", true)
	var got struct {
		AuditLogAdded struct{ Action, WorkspaceID string }
	}
	for _, w := range []struct {
		c  *wsClient
		id string
	}{{ownerWS, "o"}, {adminWS, "a"}} {
		data(t, w.c.expect(w.id), &got)
		require.Equal(t, "test.ws1", got.AuditLogAdded.Action, "only ws1's entries")
	}
	data(t, other.expect("own"), &got)
	require.Equal(t, "test.ws2", got.AuditLogAdded.Action)
	other.quiet(300 * time.Millisecond)
}

// securityEventRaised: platform admins (with MFA) only — anyone else gets FORBIDDEN and keeps
// the socket; minRisk filters by risk level.
func TestSecurityEventRaisedAdminsAndMinRisk(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	api := inst.api
	_, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})

	// The refusals come first: they are security events themselves, committed before the
	// admins below subscribe.
	userWS := openWS(t, api, api.token(owner, false))
	userWS.subscribe("s", `subscription { securityEventRaised { id } }`)
	userWS.refused("s", "FORBIDDEN")
	require.Contains(t, userWS.query("q", `{ me { id } }`), owner.ID, "the socket stays open and serves")
	noMFA := openWS(t, api, api.token(admin, false))
	noMFA.subscribe("s", `subscription { securityEventRaised { id } }`)
	noMFA.refused("s", "FORBIDDEN")
	registered()

	low := openWS(t, api, api.token(admin, true))
	low.subscribe("low", `subscription { securityEventRaised { kind riskLevel } }`)
	high := openWS(t, api, api.token(admin, true))
	high.subscribe("high", `subscription { securityEventRaised(minRisk: HIGH) { kind riskLevel } }`)
	registered()

	for _, ev := range []audit.SecurityEvent{
		{Kind: "test.low", Risk: audit.RiskLow}, {Kind: "test.medium", Risk: audit.RiskMedium},
		{Kind: "test.high", Risk: audit.RiskHigh}, {Kind: "test.critical", Risk: audit.RiskCritical},
	} {
		require.NoError(t, audit.RecordSecurity(context.Background(), db, ev))
	}
	var got struct {
		SecurityEventRaised struct{ Kind, RiskLevel string }
	}
	for _, want := range []string{"test.low", "test.medium", "test.high", "test.critical"} {
		data(t, low.expect("low"), &got)
		require.Equal(t, want, got.SecurityEventRaised.Kind, "minRisk LOW (the default) is every event")
	}
	for _, want := range []string{"test.high", "test.critical"} {
		data(t, high.expect("high"), &got)
		require.Equal(t, want, got.SecurityEventRaised.Kind, "minRisk HIGH: HIGH and CRITICAL only")
	}
	high.quiet(300 * time.Millisecond)
}

// webhookEventFailed: platform admins only; it fires when an event becomes FAILED — its last
// attempt failing, or the clean-up of an abandoned event — and not on a failure that will be
// retried.
func TestWebhookEventFailedOnTheRealPath(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	api := inst.api
	ctx := context.Background()
	_, owner := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	userWS := openWS(t, api, api.token(owner, false))
	userWS.subscribe("w", `subscription { webhookEventFailed { id } }`)
	userWS.refused("w", "FORBIDDEN")
	adminWS := openWS(t, api, api.token(admin, true))
	adminWS.subscribe("w", `subscription { webhookEventFailed { id status attempts lastError } }`)
	registered()

	// A refund without its payment intent fails on every attempt.
	failing := "evt_live_" + uuid.NewString()[:8]
	_, err := db.ExecContext(ctx, `INSERT INTO stripe_events (id, type, payload, status) VALUES (?, 'charge.refunded', ?, 'RECEIVED')`,
		failing, fmt.Sprintf(`{"id": %q, "object": "event", "type": "charge.refunded", "data": {"object": {"id": "ch_live", "object": "charge"}}}`, failing))
	require.NoError(t, err)
	require.Error(t, inst.app.Billing.ProcessEvent(ctx, failing, 1, billing.MaxAttempts, time.Now()))
	adminWS.quiet(500 * time.Millisecond) // RETRYING is not FAILED
	require.Error(t, inst.app.Billing.ProcessEvent(ctx, failing, billing.MaxAttempts, billing.MaxAttempts, time.Now()))
	var got struct {
		WebhookEventFailed struct {
			ID, Status string
			Attempts   int
			LastError  *string
		}
	}
	data(t, adminWS.expect("w"), &got)
	require.Equal(t, failing, got.WebhookEventFailed.ID)
	require.Equal(t, "FAILED", got.WebhookEventFailed.Status)
	require.Equal(t, 2, got.WebhookEventFailed.Attempts)
	require.NotNil(t, got.WebhookEventFailed.LastError)
	require.Contains(t, *got.WebhookEventFailed.LastError, "payment intent")

	// An event whose job is gone is marked FAILED by the hourly clean-up: that fires too.
	abandoned := "evt_live_" + uuid.NewString()[:8]
	_, err = db.ExecContext(ctx, `INSERT INTO stripe_events (id, type, payload, status, received_at) VALUES (?, 'charge.refunded', '{}', 'PROCESSING', now() - interval '1 hour')`, abandoned)
	require.NoError(t, err)
	n, err := inst.app.Billing.FailAbandonedEvents(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	data(t, adminWS.expect("w"), &got)
	require.Equal(t, abandoned, got.WebhookEventFailed.ID)
	adminWS.quiet(300 * time.Millisecond)
}

type progressMessage struct {
	LeadUploadProgress struct {
		ID, Status                  string
		RowsTotal, RowsProcessed    int
		AcceptedCount, InvalidCount int
	}
}

// leadUploadProgress: the upload's partner members and admins; another partner's member, a buyer
// and an unknown upload are refused; the first message is the current state, then each change,
// and the server completes the subscription after COMPLETED (or at once for a FAILED upload).
func TestLeadUploadProgress(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	api := inst.api
	partnerID, member := partnerMember(t, api)
	_, outsider := partnerMember(t, api)
	_, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok := api.token(member, false)

	var file bytes.Buffer
	const rows = 11_000 // three batches of the job
	_, err := ingesttest.Generate(&file, ingesttest.Options{Rows: rows, Seed: 7, InvalidFraction: 0.02})
	require.NoError(t, err)
	var up struct{ UploadLeads uploadView }
	api.upload(tok, partnerID, map[string]any{"defaultCountry": "US"}, "live.csv", file.Bytes()).decode(t, &up)
	id := up.UploadLeads.ID
	require.Equal(t, ingest.StatusQueued, up.UploadLeads.Status)
	sub := func(uploadID string) string {
		return fmt.Sprintf(`subscription { leadUploadProgress(uploadId: %q) { id status rowsTotal rowsProcessed acceptedCount invalidCount } }`, uploadID)
	}

	for _, who := range []string{api.token(outsider, false), api.token(buyer, false)} { // another partner's member, a buyer
		w := openWS(t, api, who)
		w.subscribe("p", sub(id))
		w.refused("p", "FORBIDDEN")
		w.subscribe("none", sub(uuid.NewString()))
		w.refused("none", "NOT_FOUND")
	}
	followers := map[string]*wsClient{"member": openWSWithin(t, api, tok, time.Minute), "admin": openWSWithin(t, api, api.token(admin, true), time.Minute)}
	for name, w := range followers {
		w.subscribe("p", sub(id))
		var got progressMessage
		data(t, w.expect("p"), &got)
		require.Equal(t, ingest.StatusQueued, got.LeadUploadProgress.Status, "%s: the first message is the current state", name)
		require.Equal(t, rows, got.LeadUploadProgress.RowsTotal, name)
		require.Zero(t, got.LeadUploadProgress.RowsProcessed, name)
	}

	// Now the job runs.
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), inst.app.Workers(), jobs.RunnerOptions{
		Concurrency: 2, FetchPollInterval: 100 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })

	for name, w := range followers {
		last := 0
		var states []string
		for {
			m := w.expect("p")
			if m.Type == "complete" {
				break
			}
			var got progressMessage
			data(t, m, &got)
			p := got.LeadUploadProgress
			states = append(states, fmt.Sprintf("%s %d", p.Status, p.RowsProcessed))
			require.GreaterOrEqual(t, p.RowsProcessed, last, "%s: progress only goes forward: %v", name, states)
			last = p.RowsProcessed
			if p.Status == ingest.StatusCompleted {
				require.Equal(t, rows, p.RowsProcessed, name)
				require.Equal(t, rows, p.AcceptedCount+p.InvalidCount, name)
			} else {
				require.Equal(t, ingest.StatusProcessing, p.Status, "%s: %v", name, states)
			}
		}
		require.GreaterOrEqual(t, len(states), 3, "%s: each batch's progress: %v", name, states)
		require.Equal(t, fmt.Sprintf("%s %d", ingest.StatusCompleted, rows), states[len(states)-1], "%s: completed after COMPLETED", name)
		w.quiet(200 * time.Millisecond)
	}

	// A FAILED upload: its state, then complete.
	var failed struct{ UploadLeads uploadView }
	api.upload(tok, partnerID, nil, "empty.csv", nil).decode(t, &failed)
	require.Equal(t, ingest.StatusFailed, failed.UploadLeads.Status)
	w := followers["member"]
	w.subscribe("f", sub(failed.UploadLeads.ID))
	var got progressMessage
	data(t, w.expect("f"), &got)
	require.Equal(t, ingest.StatusFailed, got.LeadUploadProgress.Status)
	require.Equal(t, "complete", w.expect("f").Type)
}

// marketplaceStats: platform admins with MFA only; intervalSeconds 1 to 300.
func TestMarketplaceStatsRefusals(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	_, owner := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	userWS := openWS(t, api, api.token(owner, false))
	userWS.subscribe("s", `subscription { marketplaceStats { at } }`)
	userWS.refused("s", "FORBIDDEN")
	noMFA := openWS(t, api, api.token(admin, false))
	noMFA.subscribe("s", `subscription { marketplaceStats(intervalSeconds: 1) { at } }`)
	noMFA.refused("s", "FORBIDDEN")
	adminWS := openWS(t, api, api.token(admin, true))
	for _, n := range []int{0, -5, 301, 100000} {
		id := fmt.Sprint("i", n)
		adminWS.subscribe(id, fmt.Sprintf(`subscription { marketplaceStats(intervalSeconds: %d) { at } }`, n))
		adminWS.refused(id, "INVALID_INPUT")
	}
	adminWS.subscribe("ok", `subscription { marketplaceStats(intervalSeconds: 1) { at leadsActive webhookEventsFailed } }`)
	var got struct{ MarketplaceStats struct{ At time.Time } }
	data(t, adminWS.expect("ok"), &got)
	require.WithinDuration(t, time.Now(), got.MarketplaceStats.At, 5*time.Second)
}

// dialSlowReader opens a socket whose client never reads unless told to, with a small receive
// buffer, so that what the server writes backs up into its subscription's buffer soon.
func dialSlowReader(t *testing.T, api *apiServer, token string) *websocket.Conn {
	t.Helper()
	dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	require.NoError(t, err)
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	c.SetReadLimit(1 << 20)
	return c
}

// A client that stops reading while events flood: its subscription's buffer fills, and when it
// reads again it finds an error SUBSCRIBER_TOO_SLOW on that subscription, which is over (its id
// is free again); a fast subscriber on another socket meanwhile receives every event, in order,
// without delay.
func TestSlowSubscriberOverARealSocket(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, map[string]string{"WS_SUBSCRIBER_BUFFER": "64"})
	api := inst.api
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok := api.token(admin, true)
	// Twelve copies of a 2 KB field make each message about 25 KB, so the socket's buffers
	// hold few of them.
	var fields strings.Builder
	for i := range 12 {
		fmt.Fprintf(&fields, " m%d: metadata", i)
	}
	sub := `subscription { auditLogAdded(filter: {resourceType: "flood"}) { action` + fields.String() + ` } }`

	slow := dialSlowReader(t, api, tok)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, wsjson.Write(ctx, slow, wsMessage{Type: "connection_init"}))
	var m wsMessage
	require.NoError(t, wsjson.Read(ctx, slow, &m))
	require.Equal(t, "connection_ack", m.Type)
	body, err := json.Marshal(map[string]string{"query": sub})
	require.NoError(t, err)
	require.NoError(t, wsjson.Write(ctx, slow, wsMessage{ID: "s", Type: "subscribe", Payload: body}))

	fast := openWSWithin(t, api, tok, time.Minute)
	fast.subscribe("f", sub)
	registered()

	const n = 500
	committed := make([]time.Time, n)
	received := make([]time.Time, n)
	fastDone := make(chan error, 1)
	go func() {
		for i := range n {
			var r wsRead
			for r = range fast.messages() {
				if r.err != nil || (r.m.Type != "ping" && r.m.Type != "pong") {
					break
				}
			}
			if r.err != nil || r.m.Type != "next" || !strings.Contains(string(r.m.Payload), fmt.Sprintf("flood.n%04d", i)) {
				fastDone <- fmt.Errorf("event %d: %v %s %s", i, r.err, r.m.Type, r.m.Payload)
				return
			}
			received[i] = time.Now()
		}
		fastDone <- nil
	}()
	pad := strings.Repeat("x", 2048)
	for i := range n {
		require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			// Not waiting for the disk makes the flood faster; delivery is the same (on commit).
			if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
				return err
			}
			return audit.Record(ctx, tx, audit.Entry{ActorType: audit.ActorSystem, Action: fmt.Sprintf("flood.n%04d", i),
				ResourceType: "flood", Metadata: map[string]any{"pad": pad}})
		}))
		committed[i] = time.Now()
		// 100 a second: a pace the fast subscriber keeps on a busy machine (64 events behind
		// would be 640 ms).
		time.Sleep(time.Until(committed[i].Add(10 * time.Millisecond)))
	}
	require.NoError(t, <-fastDone, "the fast subscriber gets every event, in order")
	var worst time.Duration
	for i := range n {
		worst = max(worst, received[i].Sub(committed[i]))
	}
	t.Logf("fast subscriber: %d events, worst commit-to-receipt %v", n, worst)
	require.Less(t, worst, 2*time.Second, "the slow subscriber did not hold the fast one up")

	// The slow client reads again: what was buffered, then the error, and nothing after it.
	nexts := 0
	for {
		require.NoError(t, wsjson.Read(ctx, slow, &m))
		if m.Type == "ping" {
			continue
		}
		require.Equal(t, "s", m.ID)
		if m.Type == "next" {
			nexts++
			continue
		}
		require.Equal(t, "error", m.Type, string(m.Payload))
		require.Contains(t, string(m.Payload), `"SUBSCRIBER_TOO_SLOW"`)
		break
	}
	require.Less(t, nexts, n, "the slow subscriber was ended part-way")
	t.Logf("slow subscriber: %d events, then SUBSCRIBER_TOO_SLOW", nexts)
	// Counted, though gqlgen sends a subscription's last error past the response handler (the
	// LeadmarketSubscribersTooSlow alert reads this series).
	tooSlow, _ := scrapeMetrics(t, api.url).value("graphql_errors_total", map[string]string{"code": "SUBSCRIBER_TOO_SLOW"})
	require.Equal(t, 1.0, tooSlow, "graphql_errors_total{code=SUBSCRIBER_TOO_SLOW}")
	// The subscription is over: its id can be used again (no 4409), and the new one runs.
	require.NoError(t, wsjson.Write(ctx, slow, wsMessage{ID: "s", Type: "subscribe", Payload: body}))
	registered()
	require.NoError(t, db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return audit.Record(ctx, tx, audit.Entry{ActorType: audit.ActorSystem, Action: "flood.again", ResourceType: "flood"})
	}))
	for {
		require.NoError(t, wsjson.Read(ctx, slow, &m))
		if m.Type != "ping" {
			break
		}
	}
	require.Equal(t, "s", m.ID)
	require.Equal(t, "next", m.Type, string(m.Payload))
	require.Contains(t, string(m.Payload), "flood.again")
}

// Subscribes count against the caller's rate limit like every other operation: over the
// STANDARD tier a subscribe gets an error RATE_LIMITED (with retryAfter) and the socket stays;
// the same caller's HTTP operations then find the budget spent as well.
func TestSubscribesCountAgainstTheRateLimit(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"RATE_LIMIT_STANDARD": "3"})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok := api.token(admin, true)
	ws := openWS(t, api, tok)
	for i := range 3 {
		ws.subscribe(fmt.Sprint(i), `subscription { webhookEventFailed { id } }`)
	}
	ws.subscribe("over", `subscription { webhookEventFailed { id } }`)
	m := ws.expect("over")
	require.Equal(t, "error", m.Type, string(m.Payload))
	var errs []gqlError
	require.NoError(t, json.Unmarshal(m.Payload, &errs))
	require.Equal(t, "RATE_LIMITED", errs[0].Extensions["code"])
	require.Equal(t, "STANDARD", errs[0].Extensions["tier"])
	require.Greater(t, errs[0].Extensions["retryAfter"], float64(0))
	ws.quiet(200 * time.Millisecond) // the three subscriptions are running; nothing else came
	res := api.do(tok, `{ me { id } }`, nil)
	require.Equal(t, "RATE_LIMITED", res.code(), "the subscribes spent the caller's budget")
	require.Equal(t, http.StatusTooManyRequests, res.Status)
	// Another user's subscribes are not affected.
	other := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	ws2 := openWS(t, api, api.token(other, true))
	ws2.subscribe("x", `subscription { webhookEventFailed { id } }`)
	ws2.quiet(200 * time.Millisecond)
}
