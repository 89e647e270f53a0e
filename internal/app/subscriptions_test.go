package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// liveInstance is one app instance on a database that commits (its broker LISTENs).
type liveInstance struct {
	api *apiServer
	app *app.App
}

func newLiveInstance(t *testing.T, db *bun.DB, env map[string]string) *liveInstance {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret, "ADMIN_REQUIRE_MFA": "true",
		"DATABASE_URL": dbtest.URL(dbtest.NameOf(context.Background(), db))}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	a, err := app.Build(cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	select {
	case <-a.Broker.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not LISTEN")
	}
	return &liveInstance{api: &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}, app: a}
}

func (w *wsClient) subscribe(id, query string) {
	w.t.Helper()
	body, err := json.Marshal(map[string]string{"query": query})
	require.NoError(w.t, err)
	require.NoError(w.t, w.send(wsMessage{ID: id, Type: "subscribe", Payload: body}))
}

// next reads the next message, skipping pings.
func (w *wsClient) next() wsMessage {
	w.t.Helper()
	for {
		m, err := w.read()
		require.NoError(w.t, err)
		if m.Type == "ping" || m.Type == "pong" {
			continue
		}
		return m
	}
}

func record(t *testing.T, db *bun.DB, workspaceID, action string, commit bool) {
	t.Helper()
	err := db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		if err := audit.Record(ctx, tx, audit.Entry{ActorType: audit.ActorSystem, WorkspaceID: workspaceID, Action: action, ResourceType: "test"}); err != nil {
			return err
		}
		if !commit {
			return errors.New("roll back")
		}
		return nil
	})
	if commit {
		require.NoError(t, err)
	}
}

// A change committed through one instance reaches a subscriber on another; a rolled-back one
// reaches no one; a workspace owner sees only their workspace's entries, and a plain member is
// refused (FORBIDDEN) on the same socket, which stays open.
func TestAuditLogAddedAcrossInstancesAndScoped(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	a := newLiveInstance(t, db, nil)
	b := newLiveInstance(t, db, nil)
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	ws1, owner1 := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	ws2, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, db, dbtest.UserOpts{})
	dbtest.AddMember(t, db, ws1, member.ID, "MEMBER")

	adminWS := openWS(t, b.api, b.api.token(admin, true))
	adminWS.subscribe("a", `subscription { auditLogAdded { action workspaceId } }`)
	ownerWS := openWS(t, b.api, b.api.token(owner1, false))
	ownerWS.subscribe("o", fmt.Sprintf(`subscription { auditLogAdded(filter: {workspaceId: %q}) { action workspaceId } }`, ws1))
	memberWS := openWS(t, a.api, a.api.token(member, false))
	memberWS.subscribe("m", fmt.Sprintf(`subscription { auditLogAdded(filter: {workspaceId: %q}) { action } }`, ws1))
	refused := memberWS.next()
	require.Equal(t, "error", refused.Type, string(refused.Payload))
	require.Contains(t, string(refused.Payload), `"FORBIDDEN"`)
	// The socket is still open: another subscribe on it runs.
	memberWS.subscribe("m2", fmt.Sprintf(`subscription { leadPurchased(workspaceId: %q) { cartId } }`, ws1))
	time.Sleep(200 * time.Millisecond) // subscriptions registered

	record(t, db, ws1, "test.rolled_back", false)
	record(t, db, ws2, "test.other_workspace", true)
	record(t, db, ws1, "test.committed", true)

	m := adminWS.next()
	require.Equal(t, "next", m.Type)
	require.Contains(t, string(m.Payload), "test.other_workspace")
	m = adminWS.next()
	require.Contains(t, string(m.Payload), "test.committed")
	m = ownerWS.next()
	require.Contains(t, string(m.Payload), "test.committed", "the owner sees only their workspace's entries, never the rolled-back one")
}

// The listener's backend is killed while 100 audit entries and 100 security events commit: the
// subscriber still receives each of them once, in commit order per table — those committed while
// the instance was not listening caught up from the tables after the reconnect.
func TestAuditLogAddedSurvivesALostListener(t *testing.T) {
	t.Parallel()
	db := dbtest.FreshDB(t)
	inst := newLiveInstance(t, db, nil)
	admin := dbtest.CreateUser(t, db, dbtest.UserOpts{IsPlatformAdmin: true})
	ws := openWSWithin(t, inst.api, inst.api.token(admin, true), time.Minute)
	ws.subscribe("a", `subscription { auditLogAdded(filter: {resourceType: "test"}) { action } }`)
	ws.subscribe("s", `subscription { securityEventRaised { kind } }`)
	time.Sleep(200 * time.Millisecond)

	pid := inst.app.Broker.BackendPID()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			record(t, db, "", fmt.Sprintf("test.n%03d", i), true)
			if err := audit.RecordSecurity(context.Background(), db, audit.SecurityEvent{Kind: fmt.Sprintf("test.s%03d", i), Risk: audit.RiskLow}); err != nil {
				t.Error(err)
				return
			}
			if i == 30 {
				_, err := db.ExecContext(context.Background(), "SELECT pg_terminate_backend(?)", pid)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	got := map[string][]string{}
	for len(got["a"])+len(got["s"]) < 200 {
		m := ws.next()
		require.Equal(t, "next", m.Type, string(m.Payload))
		var v struct {
			Data struct {
				AuditLogAdded       *struct{ Action string }
				SecurityEventRaised *struct{ Kind string }
			}
		}
		require.NoError(t, json.Unmarshal(m.Payload, &v))
		switch m.ID {
		case "a":
			got["a"] = append(got["a"], v.Data.AuditLogAdded.Action)
		case "s":
			got["s"] = append(got["s"], v.Data.SecurityEventRaised.Kind)
		}
	}
	<-done
	for i := range 100 {
		require.Equal(t, fmt.Sprintf("test.n%03d", i), got["a"][i], "audit entries in commit order, each once")
		require.Equal(t, fmt.Sprintf("test.s%03d", i), got["s"][i], "security events in commit order, each once")
	}
	require.GreaterOrEqual(t, inst.app.Broker.Reconnects(), 1)
	require.Positive(t, inst.app.Broker.CaughtUp(), "some events came from the catch-up, not from a notification")
	ws.quiet(500 * time.Millisecond) // nothing more: no duplicate
}

// Each close code graphql-transport-ws prescribes, seen by a real client.
func TestWebSocketProtocolCloseCodes(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"WS_INIT_TIMEOUT": "300ms", "WS_MAX_CONNECTIONS_PER_USER": "2", "WS_MAX_SUBSCRIPTIONS": "1"})
	admin := dbtest.CreateUser(t, api.db, dbtest.UserOpts{IsPlatformAdmin: true})
	tok := api.token(admin, true)
	dial := func(header http.Header) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api.url, "http")+"/graphql", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header,
		})
		require.NoError(t, err)
		if res != nil && res.Body != nil {
			_ = res.Body.Close()
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		return c
	}
	closedWith := func(c *websocket.Conn) websocket.StatusCode {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return websocket.CloseStatus(err)
			}
		}
	}
	write := func(c *websocket.Conn, s string) {
		require.NoError(t, c.Write(context.Background(), websocket.MessageText, []byte(s)))
	}
	sub := `{"id":"1","type":"subscribe","payload":{"query":"subscription { webhookEventFailed { id } }"}}`

	c := dial(nil)
	write(c, `not json`)
	require.Equal(t, websocket.StatusCode(4400), closedWith(c), "invalid message")

	c = dial(nil)
	write(c, sub)
	require.Equal(t, websocket.StatusCode(4401), closedWith(c), "subscribe before connection_ack")

	c = dial(nil)
	require.Equal(t, websocket.StatusCode(4408), closedWith(c), "no connection_init in WS_INIT_TIMEOUT")

	c = dial(nil)
	write(c, `{"type":"connection_init","payload":{"Authorization":"Bearer not-a-token"}}`)
	require.Equal(t, websocket.StatusCode(4403), closedWith(c), "bad token in connection_init")

	// The token in connection_init's payload signs the socket in.
	c = dial(nil)
	write(c, `{"type":"connection_init","payload":{"authorization":"Bearer `+tok+`"}}`)
	var m wsMessage
	require.NoError(t, wsjson.Read(context.Background(), c, &m))
	require.Equal(t, "connection_ack", m.Type)
	write(c, sub)
	// Over WS_MAX_SUBSCRIPTIONS: an error on that subscribe, the socket stays.
	write(c, `{"id":"2","type":"subscribe","payload":{"query":"subscription { webhookEventFailed { id } }"}}`)
	for m.Type != "error" {
		require.NoError(t, wsjson.Read(context.Background(), c, &m))
	}
	require.Equal(t, "2", m.ID)
	require.Contains(t, string(m.Payload), "TOO_MANY_SUBSCRIPTIONS")
	// The user's second socket is fine, the third is closed 4429.
	c2 := dial(http.Header{"Authorization": {"Bearer " + tok}})
	write(c2, `{"type":"connection_init"}`)
	require.NoError(t, wsjson.Read(context.Background(), c2, &m))
	require.Equal(t, "connection_ack", m.Type)
	c3 := dial(http.Header{"Authorization": {"Bearer " + tok}})
	write(c3, `{"type":"connection_init"}`)
	require.Equal(t, websocket.StatusCode(4429), closedWith(c3), "over WS_MAX_CONNECTIONS_PER_USER")
	// A subscribe with an id in use: 4409.
	write(c, sub)
	require.Equal(t, websocket.StatusCode(4409), closedWith(c), "duplicate subscribe id")
	// A second connection_init: 4429.
	write(c2, `{"type":"connection_init"}`)
	require.Equal(t, websocket.StatusCode(4429), closedWith(c2), "second connection_init")
	// Both of the user's sockets are closed: their slots are free again.
	require.Eventually(t, func() bool {
		c4 := dial(http.Header{"Authorization": {"Bearer " + tok}})
		write(c4, `{"type":"connection_init"}`)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var ack wsMessage
		return wsjson.Read(ctx, c4, &ack) == nil && ack.Type == "connection_ack"
	}, 5*time.Second, 100*time.Millisecond, "a closed socket gives its slot back")
}
