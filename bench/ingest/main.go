// Command ingest is the lead-upload benchmark (make bench-ingest): it uploads a generated partner
// CSV file over HTTP multipart to the real server (`leadmarket serve`, built and run as its own
// process) and times upload to COMPLETED; in the same run its baseline is COPY of the same leads,
// already normalised and deduplicated, into a table shaped like leads with its unique index and
// hash-key trigger (and, as a second baseline, with every index leads has). It then uploads a large file and prints the server's peak resident memory
// during the upload and its job, read from /proc.
//
//	go run ./bench/ingest [-rows 200000] [-big-rows 1000000] [-database-url URL]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/bench/internal/benchserver"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
	"github.com/leadmarket/leadmarket/internal/seed"
)

const (
	dbName = "lm_bench_ingest"
	secret = "bench-ingest-secret-0123456789abcdef"
)

func main() { benchdb.Main("bench/ingest", run) }

// bench is one run's server, its partner and the files it made.
type bench struct {
	dbURL     string
	endpoint  string
	token     string
	partnerID string
	server    *benchserver.Server
	dir       string
}

func run() error {
	serverURL := flag.String("database-url", benchdb.DefaultServerURL(), "PostgreSQL server to create the benchmark database "+dbName+" on")
	rows := flag.Int("rows", 200_000, "rows of the measured file (10% duplicates within it, 5% of an earlier upload, 3% invalid)")
	bigRows := flag.Int("big-rows", 1_000_000, "rows of the file whose upload's peak memory is measured (0: skip)")
	keep := flag.Bool("keep", false, "keep the benchmark database at the end")
	flag.Parse()
	if *rows < 1000 {
		return errors.New("-rows must be at least 1000")
	}
	ctx := context.Background()
	b := &bench{}
	var err error
	if b.dir, err = os.MkdirTemp("", "bench-ingest-"); err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(b.dir) }()
	if b.dbURL, err = benchdb.Recreate(ctx, *serverURL, dbName); err != nil {
		return err
	}
	if !*keep {
		defer func() {
			if err := benchdb.Drop(context.WithoutCancel(ctx), *serverURL, dbName); err != nil {
				fmt.Fprintln(os.Stderr, "bench/ingest:", err)
			}
		}()
	}
	if err := b.seedPartner(ctx); err != nil {
		return err
	}
	if b.server, err = benchserver.Start(ctx, b.dbURL, secret, "MAX_UPLOAD_BYTES="+strconv.Itoa(1<<30)); err != nil {
		return err
	}
	defer b.server.Stop()
	b.endpoint = b.server.URL

	fmt.Printf("ingest benchmark: %d rows (10%% duplicates within the file, 5%% of an earlier upload, 3%% invalid)\n", *rows)
	// The earlier upload whose leads the measured file repeats in part.
	earlier := filepath.Join(b.dir, "earlier.csv")
	earlierRes, err := generate(earlier, ingesttest.Options{Rows: *rows / 10, Seed: 1})
	if err != nil {
		return err
	}
	if _, err := b.upload(ctx, earlier, nil); err != nil {
		return fmt.Errorf("earlier upload: %w", err)
	}
	file := filepath.Join(b.dir, "measured.csv")
	gen, err := generate(file, ingesttest.Options{Rows: *rows, Seed: 2, DuplicateFraction: 0.10, CopyFraction: 0.05,
		InvalidFraction: 0.03, Previous: earlierRes.Set})
	if err != nil {
		return err
	}
	known, err := b.knownHashes(ctx)
	if err != nil {
		return err
	}
	up, err := b.upload(ctx, file, nil)
	if err != nil {
		return err
	}
	invalid := 0
	for _, n := range gen.Invalid {
		invalid += n
	}
	fmt.Printf("upload:   %d rows in %s: %.0f rows/s (accepted %d, duplicates %d, invalid %d; the file has %d in-file duplicates, %d copies, %d invalid)\n",
		up.Rows, up.Elapsed.Round(time.Millisecond), rate(up.Rows, up.Elapsed), up.Accepted, up.Duplicates, up.Invalid,
		gen.Duplicates, gen.Copied, invalid)
	if up.Accepted+up.Duplicates+up.Invalid != up.Rows {
		return fmt.Errorf("accepted + duplicates + invalid = %d, not the %d rows", up.Accepted+up.Duplicates+up.Invalid, up.Rows)
	}

	// Two baselines: leads' shape with only its unique index and hash-key trigger (what the issue
	// names), and leads' shape with every one of its indexes (what inserting into leads itself
	// has to maintain: the browse indexes, the title trigram index).
	for _, shape := range []struct{ name, ddl string }{
		{"unique hash_key and trigger only", `CREATE TABLE bench_leads (LIKE leads INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED);
			CREATE UNIQUE INDEX bench_leads_hash_key_key ON bench_leads (hash_key)`},
		{"every index of leads", `CREATE TABLE bench_leads (LIKE leads INCLUDING ALL)`},
	} {
		seen := make(map[string]bool, len(known))
		for h := range known {
			seen[h] = true
		}
		copied, copyTime, err := b.baseline(ctx, file, seen, shape.ddl)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		ratio := copyTime.Seconds() / up.Elapsed.Seconds()
		fmt.Printf("baseline: COPY of the %d leads it accepted, normalised and deduplicated beforehand, into a leads-shaped table (%s): %s, %.0f rows/s of the file; ratio upload/COPY %.2f (target >= 0.33: %s)\n",
			copied, shape.name, copyTime.Round(time.Millisecond), rate(up.Rows, copyTime), ratio, verdict(ratio >= 0.33))
	}

	if *bigRows > 0 {
		big := filepath.Join(b.dir, "big.csv")
		if _, err := generate(big, ingesttest.Options{Rows: *bigRows, Seed: 3, DuplicateFraction: 0.10, InvalidFraction: 0.03}); err != nil {
			return err
		}
		info, _ := os.Stat(big)
		var peak benchserver.PeakRSS
		stop := peak.Watch(b.server.PID())
		before := benchserver.RSS(b.server.PID())
		res, err := b.upload(ctx, big, nil)
		stop()
		if err != nil {
			return fmt.Errorf("big upload: %w", err)
		}
		fmt.Printf("big upload: %d rows (%.0f MB) in %s: %.0f rows/s; server RSS %.0f MB before, peak %.0f MB during upload and job   (target < 300 MB: %s)\n",
			res.Rows, float64(info.Size())/1e6, res.Elapsed.Round(time.Millisecond), rate(res.Rows, res.Elapsed),
			mb(before), mb(peak.Max()), verdict(peak.Max() < 300<<20))
	}
	return nil
}

// seedPartner migrates and seeds the demo accounts (a handful of leads) and signs in as the first
// partner member.
func (b *bench) seedPartner(ctx context.Context) error {
	bdb, err := benchdb.OpenMigrated(ctx, b.dbURL, 4)
	if err != nil {
		return err
	}
	defer bdb.Close()
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: 10})
	if err != nil {
		return err
	}
	for _, u := range res.Users {
		if u.Role == seed.RolePartnerMember {
			b.partnerID = u.PartnerID
			b.token, err = auth.NewTokens(secret).Issue(u.Subject, u.Email, false, 24*time.Hour)
			return err
		}
	}
	return errors.New("the seed made no partner member")
}

// uploadResult is one upload as the partner saw it.
type uploadResult struct {
	ID                             string
	Rows, Accepted, Duplicates     int
	Invalid                        int
	Elapsed                        time.Duration
	Status, ErrorCode, ErrorDetail string
}

// upload sends path as a GraphQL multipart request (operations, map, the file part; its
// Content-Length known, so the server can stream it to a temporary file) and polls leadUpload
// until the upload is COMPLETED; Elapsed runs from the request's start.
func (b *bench) upload(ctx context.Context, path string, defaultPrice *int) (uploadResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return uploadResult{}, err
	}
	defer func() { _ = f.Close() }() // read only
	info, err := f.Stat()
	if err != nil {
		return uploadResult{}, err
	}
	input := map[string]any{"partnerId": b.partnerID, "file": nil}
	if defaultPrice != nil {
		input["defaultPriceCredits"] = *defaultPrice
	}
	ops, _ := json.Marshal(map[string]any{
		"query":     `mutation($input: UploadLeadsInput!) { uploadLeads(input: $input) { id status errorCode errorMessage } }`,
		"variables": map[string]any{"input": input},
	})
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0":["variables.input.file"]}`)
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", `form-data; name="0"; filename="`+filepath.Base(path)+`"`)
	hdr.Set("Content-Type", "text/csv")
	if _, err := mw.CreatePart(hdr); err != nil {
		return uploadResult{}, err
	}
	tail := "\r\n--" + mw.Boundary() + "--\r\n"
	body := io.MultiReader(bytes.NewReader(head.Bytes()), f, strings.NewReader(tail))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint+"/graphql", body)
	if err != nil {
		return uploadResult{}, err
	}
	req.ContentLength = int64(head.Len()) + info.Size() + int64(len(tail))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("GraphQL-Preflight", "1")
	req.Header.Set("Authorization", "Bearer "+b.token)
	start := time.Now()
	var started struct {
		UploadLeads struct{ ID, Status string }
	}
	if err := b.do(req, &started); err != nil {
		return uploadResult{}, err
	}
	for {
		var polled struct {
			LeadUpload struct {
				Status, ErrorCode, ErrorMessage        string
				RowsTotal, AcceptedCount, InvalidCount int
				DuplicateCount                         int
			}
		}
		q, _ := json.Marshal(map[string]any{"query": `query($id: ID!) { leadUpload(id: $id) { status rowsTotal acceptedCount
			duplicateCount invalidCount errorCode errorMessage } }`, "variables": map[string]any{"id": started.UploadLeads.ID}})
		preq, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint+"/graphql", bytes.NewReader(q))
		preq.Header.Set("Content-Type", "application/json")
		preq.Header.Set("Authorization", "Bearer "+b.token)
		if err := b.do(preq, &polled); err != nil {
			return uploadResult{}, err
		}
		u := polled.LeadUpload
		switch u.Status {
		case "COMPLETED":
			return uploadResult{ID: started.UploadLeads.ID, Rows: u.RowsTotal, Accepted: u.AcceptedCount,
				Duplicates: u.DuplicateCount, Invalid: u.InvalidCount, Elapsed: time.Since(start), Status: u.Status}, nil
		case "FAILED":
			return uploadResult{}, fmt.Errorf("upload %s FAILED: %s %s", started.UploadLeads.ID, u.ErrorCode, u.ErrorMessage)
		}
		if time.Since(start) > 30*time.Minute {
			return uploadResult{}, errors.New("upload not COMPLETED after 30 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends a GraphQL request and decodes its data into v, failing on any error in the response.
func (b *bench) do(req *http.Request, v any) error {
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &out); err != nil || res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, truncate(raw))
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("graphql: %s", out.Errors[0].Message)
	}
	return json.Unmarshal(out.Data, v)
}

// knownHashes are the hash keys of the leads there are before the measured upload.
func (b *bench) knownHashes(ctx context.Context) (map[string]bool, error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT hash_key FROM leads")
	if err != nil {
		return nil, err
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	known := make(map[string]bool, len(hashes))
	for _, h := range hashes {
		known[h] = true
	}
	return known, err
}

// baseline reads the file as the job does (ingest's reader and Validate), keeps the rows the
// upload accepted (valid, first of their hash in the file, not a lead before: known), and times
// only COPY of them into bench_leads, made by ddl in leads' shape, with leads' hash-key and
// title-id triggers.
func (b *bench) baseline(ctx context.Context, path string, known map[string]bool, ddl string) (int, time.Duration, error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }() // read only
	rd, err := ingest.NewReader(f, ingest.Options{})
	if err != nil {
		return 0, 0, err
	}
	var data [][]any
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		s, rej := ingest.Validate(rd.Header(), row, ingest.Defaults{PriceCredits: ingest.DefaultPriceCredits})
		if rej != nil || known[s.Normalized.HashKey] {
			continue
		}
		known[s.Normalized.HashKey] = true
		data = append(data, []any{b.partnerID, s.FirstName, s.LastName, s.Title, s.Seniority, s.Department, s.CompanyName,
			s.CompanyDomain, s.CompanySize, s.Industry, s.Country, s.Region, s.City, s.Email, s.Phone, s.LinkedinURL,
			s.Normalized.Email, s.Normalized.CompanyDomain, s.Normalized.PhoneE164, "", s.PriceCredits})
	}
	if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS bench_leads;"+ddl+`;
		CREATE TRIGGER bench_leads_hash_key BEFORE INSERT OR UPDATE OF email_normalized, company_domain_normalized, phone_e164, hash_key
			ON bench_leads FOR EACH ROW EXECUTE FUNCTION leads_set_hash_key();
		CREATE TRIGGER bench_leads_title_id BEFORE INSERT OR UPDATE OF title, title_id
			ON bench_leads FOR EACH ROW EXECUTE FUNCTION leads_set_title_id()`); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"bench_leads"}, []string{"partner_id", "first_name", "last_name", "title",
		"seniority", "department", "company_name", "company_domain", "company_size", "industry", "country", "region", "city",
		"email", "phone", "linkedin_url", "email_normalized", "company_domain_normalized", "phone_e164", "hash_key",
		"price_credits"}, pgx.CopyFromRows(data))
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	return int(n), elapsed, nil
}

// generate writes a generated CSV file to path.
func generate(path string, o ingesttest.Options) (ingesttest.Result, error) {
	f, err := os.Create(path)
	if err != nil {
		return ingesttest.Result{}, err
	}
	res, err := ingesttest.Generate(f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return res, err
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
