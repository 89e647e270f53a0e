package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/telemetry"
)

// An end-to-end run with tracing on and the log captured as `leadmarket serve` writes it (JSON
// through telemetry.LogHandler, River's lines included): a partner uploads a file that River
// works, a buyer browses, buys a lead (its contact data revealed to them), reads it, downloads
// nothing it may not, and a forged token is tried. Then:
//
//   - the log holds none of the seeded e-mail addresses and phone numbers and none of the
//     bearer tokens;
//   - every request has its line with method, path, status, duration, user id, operation,
//     request id and trace id;
//   - the purchase's trace id in its line is the trace of its spans: the server span (named after
//     the route), the operation, the root field, and SQL statements under it — whose
//     statements, like every span attribute, hold no contact data or token;
//   - the upload's River job has its work span, linked to the request that enqueued it.
func TestTelemetryEndToEnd(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"ENV": "test", "JWT_SECRET": testSecret}[k]
		return v, ok
	})
	require.NoError(t, err)
	ctx := context.Background()
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(ctx, telemetry.Options{SpanProcessor: sdktrace.NewSimpleSpanProcessor(spans)})
	require.NoError(t, err)
	var logs syncBuffer
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	db := dbtest.FreshDB(t)
	a, err := app.Build(cfg, db, logger, app.WithTelemetry(tel))
	require.NoError(t, err)
	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), a.Workers(), jobs.RunnerOptions{
		Concurrency: 2, FetchPollInterval: 100 * time.Millisecond, Logger: logger,
		Plugins: tel.RiverPlugins(), ReportPanicFunc: tel.ReportJobPanic,
	})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	api := &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}

	// What must never be logged: every e-mail and phone of the file and of the users, and the
	// tokens.
	var file bytes.Buffer
	_, err = ingesttest.Generate(&file, ingesttest.Options{Rows: 30, Seed: 1414, InvalidFraction: 0.1})
	require.NoError(t, err)
	secrets := map[string]bool{}
	records, err := csv.NewReader(bytes.NewReader(file.Bytes())).ReadAll()
	require.NoError(t, err)
	for _, rec := range records[1:] {
		for _, col := range []int{0, 10} { // email, phone
			if v := strings.TrimSpace(rec[col]); len(v) >= 6 {
				secrets[v] = true
			}
		}
	}
	partnerID, member := partnerMember(t, api)
	ws, buyer := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{Credits: 500})
	partnerTok, buyerTok := api.token(member, false), api.token(buyer, false)
	forged, err := auth.NewTokens("another-secret-another-secret-0123456789").Issue(buyer.Subject, buyer.Email, false, time.Hour)
	require.NoError(t, err)
	for _, s := range []string{member.Email, buyer.Email, partnerTok, buyerTok, forged} {
		secrets[s] = true
	}

	// The partner's upload, worked by River.
	res := api.upload(partnerTok, partnerID, nil, "leads.csv", file.Bytes())
	require.Empty(t, res.Errors)
	var up struct{ UploadLeads struct{ ID string } }
	res.decode(t, &up)
	done := api.waitFor(partnerTok, up.UploadLeads.ID)
	require.Equal(t, "COMPLETED", done.Status)
	require.Positive(t, done.AcceptedCount)
	status, _, _ := api.download(partnerTok, "/partners/uploads/"+up.UploadLeads.ID+"/rejections.csv")
	require.Equal(t, http.StatusOK, status)

	// The buyer browses, buys one of the leads and reads it.
	var page struct {
		MarketplaceLeads struct {
			Edges []struct {
				Node struct{ ID, EmailPreview string }
			}
		}
	}
	api.do(buyerTok, `query Browse($f: LeadFilter) { marketplaceLeads(first: 10, filter: $f) { edges { node { id emailPreview } } } }`,
		map[string]any{"f": map[string]any{"partnerIds": []string{partnerID}}}).decode(t, &page)
	require.NotEmpty(t, page.MarketplaceLeads.Edges)
	leadID := page.MarketplaceLeads.Edges[0].Node.ID
	var bought struct {
		PurchaseLeads struct {
			Purchases []struct{ Lead struct{ Email, Phone string } }
		}
	}
	api.do(buyerTok, `mutation Buy($in: PurchaseLeadsInput!) { purchaseLeads(input: $in) { purchases { lead { email phone } } } }`,
		map[string]any{"in": map[string]any{"workspaceId": ws, "leadIds": []string{leadID}, "idempotencyKey": "telemetry-1"}}).decode(t, &bought)
	require.Len(t, bought.PurchaseLeads.Purchases, 1)
	revealed := bought.PurchaseLeads.Purchases[0].Lead
	require.Contains(t, revealed.Email, "@", "the buyer sees the contact data")
	secrets[revealed.Email], secrets[revealed.Phone] = true, true
	var one struct{ Lead struct{ Email string } }
	api.do(buyerTok, `query ReadLead($id: ID!) { lead(id: $id) { email } }`, map[string]any{"id": leadID}).decode(t, &one)
	require.Equal(t, revealed.Email, one.Lead.Email)
	require.Equal(t, "UNAUTHENTICATED", api.do(forged, `query Me { me { id } }`, nil).code())

	require.NoError(t, r.Stop(ctx)) // the jobs' lines are all written
	text := logs.String()
	for s := range secrets {
		require.NotContains(t, text, s, "the log holds contact data or a token")
	}

	// One line per request, naming everything.
	type requestLine struct {
		Msg, Method, Path, Operation string
		Status                       int
		Duration                     float64
		RequestID                    string `json:"request_id"`
		TraceID                      string `json:"trace_id"`
		UserID                       string `json:"user_id"`
	}
	var lines []requestLine
	for line := range strings.Lines(text) {
		var l requestLine
		require.NoError(t, json.Unmarshal([]byte(line), &l), line)
		if l.Msg == "request" {
			lines = append(lines, l)
		}
	}
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	byOperation := map[string]requestLine{}
	for _, l := range lines {
		require.NotEmpty(t, l.Method)
		require.NotEmpty(t, l.Path)
		require.NotZero(t, l.Status)
		require.Positive(t, l.Duration)
		require.NotEmpty(t, l.RequestID)
		require.Regexp(t, hex32, l.TraceID, "every request line names its trace")
		if l.Path == "/graphql" {
			require.NotEmpty(t, l.Operation)
		}
		byOperation[l.Operation] = l
	}
	require.Equal(t, buyer.ID, byOperation["Buy"].UserID)
	require.Equal(t, member.ID, byOperation["mutation"].UserID, "the upload (an unnamed mutation)")
	require.Empty(t, byOperation["Me"].UserID, "a forged token is no user")

	// The purchase's spans, in the trace its line names.
	all := spans.GetSpans()
	buyTrace := byOperation["Buy"].TraceID
	inTrace := map[string]tracetest.SpanStub{}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var sql []tracetest.SpanStub
	for _, s := range all {
		byID[s.SpanContext.SpanID()] = s
		if s.SpanContext.TraceID().String() != buyTrace {
			continue
		}
		inTrace[s.Name] = s
		for _, a := range s.Attributes {
			if a.Key == "db.statement" {
				sql = append(sql, s)
			}
		}
	}
	server, op, field := inTrace["POST /graphql"], inTrace["mutation Buy"], inTrace["Mutation.purchaseLeads"]
	require.Equal(t, trace.SpanKindServer, server.SpanKind, "the spans: %v", names(all))
	require.Equal(t, server.SpanContext.SpanID(), op.Parent.SpanID(), "in the trace: %v", keys(inTrace))
	require.Equal(t, op.SpanContext.SpanID(), field.Parent.SpanID(), "in the trace: %v", keys(inTrace))
	require.NotEmpty(t, sql, "the purchase's SQL statements are spans")
	for _, s := range sql {
		require.True(t, descends(s, field, byID), "%s is under the root field", s.Name)
	}

	// The upload's job: enqueued in the upload's trace, worked in a span linked to it.
	var inserted, worked bool
	uploadTrace := byOperation["mutation"].TraceID
	for _, s := range all {
		if s.Name == "river.insert_many" && s.SpanContext.TraceID().String() == uploadTrace {
			inserted = true
		}
		if s.Name == "river.work/lead_upload.process" {
			for _, l := range s.Links {
				worked = worked || l.SpanContext.TraceID().String() == uploadTrace
			}
		}
	}
	require.True(t, inserted, "the upload's insert is a span of its trace: %v", names(all))
	require.True(t, worked, "the job's work span links to the upload's trace: %v", names(all))

	// No span carries contact data or a token either.
	for _, s := range all {
		for _, a := range s.Attributes {
			for secret := range secrets {
				require.NotContains(t, a.Value.String(), secret, "span %s, attribute %s", s.Name, a.Key)
			}
		}
	}
}

// descends reports whether s is under ancestor.
func descends(s, ancestor tracetest.SpanStub, byID map[trace.SpanID]tracetest.SpanStub) bool {
	for range 20 {
		p, ok := byID[s.Parent.SpanID()]
		if !ok {
			return false
		}
		if p.SpanContext.SpanID() == ancestor.SpanContext.SpanID() {
			return true
		}
		s = p
	}
	return false
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
