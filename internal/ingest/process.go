package ingest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
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
		if ferr := w.svc.failProcessing(context.WithoutCancel(ctx), job.Args.UploadID, job.Attempt); ferr != nil {
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
// call it directly.
func (s *Service) Process(ctx context.Context, uploadID string) (bool, error) {
	start := time.Now()
	for {
		done, err := s.processBatch(ctx, uploadID)
		if err != nil || done {
			return done, err
		}
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
	UploadedBy          *string  `bun:"uploaded_by"`
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
	err := tx.NewRaw(`SELECT id, partner_id, uploaded_by, status, dry_run, header, checkpoint_row, default_price_credits,
			default_country
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

// processBatch works the next batch of the upload in one transaction, and completes the upload
// when no staged row is left. It reports whether the upload is done.
func (s *Service) processBatch(ctx context.Context, uploadID string) (bool, error) {
	done := false
	err := db.RunInConnTx(ctx, s.db, func(ctx context.Context, tx db.ConnTx) error {
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
		rows, err := stagedRows(ctx, tx, uploadID, j.Checkpoint, s.opts.BatchRows)
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			counts, err := s.work(ctx, tx, j, h, rows)
			if err != nil {
				return err
			}
			if err := advance(ctx, tx, uploadID, rows[len(rows)-1].Number, len(rows), counts); err != nil {
				return err
			}
		}
		if len(rows) < s.opts.BatchRows {
			// Every row was staged before the job existed: a short batch is the last one.
			done = true
			return complete(ctx, tx, j)
		}
		return publishProgress(ctx, tx, uploadID)
	})
	return done, err
}

// stagedRows reads up to limit staged rows after the checkpoint, in row order.
func stagedRows(ctx context.Context, tx db.ConnTx, uploadID string, checkpoint, limit int) ([]Row, error) {
	var rows []Row
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		res, err := conn.Query(ctx, `SELECT row_number, fields, field_count, malformed FROM lead_upload_rows
			WHERE upload_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3`,
			pgx.QueryExecModeCacheStatement, uuid.MustParse(uploadID), checkpoint, limit)
		if err != nil {
			return err
		}
		defer res.Close()
		for res.Next() {
			var r Row
			if err := res.Scan(&r.Number, &r.Values, &r.FieldCount, &r.Malformed); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		return res.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("staged rows of %s: %w", uploadID, err)
	}
	return rows, nil
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
func (s *Service) work(ctx context.Context, tx db.ConnTx, j *job, h *Header, rows []Row) (batchCounts, error) {
	var counts batchCounts
	d := Defaults{PriceCredits: j.DefaultPriceCredits, Country: j.DefaultCountry}
	var valid []StagedRow
	var rejs []rejected
	for _, row := range rows {
		staged, rej := Validate(h, row, d)
		if rej != nil {
			rejs = append(rejs, rejected{Rejection: *rej})
			continue
		}
		valid = append(valid, staged)
	}

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
			inserted, refused, err := insertLeads(ctx, tx, j.PartnerID, firsts)
			if err != nil {
				return counts, err
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
	// The SELECT sees the table as it was before the statement, not the rows its INSERT adds:
	// it returns just the keys of earlier batches.
	err := tx.Pgx(ctx, func(conn *pgx.Conn) error {
		res, err := conn.Query(ctx, `WITH batch AS (SELECT * FROM unnest($2::text[], $3::int[]) AS b(hash_key, row_number)),
			claimed AS (INSERT INTO lead_upload_keys (upload_id, hash_key, row_number)
				SELECT $1, hash_key, row_number FROM batch ON CONFLICT (upload_id, hash_key) DO NOTHING)
			SELECT k.hash_key, k.row_number FROM lead_upload_keys AS k JOIN batch USING (hash_key) WHERE k.upload_id = $1`,
			pgx.QueryExecModeCacheStatement, uuid.MustParse(uploadID), keys, rowNumbers)
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
func insertLeads(ctx context.Context, tx db.ConnTx, partnerID string, rows []StagedRow) (map[string]bool, map[int]Rejection, error) {
	inserted := make(map[string]bool, len(rows))
	refused := map[int]Rejection{}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT leads"); err != nil {
		return nil, nil, fmt.Errorf("insert leads: %w", err)
	}
	ins, err := lead.InsertNew(ctx, tx, batchLeadsSQL+" ORDER BY b.hash_key", partnerID)
	if db.IsCheckViolation(err) {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT leads"); err != nil {
			return nil, nil, fmt.Errorf("insert leads: %w", err)
		}
		ins = nil
		byKey := append([]StagedRow(nil), rows...)
		sort.Slice(byKey, func(a, b int) bool { return byKey[a].Normalized.HashKey < byKey[b].Normalized.HashKey })
		for _, r := range byKey {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT lead_row"); err != nil {
				return nil, nil, fmt.Errorf("insert leads: %w", err)
			}
			one, err := lead.InsertNew(ctx, tx, batchLeadsSQL+" WHERE b.row_number = ?", partnerID, r.RowNumber)
			if db.IsCheckViolation(err) {
				field, detail := refusal(err)
				refused[r.RowNumber] = Rejection{RowNumber: r.RowNumber, Reason: ReasonInvalidValue, Field: field, Detail: detail,
					Raw: r.Raw}
				if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT lead_row"); err != nil {
					return nil, nil, fmt.Errorf("insert leads: %w", err)
				}
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			ins = append(ins, one...)
		}
	} else if err != nil {
		return nil, nil, err
	}
	for _, l := range ins {
		inserted[l.HashKey] = true
	}
	return inserted, refused, nil
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
func complete(ctx context.Context, tx bun.IDB, j *job) error {
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

// failProcessing ends an upload whose job gave up FAILED with CodeProcessingFailed: what its
// batches committed stands (their leads and rejections), the rest of its staging goes.
func (s *Service) failProcessing(ctx context.Context, uploadID string, attempts int) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		j, err := lockJob(ctx, tx, uploadID)
		if err != nil || j == nil || j.Status == StatusCompleted || j.Status == StatusFailed {
			return err
		}
		msg := fmt.Sprintf("processing stopped after %d failed attempts; the rows counted so far stand. "+
			"Upload the file again to process the rest: rows accepted already are then reported as duplicates.", attempts)
		if _, err := tx.ExecContext(ctx, `DELETE FROM lead_upload_rows WHERE upload_id = ?;
			DELETE FROM lead_upload_keys WHERE upload_id = ?;
			UPDATE lead_uploads SET status = 'FAILED', error_code = ?, error_message = ?, completed_at = now(), updated_at = now()
			WHERE id = ?`, uploadID, uploadID, string(CodeProcessingFailed), msg, uploadID); err != nil {
			return fmt.Errorf("fail upload %s: %w", uploadID, err)
		}
		s.opts.Logger.ErrorContext(ctx, "lead upload failed", "upload", uploadID, "attempts", attempts)
		return finalEntry(ctx, tx, uploadID, "lead_upload.failed", audit.SeverityWarning)
	})
}
