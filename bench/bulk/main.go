// Command bulk is the pipeline benchmark (make bench-bulk), on 100,000 leads bought by one
// workspace and the real server (`leadmarket serve`, its own process):
//
//	go run ./bench/bulk [-leads 100000] [-rounds 3] [-fresh] [-database-url URL]
//
// It measures, side by side in the same run:
//
//  1. bulkUpdateLeadStatus on 10,000 ids over HTTP — membership check, the one bulk statement,
//     the audit entry with every old status, the events, the GraphQL request and response — beside
//     the same UPDATE of 10,000 other leads run raw through pgx, round after round, alternating
//     which goes first; targets: raw/HTTP ≥ 0.5 and HTTP under 1 s.
//  2. an export of the 100,000 leads end to end — the mutation, the River job writing the file
//     into PostgreSQL in chunks, polling until COMPLETED, the download read to its end — beside
//     COPY (SELECT …) TO STDOUT of the same rows and columns; targets: COPY/export ≥ 0.33 and the
//     server's peak RSS under 200 MB.
//
// The database lm_bench_bulk is seeded once (the demo seed, then one purchase of every lead by the
// first owner's workspace) and kept for the next run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/benchserver"
)

const (
	dbName = "lm_bench_bulk"
	secret = "bench-bulk-secret-0123456789abcdef0123"
	// batch is the ids of one bulk operation: the most the API takes.
	batch = 10_000
)

func main() { benchdb.Main("bench/bulk", run) }

// bench is one run: the database, the server and the buyer.
type bench struct {
	dbURL string
	srv   *benchserver.Server
	token string
	ws    string
}

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark database "+dbName+" on")
	leads := flag.Int("leads", 100_000, "leads bought by the workspace (at least 2 x rounds x 10,000)")
	rounds := flag.Int("rounds", 3, "measurements of each side")
	fresh := flag.Bool("fresh", false, "seed the database again even if it could be reused")
	flag.Parse()
	if *rounds < 1 || *leads < 2**rounds*batch {
		return fmt.Errorf("-leads must be at least 2 x -rounds x %d", batch)
	}
	ctx := context.Background()
	p, owner, token, err := benchdb.PrepareOwner(ctx, benchdb.Options{ServerURL: *serverURL, Name: dbName, Leads: *leads,
		Fresh: *fresh, Log: os.Stderr, LogPrefix: "bench/bulk: "}, secret)
	if err != nil {
		return err
	}
	b := &bench{dbURL: p.URL, token: token, ws: owner.WorkspaceID}
	fmt.Println(p.Report)
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := b.purchaseAll(ctx, conn, owner.UserID, *leads); err != nil {
		return fmt.Errorf("purchases: %w", err)
	}
	if b.srv, err = benchserver.Start(ctx, b.dbURL, secret); err != nil {
		return err
	}
	defer b.srv.Stop()
	fmt.Printf("bulk benchmark: %d leads bought by one workspace; server pid %d\n", *leads, b.srv.PID())

	if err := b.benchBulk(ctx, conn, *rounds); err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	if err := b.benchExport(ctx, conn, *rounds, *leads); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// purchaseAll has the workspace buy every lead (raw SQL: set-up, not what is measured) and puts
// them on its list, a third assigned to the owner and half tagged, as a worked list would be.
func (b *bench) purchaseAll(ctx context.Context, conn *pgx.Conn, buyer string, leads int) error {
	var have int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM workspace_leads WHERE workspace_id = $1", b.ws).Scan(&have); err != nil {
		return err
	}
	if have == leads {
		return nil
	}
	start := time.Now()
	_, err := conn.Exec(ctx, `
		INSERT INTO lead_purchases (cart_id, workspace_id, lead_id, buyer_user_id, credits_spent, created_at)
		SELECT gen_random_uuid(), $1, l.id, $2, l.price_credits, l.created_at + interval '1 hour' FROM leads AS l
		ON CONFLICT (workspace_id, lead_id) DO NOTHING`, b.ws, buyer)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `
		INSERT INTO workspace_leads (id, workspace_id, lead_id, credits_spent, purchased_at, updated_at, assignee_user_id, tags)
		SELECT p.id, p.workspace_id, p.lead_id, p.credits_spent, p.created_at, p.created_at,
			CASE WHEN abs(hashtext(p.id::text)) % 3 = 0 THEN $2::uuid END,
			CASE WHEN abs(hashtext(p.id::text)) % 2 = 0 THEN '{hot,q4}'::text[] ELSE '{}' END
		FROM lead_purchases AS p WHERE p.workspace_id = $1
		ON CONFLICT (id) DO NOTHING`, b.ws, buyer); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ANALYZE lead_purchases, workspace_leads"); err != nil {
		return err
	}
	fmt.Printf("set-up: %d purchases in %s\n", leads, time.Since(start).Round(time.Millisecond))
	return nil
}

// benchBulk times bulkUpdateLeadStatus NEW → CONTACTED on 10,000 ids over HTTP against the same
// UPDATE through pgx on 10,000 others, each round on fresh sets, alternating which runs first.
func (b *bench) benchBulk(ctx context.Context, conn *pgx.Conn, rounds int) error {
	if _, err := conn.Exec(ctx, "UPDATE workspace_leads SET status = 'NEW' WHERE workspace_id = $1 AND status <> 'NEW'", b.ws); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE workspace_leads"); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT id::text FROM workspace_leads WHERE workspace_id = $1 ORDER BY md5(id::text)", b.ws)
	if err != nil {
		return err
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	sets := slices.Collect(slices.Chunk(all, batch))
	// A warm-up of one lead: the caller's user lookup, pools, the statement's plan.
	if _, _, err := b.bulkHTTP(ctx, sets[len(sets)-1][:1]); err != nil {
		return err
	}
	var httpTimes, rawTimes []time.Duration
	statements := 0
	for r := 0; r < rounds; r++ {
		viaHTTP := func() error {
			d, n, err := b.bulkHTTP(ctx, sets[2*r])
			httpTimes, statements = append(httpTimes, d), n
			return err
		}
		raw := func() error {
			ids := make([]uuid.UUID, len(sets[2*r+1]))
			for i, s := range sets[2*r+1] {
				ids[i] = uuid.MustParse(s)
			}
			start := time.Now()
			tag, err := conn.Exec(ctx, `UPDATE workspace_leads SET status = 'CONTACTED', updated_at = now()
				WHERE workspace_id = $1 AND id = ANY($2) AND status = 'NEW'`, b.ws, ids)
			rawTimes = append(rawTimes, time.Since(start))
			if err == nil && tag.RowsAffected() != batch {
				err = fmt.Errorf("raw UPDATE changed %d rows, not %d", tag.RowsAffected(), batch)
			}
			return err
		}
		steps := []func() error{viaHTTP, raw}
		if r%2 == 1 {
			steps = []func() error{raw, viaHTTP}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
	}
	h, raw := median(httpTimes), median(rawTimes)
	fmt.Printf("bulkUpdateLeadStatus, %d ids over HTTP: median %s (runs %s), %d SQL statements per request\n",
		batch, ms(h), list(httpTimes), statements)
	fmt.Printf("baseline: the same UPDATE of %d ids raw through pgx: median %s (runs %s)\n", batch, ms(raw), list(rawTimes))
	ratio := raw.Seconds() / h.Seconds()
	fmt.Printf("ratio raw/HTTP: %.2f   (target >= 0.5: %s); HTTP under 1 s: %s\n", ratio, verdict(ratio >= 0.5), verdict(h < time.Second))
	return nil
}

// bulkHTTP sends bulkUpdateLeadStatus for ids and returns how long the request took (the body
// encoded beforehand) and the statements the server ran for it.
func (b *bench) bulkHTTP(ctx context.Context, ids []string) (time.Duration, int, error) {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: BulkUpdateLeadStatusInput!) { bulkUpdateLeadStatus(input: $in) { requested affected skipped { id reason } } }`,
		"variables": map[string]any{"in": map[string]any{"workspaceId": b.ws, "ids": ids, "status": "CONTACTED"}},
	})
	start := time.Now()
	var out struct {
		BulkUpdateLeadStatus struct{ Requested, Affected int }
	}
	hdr, err := b.graphql(ctx, body, &out)
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if r := out.BulkUpdateLeadStatus; r.Requested != len(ids) || r.Affected != len(ids) {
		return 0, 0, fmt.Errorf("bulkUpdateLeadStatus: %d requested, %d affected, not %d", r.Requested, r.Affected, len(ids))
	}
	n, _ := strconv.Atoi(hdr.Get("X-Sql-Statements"))
	return elapsed, n, nil
}

// benchExport times exports of the whole list end to end against COPY of the same rows.
func (b *bench) benchExport(ctx context.Context, conn *pgx.Conn, rounds, leads int) error {
	var exportTimes, copyTimes []time.Duration
	var exportBytes, copyBytes int64
	var peak benchserver.PeakRSS
	before := benchserver.RSS(b.srv.PID())
	stop := peak.Watch(b.srv.PID())
	for r := 0; r < rounds; r++ {
		viaExport := func() error {
			d, n, rows, err := b.export(ctx)
			exportTimes, exportBytes = append(exportTimes, d), n
			if err == nil && rows != leads {
				err = fmt.Errorf("the export holds %d rows, not %d", rows, leads)
			}
			return err
		}
		viaCopy := func() error {
			d, n, err := b.copy(ctx, conn)
			copyTimes, copyBytes = append(copyTimes, d), n
			return err
		}
		steps := []func() error{viaExport, viaCopy}
		if r%2 == 1 {
			steps = []func() error{viaCopy, viaExport}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				stop()
				return err
			}
		}
	}
	stop()
	e, c := median(exportTimes), median(copyTimes)
	fmt.Printf("export of %d rows, mutation to downloaded file: median %s (runs %s), %.1f MB\n",
		leads, ms(e), list(exportTimes), float64(exportBytes)/1e6)
	fmt.Printf("baseline: COPY (SELECT …) TO STDOUT of the same rows and columns: median %s (runs %s), %.1f MB\n",
		ms(c), list(copyTimes), float64(copyBytes)/1e6)
	ratio := c.Seconds() / e.Seconds()
	fmt.Printf("ratio COPY/export: %.2f   (target >= 0.33: %s); server RSS %.0f MB before, peak %.0f MB during the exports   (target < 200 MB: %s)\n",
		ratio, verdict(ratio >= 0.33), mib(before), mib(peak.Max()), verdict(peak.Max() < 200<<20))
	return nil
}

// export requests an export of the whole list, polls it until COMPLETED and downloads it; it
// returns the time from the request to the file's last byte, its size and its rows.
func (b *bench) export(ctx context.Context) (time.Duration, int64, int, error) {
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: ExportWorkspaceLeadsInput!) { exportWorkspaceLeads(input: $in) { id } }`,
		"variables": map[string]any{"in": map[string]any{"workspaceId": b.ws}},
	})
	start := time.Now()
	var created struct{ ExportWorkspaceLeads struct{ ID string } }
	if _, err := b.graphql(ctx, body, &created); err != nil {
		return 0, 0, 0, err
	}
	poll, _ := json.Marshal(map[string]any{
		"query":     `query($id: ID!) { export(id: $id) { status rowsDone errorCode downloadUrl } }`,
		"variables": map[string]any{"id": created.ExportWorkspaceLeads.ID},
	})
	var url string
	for url == "" {
		var got struct {
			Export struct {
				Status, ErrorCode string
				DownloadURL       *string
			}
		}
		if _, err := b.graphql(ctx, poll, &got); err != nil {
			return 0, 0, 0, err
		}
		switch got.Export.Status {
		case "COMPLETED":
			url = *got.Export.DownloadURL
		case "FAILED":
			return 0, 0, 0, fmt.Errorf("export FAILED: %s", got.Export.ErrorCode)
		}
		if time.Since(start) > 10*time.Minute {
			return 0, 0, 0, errors.New("export not COMPLETED after 10 minutes")
		}
		if url == "" {
			time.Sleep(20 * time.Millisecond)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL+url, nil)
	req.Header.Set("Authorization", "Bearer "+b.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, 0, 0, fmt.Errorf("download: HTTP %d", res.StatusCode)
	}
	var lc lineCounter
	n, err := io.Copy(&lc, res.Body)
	elapsed := time.Since(start)
	// The header line is not a row; every row is one line (the generated leads have no line breaks).
	return elapsed, n, lc.lines - 1, err
}

// copy runs the baseline: COPY of the export's rows and columns as CSV, read to the end.
func (b *bench) copy(ctx context.Context, conn *pgx.Conn) (time.Duration, int64, error) {
	ws, err := uuid.Parse(b.ws)
	if err != nil {
		return 0, 0, err
	}
	// COPY takes no parameters: the workspace id is a parsed UUID.
	sql := `COPY (SELECT l.id, l.first_name, l.last_name, l.email, l.phone_e164, l.linkedin_url, l.title, l.seniority,
			l.department, l.company_name, l.company_domain, l.company_size, l.industry, l.country, l.region, l.city,
			l.verification_status, l.price_credits, l.max_buyers, l.buyers_count, p.name AS partner, l.created_at,
			w.status, u.email AS assignee_email, array_to_string(w.tags, ', ') AS tags, w.purchased_at
		FROM workspace_leads AS w JOIN leads AS l ON l.id = w.lead_id JOIN partners AS p ON p.id = l.partner_id
		LEFT JOIN users AS u ON u.id = w.assignee_user_id
		WHERE w.workspace_id = '` + ws.String() + `' AND w.deleted_at IS NULL
		ORDER BY w.purchased_at DESC, w.id DESC) TO STDOUT WITH (FORMAT csv, HEADER)`
	var lc lineCounter
	start := time.Now()
	tag, err := conn.PgConn().CopyTo(ctx, &lc, sql)
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	_ = tag
	return elapsed, lc.bytes, nil
}

// graphql posts body and decodes the data into v, failing on any error; it returns the response
// headers.
func (b *bench) graphql(ctx context.Context, body []byte, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &out); err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.300s", res.StatusCode, raw)
	}
	if len(out.Errors) > 0 {
		return nil, fmt.Errorf("graphql: %s", out.Errors[0].Message)
	}
	return res.Header, json.Unmarshal(out.Data, v)
}

// lineCounter counts the bytes and lines written to it.
type lineCounter struct {
	bytes int64
	lines int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	c.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func list(ds []time.Duration) string {
	out := ""
	for i, d := range ds {
		if i > 0 {
			out += ", "
		}
		out += ms(d)
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
