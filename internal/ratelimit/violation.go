package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
)

// A caller refused AbuseThreshold times within AbuseWindow raises one rate_limit_abuse security
// event (risk HIGH); further refusals raise no other until a window passes without one.
const (
	AbuseThreshold = 10
	AbuseWindow    = 10 * time.Minute
)

// AbuseEventKind is the kind of the security event a caller's repeated refusals raise.
const AbuseEventKind = "rate_limit_abuse"

// violationLockSeed salts the advisory lock under which one caller's refusals are checked for
// abuse, so two of them at the same moment cannot both raise the event.
const violationLockSeed = 7_246_118_003

// A refused caller costs nothing to send more requests, so recording refusals must not become
// the way to exhaust the database pool: at most maxRecording refusals are written at once per
// process, a refusal waits at most recordWait for its turn, and then it is only logged (Record
// returns ErrRecorderBusy). That is thousands of refusals a second per instance before any is
// dropped.
const (
	maxRecording = 4
	recordWait   = time.Second
)

// ErrRecorderBusy is returned by Record when a refusal could not be written in time.
var ErrRecorderBusy = errors.New("ratelimit: too many refusals being recorded")

// Violation is one operation refused by a rate limit.
type Violation struct {
	// CallerKey is the key the limit was charged to (CallerKey).
	CallerKey string
	// UserID is the signed-in caller, "" when anonymous.
	UserID string
	// IP is the client's address.
	IP   string
	Tier Tier
	// Operation is the operation's name (or its type when anonymous).
	Operation string
	// Limit is the tier's Rate at the time.
	Limit int
}

// Violations records refusals in rate_limit_violations and raises the abuse security events.
type Violations struct {
	db    *bun.DB
	slots chan struct{}
}

// NewViolations returns a Violations writing to db.
func NewViolations(db *bun.DB) *Violations {
	return &Violations{db: db, slots: make(chan struct{}, maxRecording)}
}

type violationRow struct {
	bun.BaseModel `bun:"table:rate_limit_violations"`

	ID        int64   `bun:"id,pk,autoincrement"`
	CallerKey string  `bun:"caller_key"`
	UserID    *string `bun:"user_id"`
	IP        string  `bun:"ip"`
	Tier      string  `bun:"tier"`
	Operation string  `bun:"operation"`
	RateLimit int     `bun:"rate_limit"`
}

// Record stores v and, when its caller has at least AbuseThreshold refusals within AbuseWindow
// and none of them raised an alert yet, writes a rate_limit_abuse security event in the same
// transaction (with the request info of ctx); it reports whether it did. A refusal recorded
// while another of the same caller is being checked skips the check: the next refusal makes it.
// Errors: ErrRecorderBusy, the database's.
func (s *Violations) Record(ctx context.Context, v Violation) (alerted bool, err error) {
	wait := time.NewTimer(recordWait)
	defer wait.Stop()
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-wait.C:
		return false, ErrRecorderBusy
	case <-ctx.Done():
		return false, ctx.Err()
	}
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		alerted = false
		row := violationRow{CallerKey: v.CallerKey, IP: v.IP, Tier: string(v.Tier), Operation: v.Operation, RateLimit: v.Limit}
		if v.UserID != "" {
			row.UserID = &v.UserID
		}
		if _, err := tx.NewInsert().Model(&row).Returning("id").Exec(ctx); err != nil {
			return err
		}
		var locked bool
		if err := tx.NewRaw("SELECT pg_try_advisory_xact_lock(hashtextextended(?, ?))", v.CallerKey, violationLockSeed).
			Scan(ctx, &locked); err != nil || !locked {
			return err
		}
		var recent struct {
			Refusals int  `bun:"refusals"`
			Alerted  bool `bun:"alerted"`
		}
		if err := tx.NewRaw(`SELECT count(*) AS refusals, coalesce(bool_or(raised_alert), false) AS alerted
			FROM rate_limit_violations WHERE caller_key = ? AND occurred_at > now() - make_interval(secs => ?)`,
			v.CallerKey, AbuseWindow.Seconds()).Scan(ctx, &recent); err != nil {
			return err
		}
		if recent.Refusals < AbuseThreshold || recent.Alerted {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "UPDATE rate_limit_violations SET raised_alert = true WHERE id = ?", row.ID); err != nil {
			return err
		}
		alerted = true
		return audit.RecordSecurity(ctx, tx, audit.SecurityEvent{
			Kind: AbuseEventKind, Risk: audit.RiskHigh, UserID: v.UserID,
			Details: map[string]any{
				"callerKey": v.CallerKey, "tier": string(v.Tier), "refusals": recent.Refusals,
				"windowSeconds": int(AbuseWindow.Seconds()), "limit": v.Limit,
			},
		})
	})
	if err != nil {
		return false, fmt.Errorf("record rate-limit violation: %w", err)
	}
	return alerted, nil
}

// ViolationRetention is how long refusals are kept for operators to investigate; the abuse
// check needs only AbuseWindow of them.
const ViolationRetention = 30 * 24 * time.Hour

// PurgeViolations deletes the refusals recorded before before and returns how many.
func PurgeViolations(ctx context.Context, db bun.IDB, before time.Time) (int64, error) {
	res, err := db.NewDelete().TableExpr("rate_limit_violations").Where("occurred_at < ?", before).Exec(ctx)
	if err != nil {
		return 0, fmt.Errorf("purge rate-limit violations: %w", err)
	}
	return res.RowsAffected()
}
