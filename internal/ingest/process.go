package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/riverqueue/river"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// ProcessMaxAttempts is how many runs an upload's job gets that end in an error before the upload
// is FAILED with CodeProcessingFailed. A run that stops after its work budget does not count.
const ProcessMaxAttempts = 10

// ProcessArgs is the job that works an upload's staged rows. Its input is in PostgreSQL (the
// upload and its staged rows), so any instance can run it, and run it again after a crash.
type ProcessArgs struct {
	UploadID string `json:"upload_id"`
}

// Kind names the job.
func (ProcessArgs) Kind() string { return "lead_upload.process" }

// InsertOpts make the job unique per upload: one job works an upload, however often it is
// enqueued.
func (ProcessArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: ProcessMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Worker runs ProcessArgs jobs.
type Worker struct {
	river.WorkerDefaults[ProcessArgs]
	svc *Service
}

// NewWorker returns the upload worker of svc.
func NewWorker(svc *Service) *Worker { return &Worker{svc: svc} }

// Timeout bounds one run: its work budget and a last batch. It stays well below the runner's
// rescue of stuck jobs (jobs.RunnerOptions.RescueStuckJobsAfter, 10 minutes).
func (w *Worker) Timeout(*river.Job[ProcessArgs]) time.Duration {
	return w.svc.opts.WorkBudget + 2*time.Minute
}

// Work works the upload's remaining batches for up to the work budget; with rows left it snoozes
// (without using an attempt) so that a fresh run goes on from the checkpoint. When its last
// attempt fails, the upload is FAILED.
func (w *Worker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	done, err := w.svc.Process(ctx, job.Args.UploadID)
	var cancel *river.JobCancelError
	switch {
	case err != nil && (job.Attempt >= job.MaxAttempts || errors.As(err, &cancel)):
		msg := fmt.Sprintf("processing stopped after %d failed attempts; %s", job.Attempt, failedAdvice)
		if ferr := w.svc.failProcessing(context.WithoutCancel(ctx), job.Args.UploadID, msg); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	case err != nil:
		return err
	case !done:
		return river.JobSnooze(0)
	}
	return nil
}

// Process works an upload's staged rows, batch after batch from its checkpoint, for up to
// Options.WorkBudget, and reports whether the upload is done (COMPLETED, or FAILED before). Each
// batch is one transaction: its rows validated, deduplicated and inserted (none in a dry run),
// its rejections written, the counts and the checkpoint advanced, its staged rows deleted and
// its progress published. So Process can stop at any point (an error, a crash, ctx cancelled)
// and be run again, by any process, without doing anything twice. The River job calls it; tests
// call it directly, on a database with a real pool (dbtest.FreshDB): it reads the next batch on a
// second connection while a batch holds the first, which dbtest.TxDB's single connection cannot
// give.
func (s *Service) Process(ctx context.Context, uploadID string) (bool, error) {
	start := time.Now()
	var ahead <-chan readAhead
	for {
		done, next, err := s.processBatch(ctx, uploadID, ahead)
		if err != nil || done {
			return done, err
		}
		ahead = next
		if s.afterBatch != nil {
			if err := s.afterBatch(uploadID); err != nil {
				return false, err
			}
		}
		if time.Since(start) >= s.opts.WorkBudget {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// job is what a batch reads of its upload, under the upload's row lock.
type job struct {
	ID                  string   `bun:"id"`
	PartnerID           string   `bun:"partner_id"`
	Status              string   `bun:"status"`
	DryRun              bool     `bun:"dry_run"`
	Header              []string `bun:"header,array"`
	Checkpoint          int      `bun:"checkpoint_row"`
	DefaultPriceCredits int      `bun:"default_price_credits"`
	DefaultCountry      string   `bun:"default_country"`
}

// lockJob locks the upload's row for the batch: a second run of the same upload (a rescued job
// whose first run still works) waits, then reads the checkpoint this batch moved.
func lockJob(ctx context.Context, tx bun.IDB, id string) (*job, error) {
	var j job
	err := tx.NewRaw(`SELECT id, partner_id, status, dry_run, header, checkpoint_row, default_price_credits, default_country
		FROM lead_uploads WHERE id = ? FOR UPDATE`, id).Scan(ctx, &j)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock upload %s: %w", id, err)
	}
	return &j, nil
}

// batchCounts are what one batch did.
type batchCounts struct {
	accepted, duplicates, invalid int
	byReason                      map[Reason]int
}

func (c *batchCounts) reject(r Reason) {
	if c.byReason == nil {
		c.byReason = map[Reason]int{}
	}
	c.byReason[r]++
	switch r {
	case ReasonDuplicateInFile, ReasonDuplicateSamePartner, ReasonDuplicateCrossPartner:
		c.duplicates++
	default:
		c.invalid++
	}
}

// batch is the staged rows of one batch, validated.
type batch struct {
	// after is the checkpoint the rows follow; last is the row number of the last of them.
	after, last int
	// n is how many rows there are: valid and rejected together.
	n     int
	valid []StagedRow
	rejs  []rejected
}

// readAhead is a batch read and validated ahead, while the batch before it was being written.
type readAhead struct {
	b   *batch
	err error
}

// processBatch works the next batch of the upload in one transaction, and completes the upload
// when no staged row is left. It reports whether the upload is done. ahead, when not nil,
// delivers the batch read ahead by the previous call: it is used when it follows the checkpoint
// found under the lock (else it is read again). While this batch is written, the one after it is
// read and validated on another connection, and delivered on next: the Go work of a batch
// overlaps the database work of the one before. Staged rows never change, so reading them ahead
// is safe; only the checkpoint says what is done.
func (s *Service) processBatch(ctx context.Context, uploadID string, ahead <-chan readAhead) (done bool, next <-chan readAhead, err error) {
	var counted *batchCounts // what the batch did, for the metrics once it has committed
	err = db.RunInConnTx(ctx, s.db, func(ctx context.Context, tx db.ConnTx) error {
		counted = nil
		j, err := lockJob(ctx, tx, uploadID)
		if err != nil {
			return err
		}
		if j == nil {
			return river.JobCancel(fmt.Errorf("upload %s does not exist", uploadID))
		}
		if j.Status == StatusCompleted || j.Status == StatusFailed {
			done = true
			return nil
		}
		if j.Status == StatusQueued {
			if _, err := tx.ExecContext(ctx, `UPDATE lead_uploads SET status = 'PROCESSING', started_at = now(), updated_at = now()
				WHERE id = ?`, uploadID); err != nil {
				return fmt.Errorf("start upload %s: %w", uploadID, err)
			}
		}
		h, err := NewHeader(j.Header)
		if err != nil {
			return fmt.Errorf("upload %s: header: %w", uploadID, err)
		}
		d := Defaults{PriceCredits: j.DefaultPriceCredits, Country: j.DefaultCountry}
		var b *batch
		if ahead != nil {
			if got := <-ahead; got.err == nil && got.b.after == j.Checkpoint {
				b = got.b
			}
		}
		if b == nil {
			if b, err = s.readBatch(ctx, txQuery(tx), uploadID, j.Checkpoint, h, d); err != nil {
				return err
			}
		}
		if b.n == s.opts.BatchRows {
			next = s.readAhead(ctx, uploadID, b.last, h, d)
		}
		if b.n > 0 {
			counts, err := s.work(ctx, tx, j, h, b)
			if err != nil {
				return err
			}
			if err := advance(ctx, tx, uploadID, b.last, b.n, counts); err != nil {
				return err
			}
			if !j.DryRun {
				counted = &counts
			}
		}
		if b.n < s.opts.BatchRows {
			// Every row was staged before the job existed: a short batch is the last one.
			done = true
			return s.complete(ctx, tx, j)
		}
		return publishProgress(ctx, tx, uploadID)
	})
	if err == nil && counted != nil {
		s.opts.Metrics.LeadsIngested(counted.accepted)
		for r, n := range counted.byReason {
			s.opts.Metrics.LeadsRejected(string(r), n)
		}
	}
	return done, next, err
}

// queryFunc runs a query written with $1, $2, … placeholders and hands its rows to scan.
type queryFunc func(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error

// txQuery runs queries in tx.
func txQuery(tx db.ConnTx) queryFunc {
	return func(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
		return tx.Pgx(ctx, func(conn *pgx.Conn) error {
			rows, err := conn.Query(ctx, query, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			if err := scan(rows); err != nil {
				return err
			}
			rows.Close()
			return rows.Err()
		})
	}
}

// readAhead reads and validates the batch after row `after` in the background, on a connection
// of the pool.
func (s *Service) readAhead(ctx context.Context, uploadID string, after int, h *Header, d Defaults) <-chan readAhead {
	ch := make(chan readAhead, 1)
	go func() {
		b, err := s.readBatch(ctx, func(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
			return db.QueryPrepared(ctx, s.db, query, args, scan)
		}, uploadID, after, h, d)
		ch <- readAhead{b: b, err: err}
	}()
	return ch
}

// readBatch reads up to Options.BatchRows staged rows after the checkpoint, in row order, and
// validates them.
func (s *Service) readBatch(ctx context.Context, query queryFunc, uploadID string, after int, h *Header, d Defaults) (*batch, error) {
	var rows []Row
	err := query(ctx, `SELECT row_number, fields, field_count, malformed FROM lead_upload_rows
		WHERE upload_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3`,
		[]any{uuid.MustParse(uploadID), after, s.opts.BatchRows}, func(res pgx.Rows) error {
			for res.Next() {
				var r Row
				if err := res.Scan(&r.Number, &r.Values, &r.FieldCount, &r.Malformed); err != nil {
					return err
				}
				rows = append(rows, r)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("staged rows of %s: %w", uploadID, err)
	}
	b := &batch{after: after, last: after, n: len(rows)}
	if len(rows) > 0 {
		b.last = rows[len(rows)-1].Number
	}
	b.valid, b.rejs = validateAll(h, rows, d)
	return b, nil
}

// rejected is a rejection on its way to lead_rejections.
type rejected struct {
	Rejection
	duplicateOf string
}

// work validates, deduplicates and (unless a dry run) inserts one batch of rows, writes its
// rejections and returns its counts. Dedup is by hash_key, in DESIGN §6's order: an earlier row
// of the file (lead_upload_keys, kept across batches), then the partner's own leads, then
// everyone else's.
func (s *Service) work(ctx context.Context, tx db.ConnTx, j *job, h *Header, b *batch) (batchCounts, error) {
	var counts batchCounts
	valid, rejs := b.valid, b.rejs

	// Within the file: the first row with a key is the file's; later ones are duplicates of it.
	earlier, err := claimKeys(ctx, tx, j.ID, valid)
	if err != nil {
		return counts, err
	}
	var firsts []StagedRow
	for _, v := range valid {
		key := v.Normalized.HashKey
		if first, ok := earlier[key]; ok {
			rejs = append(rejs, rejected{Rejection: Rejection{RowNumber: v.RowNumber, Reason: ReasonDuplicateInFile,
				Detail: fmt.Sprintf("the same lead as row %d of this file (same e-mail, company domain and phone once normalised)", first),
				Raw:    v.Raw}})
			continue
		}
		earlier[key] = v.RowNumber
		firsts = append(firsts, v)
	}

	// Against the leads there are: the partner's own, then everyone else's.
	if len(firsts) > 0 {
		if err := copyBatch(ctx, tx, firsts); err != nil {
			return counts, err
		}
		var owners map[string]lead.Existing
		if j.DryRun {
			owners, err = matchKeys(ctx, tx, batchKeysSQL)
			if err != nil {
				return counts, err
			}
		} else {
			inserted, ids, refused, err := insertLeads(ctx, tx, j.PartnerID, firsts)
			if err != nil {
				return counts, err
			}
			// The new leads' verification starts when this batch commits, and only then.
			if s.opts.EnqueueVerificationFunc != nil {
				if err := s.opts.EnqueueVerificationFunc(ctx, tx.Tx, ids); err != nil {
					return counts, fmt.Errorf("upload %s: enqueue verification: %w", j.ID, err)
				}
			}
			var lost []string
			for _, v := range firsts {
				if _, ok := refused[v.RowNumber]; !ok && !inserted[v.Normalized.HashKey] {
					lost = append(lost, v.Normalized.HashKey)
				}
			}
			owners = map[string]lead.Existing{}
			if len(lost) > 0 {
				// Keys a lead had before this batch, or got from an upload that won the race.
				if owners, err = matchKeys(ctx, tx, "SELECT unnest(?::text[])", pgdialect.Array(lost)); err != nil {
					return counts, err
				}
			}
			var kept []StagedRow
			for _, v := range firsts {
				if r, ok := refused[v.RowNumber]; ok {
					rejs = append(rejs, rejected{Rejection: r})
					continue
				}
				if inserted[v.Normalized.HashKey] {
					counts.accepted++
					continue
				}
				if _, ok := owners[v.Normalized.HashKey]; !ok {
					return counts, fmt.Errorf("upload %s: row %d was neither inserted nor matched", j.ID, v.RowNumber)
				}
				kept = append(kept, v)
			}
			firsts = kept
		}
		for _, v := range firsts {
			owner, ok := owners[v.Normalized.HashKey]
			switch {
			case !ok:
				counts.accepted++ // a dry run's row that would be inserted
			case owner.PartnerID == j.PartnerID:
				rejs = append(rejs, rejected{Rejection: Rejection{RowNumber: v.RowNumber, Reason: ReasonDuplicateSamePartner,
					Detail: "you supplied this lead before (same e-mail, company domain and phone once normalised)", Raw: v.Raw},
					duplicateOf: owner.ID})
			default:
				rejs = append(rejs, rejected{Rejection: Rejection{RowNumber: v.RowNumber, Reason: ReasonDuplicateCrossPartner,
					Detail: "another partner supplies this lead already (same e-mail, company domain and phone once normalised)",
					Raw:    v.Raw}})
			}
		}
	}
	for _, r := range rejs {
		counts.reject(r.Reason)
	}
	return counts, writeRejections(ctx, tx, j.ID, h, rejs)
}

// validateChunk is the fewest rows validateAll gives a goroutine of its own.
const validateChunk = 500

// validateAll runs Validate on every row, on all cores (phone parsing makes it the costliest Go
// work of a batch), and returns the valid rows and the rejections, each in row order.
func validateAll(h *Header, rows []Row, d Defaults) ([]StagedRow, []rejected) {
	type result struct {
		staged StagedRow
		rej    *Rejection
	}
	results := make([]result, len(rows))
	workers := min(runtime.GOMAXPROCS(0), (len(rows)+validateChunk-1)/validateChunk)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(rows); i += workers {
				results[i].staged, results[i].rej = Validate(h, rows[i], d)
			}
		})
	}
	wg.Wait()
	var valid []StagedRow
	var rejs []rejected
	for _, r := range results {
		if r.rej != nil {
			rejs = append(rejs, rejected{Rejection: *r.rej})
			continue
		}
		valid = append(valid, r.staged)
	}
	return valid, rejs
}

// claimKeys records the batch's keys as the file's (each with its first row) and returns those
// an earlier batch had recorded already, with their first row. The keys are new to the file
// exactly when they are not returned.
func claimKeys(ctx context.Context, tx db.ConnTx, uploadID string, valid []StagedRow) (map[string]int, error) {
	earlier := make(map[string]int)
	if len(valid) == 0 {
		return earlier, nil
	}
	keys := make([]string, 0, len(valid))
	rowNumbers := make([]int32, 0, len(valid))
	seen := make(map[string]bool, len(valid))
	for _, v := range valid {
		if k := v.Normalized.HashKey; !seen[k] {
			seen[k] = true
			keys = append(keys, k)
			rowNumbers = append(rowNumbers, int32(v.RowNumber))
		}
	}
	id := uuid.MustParse(uploadID)
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		res, err := conn.Query(ctx, `INSERT INTO lead_upload_keys (upload_id, hash_key, row_number)
			SELECT $1, k, r FROM unnest($2::text[], $3::int[]) AS b(k, r)
			ON CONFLICT (upload_id, hash_key) DO NOTHING RETURNING hash_key`,
			pgx.QueryExecModeCacheStatement, id, keys, rowNumbers)
		if err != nil {
			return err
		}
		claimed := make(map[string]bool, len(keys))
		for res.Next() {
			var k string
			if err := res.Scan(&k); err != nil {
				return err
			}
			claimed[k] = true
		}
		if res.Close(); res.Err() != nil {
			return res.Err()
		}
		if len(claimed) == len(keys) {
			return nil
		}
		// Keys an earlier batch claimed: their rows repeat that batch's, which the rejection names.
		var taken []string
		for _, k := range keys {
			if !claimed[k] {
				taken = append(taken, k)
			}
		}
		res, err = conn.Query(ctx, `SELECT hash_key, row_number FROM lead_upload_keys WHERE upload_id = $1 AND hash_key = ANY($2)`,
			pgx.QueryExecModeCacheStatement, id, taken)
		if err != nil {
			return err
		}
		defer res.Close()
		for res.Next() {
			var k string
			var n int
			if err := res.Scan(&k, &n); err != nil {
				return err
			}
			earlier[k] = n
		}
		return res.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim keys of %s: %w", uploadID, err)
	}
	return earlier, nil
}

// batchTable is the session's temporary table of the batch rows to check against the leads:
// emptied at every commit, never logged.
const batchTable = "pg_temp.lead_upload_batch"

// batchColumns are batchTable's columns, in the order copyBatch writes them.
var batchColumns = []string{"row_number", "hash_key", "first_name", "last_name", "title", "seniority", "department",
	"company_name", "company_domain", "company_size", "industry", "country", "region", "city", "email", "phone",
	"linkedin_url", "email_normalized", "company_domain_normalized", "phone_e164", "price_credits"}

// batchKeysSQL selects the keys of the rows in batchTable.
const batchKeysSQL = "SELECT b.hash_key FROM " + batchTable + " AS b"

// batchLeadsSQL selects batchTable's rows as lead.NewColumns for lead.InsertNew, the partner id
// its placeholder.
const batchLeadsSQL = `SELECT ?::uuid, b.first_name, b.last_name, b.title, b.seniority, b.department, b.company_name,
	b.company_domain, b.company_size, b.industry, b.country, b.region, b.city, b.email, b.phone, b.linkedin_url,
	b.email_normalized, b.company_domain_normalized, b.phone_e164, b.price_credits FROM ` + batchTable + ` AS b`

// copyBatch puts rows into batchTable (made on the session's first batch).
func copyBatch(ctx context.Context, tx db.ConnTx, rows []StagedRow) error {
	if _, err := tx.ExecContext(ctx, `CREATE TEMPORARY TABLE IF NOT EXISTS lead_upload_batch (
			row_number integer NOT NULL, hash_key text NOT NULL, first_name text NOT NULL, last_name text NOT NULL,
			title text NOT NULL, seniority text NOT NULL, department text NOT NULL, company_name text NOT NULL,
			company_domain text NOT NULL, company_size text NOT NULL, industry text NOT NULL, country text NOT NULL,
			region text NOT NULL, city text NOT NULL, email text NOT NULL, phone text NOT NULL, linkedin_url text NOT NULL,
			email_normalized text NOT NULL, company_domain_normalized text NOT NULL, phone_e164 text NOT NULL,
			price_credits integer NOT NULL
		) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("batch table: %w", err)
	}
	i := 0
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"pg_temp", "lead_upload_batch"}, batchColumns,
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(rows) {
					return nil, nil
				}
				r := rows[i]
				i++
				return []any{r.RowNumber, r.Normalized.HashKey, r.FirstName, r.LastName, r.Title, r.Seniority, r.Department,
					r.CompanyName, r.CompanyDomain, r.CompanySize, r.Industry, r.Country, r.Region, r.City, r.Email, r.Phone,
					r.LinkedinURL, r.Normalized.Email, r.Normalized.CompanyDomain, r.Normalized.PhoneE164, r.PriceCredits}, nil
			}))
		return err
	})
	if err != nil {
		return fmt.Errorf("copy batch: %w", err)
	}
	return nil
}

// matchKeys returns the leads of the keys keysQuery selects, by key.
func matchKeys(ctx context.Context, tx bun.IDB, keysQuery string, args ...any) (map[string]lead.Existing, error) {
	found, err := lead.MatchHashKeys(ctx, tx, keysQuery, args...)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]lead.Existing, len(found))
	for _, e := range found {
		byKey[e.HashKey] = e
	}
	return byKey, nil
}

// insertLeads inserts batchTable's rows as the partner's leads, in hash_key order (so that
// uploads racing with the same leads cannot deadlock), and returns the keys it inserted. A row
// the leads table's CHECK constraints refuse does not fail the batch: the rows are then inserted
// one by one, and those refused come back by row number with the reason.
func insertLeads(ctx context.Context, tx db.ConnTx, partnerID string, rows []StagedRow) (map[string]bool, []string, map[int]Rejection, error) {
	inserted := make(map[string]bool, len(rows))
	refused := map[int]Rejection{}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT leads"); err != nil {
		return nil, nil, nil, fmt.Errorf("insert leads: %w", err)
	}
	ins, err := lead.InsertNew(ctx, tx, batchLeadsSQL+" ORDER BY b.hash_key", partnerID)
	if db.IsCheckViolation(err) {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT leads"); err != nil {
			return nil, nil, nil, fmt.Errorf("insert leads: %w", err)
		}
		ins = nil
		// Every row's title first, in one sorted statement, as InsertNew adds them (the rollback
		// took its additions back): the rows one by one must not add theirs in hash_key order.
		titles := make([]string, len(rows))
		for i, r := range rows {
			titles[i] = r.Title
		}
		if err := lead.AddTitles(ctx, tx, titles); err != nil {
			return nil, nil, nil, err
		}
		byKey := append([]StagedRow(nil), rows...)
		sort.Slice(byKey, func(a, b int) bool { return byKey[a].Normalized.HashKey < byKey[b].Normalized.HashKey })
		for _, r := range byKey {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT lead_row"); err != nil {
				return nil, nil, nil, fmt.Errorf("insert leads: %w", err)
			}
			one, err := lead.InsertNew(ctx, tx, batchLeadsSQL+" WHERE b.row_number = ?", partnerID, r.RowNumber)
			if db.IsCheckViolation(err) {
				field, detail := refusal(err)
				refused[r.RowNumber] = Rejection{RowNumber: r.RowNumber, Reason: ReasonInvalidValue, Field: field, Detail: detail,
					Raw: r.Raw}
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT lead_row"); err != nil {
					return nil, nil, nil, fmt.Errorf("insert leads: %w", err)
				}
				continue
			}
			if err != nil {
				return nil, nil, nil, err
			}
			ins = append(ins, one...)
		}
	} else if err != nil {
		return nil, nil, nil, err
	}
	ids := make([]string, len(ins))
	for i, l := range ins {
		inserted[l.HashKey] = true
		ids[i] = l.ID
	}
	return inserted, ids, refused, nil
}

// refusal says, for the partner, which value of a row the leads table's CHECK constraints
// refused: the column a constraint is on, by its name (leads_email_normalized_check is on email).
func refusal(err error) (field, detail string) {
	var pgErr *pgconn.PgError
	constraint := ""
	if errors.As(err, &pgErr) {
		constraint = pgErr.ConstraintName
	}
	for _, c := range []Column{ColumnEmail, ColumnPhone, ColumnCountry, ColumnPriceCredits, ColumnSeniority, ColumnCompanySize} {
		if strings.Contains(constraint, c.String()) {
			return c.String(), fmt.Sprintf("the marketplace cannot store this %s (%s)", c, constraint)
		}
	}
	return "", fmt.Sprintf("the marketplace cannot store this row (%s)", constraint)
}

// writeRejections copies the batch's rejections into lead_rejections, raw values keyed by the
// file's columns.
func writeRejections(ctx context.Context, tx db.ConnTx, uploadID string, h *Header, rejs []rejected) error {
	if len(rejs) == 0 {
		return nil
	}
	sort.Slice(rejs, func(a, b int) bool { return rejs[a].RowNumber < rejs[b].RowNumber })
	id := uuid.MustParse(uploadID)
	i := 0
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"lead_rejections"},
			[]string{"upload_id", "row_number", "reason", "field", "detail", "raw", "duplicate_of_lead_id"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(rejs) {
					return nil, nil
				}
				r := rejs[i]
				i++
				raw, err := json.Marshal(h.RawMap(r.Raw))
				if err != nil {
					return nil, err
				}
				var dup pgtype.UUID
				if r.duplicateOf != "" {
					u, err := uuid.Parse(r.duplicateOf)
					if err != nil {
						return nil, err
					}
					dup = pgtype.UUID{Bytes: u, Valid: true}
				}
				return []any{id, r.RowNumber, string(r.Reason), r.Field, r.Detail, raw, dup}, nil
			}))
		return err
	})
	if err != nil {
		return fmt.Errorf("write rejections of %s: %w", uploadID, err)
	}
	return nil
}

// advance moves the checkpoint past the batch, adds its counts and deletes its staged rows.
func advance(ctx context.Context, tx bun.IDB, uploadID string, last, n int, c batchCounts) error {
	byReason := map[string]int{}
	for r, k := range c.byReason {
		byReason[string(r)] = k
	}
	counts, err := json.Marshal(byReason)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE lead_uploads SET checkpoint_row = ?,
			rows_processed = rows_processed + ?, accepted_count = accepted_count + ?,
			duplicate_count = duplicate_count + ?, invalid_count = invalid_count + ?,
			rejection_counts = (SELECT coalesce(jsonb_object_agg(key, total), '{}') FROM (
				SELECT key, sum(value::bigint) AS total
				FROM (SELECT * FROM jsonb_each_text(rejection_counts) UNION ALL SELECT * FROM jsonb_each_text(?::jsonb)) AS c
				GROUP BY key) AS t),
			updated_at = now()
		WHERE id = ?;
		DELETE FROM lead_upload_rows WHERE upload_id = ? AND row_number <= ?`,
		last, n, c.accepted, c.duplicates, c.invalid, string(counts), uploadID, uploadID, last); err != nil {
		return fmt.Errorf("advance upload %s: %w", uploadID, err)
	}
	return nil
}

// complete ends the upload COMPLETED: its remaining staging (keys) goes, its audit entry and
// final progress are written.
func (s *Service) complete(ctx context.Context, tx bun.IDB, j *job) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM lead_upload_rows WHERE upload_id = ?;
		DELETE FROM lead_upload_keys WHERE upload_id = ?;
		UPDATE lead_uploads SET status = 'COMPLETED', completed_at = now(), updated_at = now() WHERE id = ?`,
		j.ID, j.ID, j.ID); err != nil {
		return fmt.Errorf("complete upload %s: %w", j.ID, err)
	}
	return finalEntry(ctx, tx, j.ID, "lead_upload.completed", audit.SeverityInfo)
}

// finalEntry writes the audit entry of an upload's end (action) with its counts, and publishes
// its final progress.
func finalEntry(ctx context.Context, tx bun.IDB, id, action, severity string) error {
	u, err := getUpload(ctx, tx, id)
	if err != nil {
		return err
	}
	if u == nil {
		return fmt.Errorf("upload %s: not found", id)
	}
	var counts struct {
		RejectionCounts map[string]int `bun:"rejection_counts,type:jsonb"`
	}
	if err := tx.NewRaw("SELECT rejection_counts FROM lead_uploads WHERE id = ?", id).Scan(ctx, &counts); err != nil {
		return fmt.Errorf("upload %s: %w", id, err)
	}
	newValues := map[string]any{
		"status": u.Status, "rowsTotal": u.RowsTotal, "rowsProcessed": u.RowsProcessed, "acceptedCount": u.AcceptedCount,
		"duplicateCount": u.DuplicateCount, "invalidCount": u.InvalidCount, "rejectionsByReason": counts.RejectionCounts,
	}
	if u.ErrorCode != nil {
		newValues["errorCode"] = *u.ErrorCode
	}
	if err := audit.Record(ctx, tx, audit.Entry{
		ActorType: audit.ActorSystem, Action: action, ResourceType: "lead_upload", ResourceID: id, Severity: severity,
		New: newValues, Metadata: map[string]any{"partnerId": u.PartnerID, "dryRun": u.DryRun},
	}); err != nil {
		return err
	}
	return events.Publish(ctx, tx, ProgressEvent, progressOf(*u))
}

// failedAdvice ends the message of an upload FAILED with CodeProcessingFailed.
const failedAdvice = "the rows counted so far stand. Upload the file again to process the rest: " +
	"rows accepted already are then reported as duplicates."

// AbandonAfter is how long an unfinished upload without a live job waits before the hourly
// clean-up fails it: well past the time its job takes to be rescued and retried.
const AbandonAfter = 15 * time.Minute

// FailAbandonedUploads fails the uploads that are not finished but have no job left to finish
// them (a process that died in its job's last attempt leaves it PROCESSING, and River's rescuer
// discards the job, attempts used up): FAILED with CodeProcessingFailed, they are in front of
// their partner, who uploads the file again. It returns how many it failed; an hourly clean-up
// runs it.
func (s *Service) FailAbandonedUploads(ctx context.Context) (int64, error) {
	var ids []string
	if err := s.db.NewRaw(`SELECT u.id FROM lead_uploads AS u
		WHERE u.status IN ('QUEUED', 'PROCESSING') AND u.updated_at < ?
			AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.id = u.job_id
				AND j.state IN ('available', 'pending', 'running', 'retryable', 'scheduled'))`,
		time.Now().Add(-AbandonAfter)).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("abandoned uploads: %w", err)
	}
	for _, id := range ids {
		if err := s.failProcessing(ctx, id, "processing ended unfinished; "+failedAdvice); err != nil {
			return 0, err
		}
	}
	return int64(len(ids)), nil
}

// failProcessing ends an upload whose job gave up FAILED with CodeProcessingFailed and msg: what
// its batches committed stands (their leads and rejections), the rest of its staging goes.
func (s *Service) failProcessing(ctx context.Context, uploadID, msg string) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		j, err := lockJob(ctx, tx, uploadID)
		if err != nil || j == nil || j.Status == StatusCompleted || j.Status == StatusFailed {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM lead_upload_rows WHERE upload_id = ?;
			DELETE FROM lead_upload_keys WHERE upload_id = ?;
			UPDATE lead_uploads SET status = 'FAILED', error_code = ?, error_message = ?, completed_at = now(), updated_at = now()
			WHERE id = ?`, uploadID, uploadID, string(CodeProcessingFailed), msg, uploadID); err != nil {
			return fmt.Errorf("fail upload %s: %w", uploadID, err)
		}
		s.opts.Logger.ErrorContext(ctx, "lead upload failed", "upload", uploadID, "reason", msg)
		return finalEntry(ctx, tx, uploadID, "lead_upload.failed", audit.SeverityWarning)
	})
}
