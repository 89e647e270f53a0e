package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/redistest"
)

// statementLog is a pgx tracer that records, for every statement the app's pools run (bun's and
// the prepared browse statement alike), the application_name the server reported for the
// connection it ran on: which database handle ran it, as PostgreSQL saw it. The events brokers'
// loads by id (each instance's broker loads a committed event's rows after its NOTIFY, on its
// own goroutine, at a moment no request decides) are kept apart in broker, for the whole test.
type statementLog struct {
	mu     sync.Mutex
	byApp  map[string][]string
	broker map[string][]string
}

func (l *statementLog) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	name := conn.PgConn().ParameterStatus("application_name")
	l.mu.Lock()
	defer l.mu.Unlock()
	if isBrokerLoad(d.SQL) {
		l.broker[name] = append(l.broker[name], d.SQL)
	} else {
		l.byApp[name] = append(l.byApp[name], d.SQL)
	}
	return ctx
}

func (l *statementLog) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// during returns the statements each application_name ran while fn ran.
func (l *statementLog) during(fn func()) map[string][]string {
	l.mu.Lock()
	l.byApp = map[string][]string{}
	l.mu.Unlock()
	fn()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byApp
}

// brokerLoads returns the brokers' loads so far by application_name.
func (l *statementLog) brokerLoads() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, v := range l.broker {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// brokerTables are the tables the events brokers load committed events from, by id.
var brokerTables = []string{"FROM audit_logs", "FROM security_events", "FROM lead_purchases", "FROM stripe_events", "FROM lead_uploads"}

// isBrokerLoad reports whether sql is an events broker's load by id (ANY of an array literal,
// from one of the event tables).
func isBrokerLoad(sql string) bool {
	if !strings.Contains(sql, "= ANY('{") {
		return false
	}
	for _, t := range brokerTables {
		if strings.Contains(sql, t) {
			return true
		}
	}
	return false
}

// anyMentions reports whether one of stmts contains part.
func anyMentions(stmts []string, part string) bool {
	for _, s := range stmts {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}

// readInstance is the app on primary with DATABASE_READ_URL opened as read (nil: unset).
func readInstance(t *testing.T, primary, read *bun.DB, env map[string]string) *apiServer {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret, "RATE_LIMITS_ENABLED": "false",
		"DATABASE_URL": dbtest.URL(dbtest.NameOf(context.Background(), primary))}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	var opts []app.Option
	if read != nil {
		opts = append(opts, app.WithReadDB(read))
	}
	a, err := app.Build(cfg, primary, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	require.NoError(t, err)
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	return &apiServer{t: t, db: primary, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}
}

const (
	// replayProbe is the Router's question to the replica for a caller inside their window; this
	// "replica" is no standby, so its answer (NULL) keeps them on the primary.
	replayProbe    = `SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint`
	routedBrowse   = `query { marketplaceLeads(first: 10, filter: {industries: ["ReadRouting"]}) { edges { node { id partner { name } } } } }`
	routedMyLeads  = `query($ws: ID!) { myLeads(workspaceId: $ws) { edges { node { id email } } } }`
	routedPurchase = `mutation($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { balance } }`
)

// With DATABASE_READ_URL on a second connection string of the same server, browse reads it and
// a purchase writes the primary; the buyer's own reads right after their purchase read the
// primary, on any instance (the window is shared through Redis), and see it; another buyer's
// browse at that moment reads the replica; once the window has passed the buyer is back on it.
// With DATABASE_READ_URL unset everything runs on the primary. Which connection ran each
// statement is told by the application_name PostgreSQL reports for it.
func TestReadsGoToTheReadDatabaseExceptAfterTheCallersWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fresh := dbtest.FreshDB(t)
	url := dbtest.URL(dbtest.NameOf(ctx, fresh))
	log := &statementLog{byApp: map[string][]string{}, broker: map[string][]string{}}
	primary, err := db.OpenWith(ctx, url, db.Options{MaxConns: 8, Tracer: log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = primary.Close() })
	read, err := db.OpenRead(ctx, url, 4, db.Options{Tracer: log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = read.Close() })

	const sticky = 1500 * time.Millisecond
	env := map[string]string{"DATABASE_READ_URL": url, "DATABASE_READ_STICKY": sticky.String(), "REDIS_URL": redistest.URL(t)}
	one := readInstance(t, primary, read, env)
	two := readInstance(t, primary, read, env) // a second instance: the window must hold there too
	unset := readInstance(t, primary, nil, nil)

	partnerID := dbtest.CreatePartner(t, fresh, dbtest.PartnerOpts{})
	leadID := dbtest.CreateLead(t, fresh, dbtest.LeadOpts{PartnerID: partnerID, Industry: "ReadRouting"})
	dbtest.CreateLead(t, fresh, dbtest.LeadOpts{PartnerID: partnerID, Industry: "ReadRouting"})
	wsA, buyerA := dbtest.CreateWorkspace(t, fresh, dbtest.WorkspaceOpts{Credits: 100})
	_, buyerB := dbtest.CreateWorkspace(t, fresh, dbtest.WorkspaceOpts{Credits: 100})
	redistest.DeleteAtCleanup(t, buyerA.ID)
	tokA, tokB := one.token(buyerA, false), one.token(buyerB, false)
	browse := func(api *apiServer, tok string) []string {
		var p struct {
			MarketplaceLeads struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		api.do(tok, routedBrowse, nil).decode(t, &p)
		var ids []string
		for _, e := range p.MarketplaceLeads.Edges {
			ids = append(ids, e.Node.ID)
		}
		return ids
	}
	// Both buyers are seen once on each instance, so that what follows is the operations alone
	// (an unknown token's user is looked up, and cached, on the primary).
	for _, api := range []*apiServer{one, two, unset} {
		browse(api, tokA)
		browse(api, tokB)
	}

	ran := log.during(func() { require.Len(t, browse(one, tokA), 2) })
	require.True(t, anyMentions(ran[db.ReadApplicationName], "FROM leads"), "browse reads the replica: %v", ran)
	require.Empty(t, ran[db.ApplicationName], "browse runs nothing on the primary")

	ran = log.during(func() {
		one.do(tokA, routedPurchase, map[string]any{"in": map[string]any{
			"workspaceId": wsA, "leadIds": []string{leadID}, "idempotencyKey": "read-routing"}}).decode(t, &struct{}{})
	})
	require.True(t, anyMentions(ran[db.ApplicationName], "INSERT INTO lead_purchases"), "the purchase writes the primary: %v", ran)
	require.Empty(t, ran[db.ReadApplicationName], "nothing of a mutation reads the replica")
	// Each of the three instances' brokers loads the purchase's cart after its NOTIFY, on its own
	// goroutine; wait for all three, so that no later step's statements include them.
	require.Eventually(t, func() bool {
		n := 0
		for _, stmts := range log.brokerLoads() {
			for _, s := range stmts {
				if strings.Contains(s, "FROM lead_purchases") {
					n++
				}
			}
		}
		return n >= 3
	}, 10*time.Second, 10*time.Millisecond, "every instance's broker loads the purchase")

	var mine struct {
		MyLeads struct {
			Edges []struct{ Node struct{ ID, Email string } }
		}
	}
	ran = log.during(func() { two.do(tokA, routedMyLeads, map[string]any{"ws": wsA}).decode(t, &mine) })
	require.Len(t, mine.MyLeads.Edges, 1, "the buyer sees their purchase at once")
	require.Equal(t, leadID, mine.MyLeads.Edges[0].Node.ID)
	require.NotEmpty(t, ran[db.ApplicationName], "the buyer's reads right after their write run on the primary")
	require.Equal(t, []string{replayProbe}, ran[db.ReadApplicationName],
		"... on the other instance too: the replica is only asked how far it has replayed")

	ran = log.during(func() { browse(one, tokB) })
	require.NotEmpty(t, ran[db.ReadApplicationName], "another buyer's browse meanwhile reads the replica")
	require.Empty(t, ran[db.ApplicationName])

	ran = log.during(func() { browse(two, tokA) })
	require.Equal(t, []string{replayProbe}, ran[db.ReadApplicationName], "within the window the buyer's browse stays on the primary")
	require.True(t, anyMentions(ran[db.ApplicationName], "FROM leads"))

	time.Sleep(sticky + 200*time.Millisecond)
	ran = log.during(func() { browse(two, tokA) })
	require.NotEmpty(t, ran[db.ReadApplicationName], "after the window the buyer reads the replica again")
	require.Empty(t, ran[db.ApplicationName])

	ran = log.during(func() {
		browse(unset, tokB)
		unset.do(tokA, routedMyLeads, map[string]any{"ws": wsA}).decode(t, &mine)
	})
	require.True(t, anyMentions(ran[db.ApplicationName], "FROM leads"), "DATABASE_READ_URL unset: everything on the primary")
	require.Empty(t, ran[db.ReadApplicationName])

	// The brokers load committed events on the primary, whose commit sent the NOTIFY: a replica
	// might not have replayed it yet.
	loads := log.brokerLoads()
	require.NotEmpty(t, loads[db.ApplicationName])
	require.Empty(t, loads[db.ReadApplicationName], "the brokers load events on the primary")

	// Readiness checks the read database.
	status, body := get(t, one.url+"/readyz", nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	require.NoError(t, read.Close())
	status, body = get(t, one.url+"/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	b, _ := json.Marshal(body)
	require.Contains(t, string(b), "read database unreachable")
	status, _ = get(t, unset.url+"/readyz", nil)
	require.Equal(t, http.StatusOK, status, "an instance without a read database does not depend on it")
}
