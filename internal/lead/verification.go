package lead

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Verification statuses (DESIGN §6): PENDING until verification gives a verdict.
const (
	StatusPending  = "PENDING"
	StatusValid    = "VALID"
	StatusInvalid  = "INVALID"
	StatusCatchAll = "CATCH_ALL"
	StatusRisky    = "RISKY"
	StatusUnknown  = "UNKNOWN"
)

// VerificationStatuses are the statuses in the order the API lists them.
var VerificationStatuses = []string{StatusPending, StatusValid, StatusInvalid, StatusCatchAll, StatusRisky, StatusUnknown}

// A lead's open verification is its bookkeeping in the leads table: a lead is open while it is
// PENDING or a re-verification was asked for (verification_due_at set), and it may be taken when
// nobody holds it and no backoff runs (verification_due_at unset or past). A job takes it under a
// lease: its token and a time until which nobody else may; the verdict is written only under
// that lease, so a job that lost it (it ran past the lease, or its process died and another
// took over) cannot overwrite the work of the one that holds it now.
const (
	// openVerification is the condition (alias l) of a lead with an open verification; the
	// leads_verification_due_idx index is partial on exactly it.
	openVerification = "(l.verification_status = 'PENDING' OR l.verification_due_at IS NOT NULL)"
	// takeable is the condition (alias l) of an open verification nobody holds and no backoff delays.
	takeable = "(l.verification_due_at IS NULL OR l.verification_due_at <= now())"
)

// ToVerify is a lead taken for verification: what a provider is asked about and what the verdict
// is written with.
type ToVerify struct {
	ID        string `bun:"id"`
	PartnerID string `bun:"partner_id"`
	// Email is the normalised address, the one the lead is sold and deduplicated by.
	Email string `bun:"email_normalized"`
	// Status is the lead's verification status when it was taken.
	Status string `bun:"verification_status"`
	// Attempts counts the failed attempts of its open verification so far.
	Attempts int `bun:"verification_attempts"`
}

// interval renders d as a PostgreSQL interval literal.
func interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }

// TakeForVerification takes those of ids with an open verification that nobody else holds (or
// that token holds already: a job run again keeps its leads) under token's lease for lease, and
// returns them. Leads that are not open, or held by another token, are left out. The rows are
// locked in id order, as a purchase locks them, so the two cannot deadlock.
func TakeForVerification(ctx context.Context, db bun.IDB, ids []string, token string, lease time.Duration) ([]ToVerify, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var ls []ToVerify
	if err := db.NewRaw(`WITH t AS (
			SELECT l.id FROM leads AS l
			WHERE l.id = ANY(?::uuid[]) AND `+openVerification+`
				AND (l.verification_lease = ?::uuid OR `+takeable+`)
			ORDER BY l.id FOR UPDATE)
		UPDATE leads AS l SET verification_lease = ?::uuid, verification_due_at = now() + ?::interval
		FROM t WHERE l.id = t.id
		RETURNING l.id, l.partner_id, l.email_normalized, l.verification_status, l.verification_attempts`,
		pgdialect.Array(ids), token, token, interval(lease)).Scan(ctx, &ls); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("take leads for verification: %w", err)
	}
	return ls, nil
}

// TakeDue takes up to limit leads whose open verification is due (new PENDING leads first, then
// by when they fell due) under token's lease for lease, and returns their ids. Leads another
// transaction has locked are skipped, so concurrent sweeps take different leads.
func TakeDue(ctx context.Context, db bun.IDB, limit int, token string, lease time.Duration) ([]string, error) {
	var ids []string
	if err := db.NewRaw(`WITH t AS (
			SELECT l.id FROM leads AS l
			WHERE `+openVerification+` AND `+takeable+`
			ORDER BY l.verification_due_at NULLS FIRST, l.id LIMIT ? FOR UPDATE SKIP LOCKED)
		UPDATE leads AS l SET verification_lease = ?::uuid, verification_due_at = now() + ?::interval
		FROM t WHERE l.id = t.id RETURNING l.id`,
		limit, token, interval(lease)).Scan(ctx, &ids); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("take due leads: %w", err)
	}
	return ids, nil
}

// Reopen opens a new verification of each of ids, whatever its status (an admin's
// re-verification), with no failed attempts, and takes it under token's lease for lease. The
// leads keep their status until the new verdict. It returns the ids of the leads that exist.
func Reopen(ctx context.Context, db bun.IDB, ids []string, token string, lease time.Duration) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []string
	if err := db.NewRaw(`WITH t AS (SELECT l.id FROM leads AS l WHERE l.id = ANY(?::uuid[]) ORDER BY l.id FOR UPDATE)
		UPDATE leads AS l SET verification_attempts = 0, verification_lease = ?::uuid,
			verification_due_at = now() + ?::interval, updated_at = now()
		FROM t WHERE l.id = t.id RETURNING l.id`,
		pgdialect.Array(ids), token, interval(lease)).Scan(ctx, &out); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reopen verification: %w", err)
	}
	return out, nil
}

// Verdict is what writing a verdict found.
type Verdict struct {
	// Applied is false when the lead was not held under the lease the verdict came with (or does
	// not exist): nothing was written.
	Applied bool
	// PartnerID is the lead's partner, BuyersCount how many workspaces bought it.
	PartnerID   string `bun:"partner_id"`
	BuyersCount int    `bun:"buyers_count"`
	// Previous is the status the lead had before.
	Previous string `bun:"previous"`
}

// SetVerdict gives lead id the verification status (not PENDING) and closes its open
// verification, if token holds it; an empty token writes it whoever holds it (a bounce report's
// fresh check), and a job holding it then finds its lease gone. It locks the lead's row until tx
// ends: call it first in the transaction of what the verdict changes (refunds).
func SetVerdict(ctx context.Context, tx bun.IDB, id, token, status string) (Verdict, error) {
	if status == StatusPending || status == "" {
		return Verdict{}, fmt.Errorf("verdict of lead %s: %q is not a verdict", id, status)
	}
	held, args := "", []any{id}
	if token != "" {
		held, args = " AND l.verification_lease = ?::uuid", append(args, token)
	}
	var v Verdict
	err := tx.NewRaw(`WITH old AS (SELECT l.id, l.verification_status FROM leads AS l
			WHERE l.id = ?::uuid`+held+` FOR UPDATE)
		UPDATE leads AS l SET verification_status = ?, verified_at = now(), verification_due_at = NULL,
			verification_lease = NULL, verification_attempts = 0, updated_at = now()
		FROM old WHERE l.id = old.id
		RETURNING l.partner_id, l.buyers_count, old.verification_status AS previous`,
		append(args, status)...).Scan(ctx, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return Verdict{}, nil
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("verdict of lead %s: %w", id, err)
	}
	v.Applied = true
	return v, nil
}

// FailedAttempt is what recording a failed attempt found.
type FailedAttempt struct {
	// Applied is false when token did not hold the lead: nothing was written.
	Applied bool
	// Status is the lead's status after it: UNKNOWN when the last attempt of a PENDING lead failed.
	Status    string `bun:"verification_status"`
	PartnerID string `bun:"partner_id"`
	// Closed is true when the verification is over (the last attempt failed).
	Closed bool `bun:"closed"`
}

// FailAttempt records that attempt number attempt of lead id's open verification failed, if
// token holds it. Below maxAttempts the verification stays open and may be taken again after
// retryIn; at maxAttempts it is closed: a PENDING lead becomes UNKNOWN (a verdict, stamped
// verified_at), a lead re-verified keeps the status it had.
func FailAttempt(ctx context.Context, tx bun.IDB, id, token string, attempt, maxAttempts int, retryIn time.Duration) (FailedAttempt, error) {
	closed := attempt >= maxAttempts
	var f FailedAttempt
	err := tx.NewRaw(`UPDATE leads AS l SET verification_attempts = ?,
			verification_status = CASE WHEN ? AND l.verification_status = 'PENDING' THEN 'UNKNOWN' ELSE l.verification_status END,
			verified_at = CASE WHEN ? AND l.verification_status = 'PENDING' THEN now() ELSE l.verified_at END,
			verification_due_at = CASE WHEN ? THEN NULL ELSE now() + ?::interval END,
			verification_lease = NULL, updated_at = now()
		WHERE l.id = ?::uuid AND l.verification_lease = ?::uuid
		RETURNING l.verification_status, l.partner_id, ? AS closed`,
		attempt, closed, closed, closed, interval(retryIn), id, token, closed).Scan(ctx, &f)
	if errors.Is(err, sql.ErrNoRows) {
		return FailedAttempt{}, nil
	}
	if err != nil {
		return FailedAttempt{}, fmt.Errorf("failed attempt of lead %s: %w", id, err)
	}
	f.Applied = true
	return f, nil
}

// Release lets go of token's lease on those of ids it still holds, so that they may be taken at
// once (a job that stops before it verified them). It returns how many it released.
func Release(ctx context.Context, db bun.IDB, ids []string, token string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := db.ExecContext(ctx, `UPDATE leads AS l SET verification_lease = NULL,
			verification_due_at = CASE WHEN l.verification_status = 'PENDING' THEN NULL ELSE now() END
		WHERE l.id = ANY(?::uuid[]) AND l.verification_lease = ?::uuid`, pgdialect.Array(ids), token)
	if err != nil {
		return 0, fmt.Errorf("release leads: %w", err)
	}
	return res.RowsAffected()
}

// ForCheck returns lead id as a provider is asked about it, without taking it (a bounce report's
// fresh check); nil when it does not exist.
func ForCheck(ctx context.Context, db bun.IDB, id string) (*ToVerify, error) {
	var l ToVerify
	err := db.NewRaw(`SELECT l.id, l.partner_id, l.email_normalized, l.verification_status, l.verification_attempts
		FROM leads AS l WHERE l.id = ?::uuid`, id).Scan(ctx, &l)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lead %s: %w", id, err)
	}
	return &l, nil
}

// StatusCount is how many leads have a verification status.
type StatusCount struct {
	Status string `bun:"verification_status"`
	Count  int64  `bun:"count"`
}

// CountByVerificationStatus counts every lead by verification status, each of
// VerificationStatuses listed in its order (zero included).
func CountByVerificationStatus(ctx context.Context, db bun.IDB) ([]StatusCount, error) {
	var rows []StatusCount
	if err := db.NewRaw(`SELECT l.verification_status, count(*) AS count FROM leads AS l GROUP BY l.verification_status`).
		Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("count leads by verification status: %w", err)
	}
	by := make(map[string]int64, len(rows))
	for _, r := range rows {
		by[r.Status] = r.Count
	}
	out := make([]StatusCount, len(VerificationStatuses))
	for i, s := range VerificationStatuses {
		out[i] = StatusCount{Status: s, Count: by[s]}
	}
	return out, nil
}

// CountVerifiedSince counts the leads whose last verdict came after since.
func CountVerifiedSince(ctx context.Context, db bun.IDB, since time.Time) (int64, error) {
	var n int64
	if err := db.NewRaw(`SELECT count(*) FROM leads AS l WHERE l.verified_at IS NOT NULL AND l.verified_at > ?`, since).
		Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count verified leads: %w", err)
	}
	return n, nil
}
