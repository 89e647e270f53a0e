// Package idempotency gives money-moving mutations Stripe's idempotency semantics: the same key
// with the same input returns the first result without doing the work again; with other input it
// is refused; while the first request runs, the second waits for it (or gives up with
// IDEMPOTENCY_IN_PROGRESS); keys are kept 24 hours.
//
// The key row is inserted in the transaction of the work it guards. A second request with the
// same key blocks on that row's unique index until the first commits (and then replays its stored
// result) or rolls back (and then does the work itself). A request refused by a business rule
// rolls back, so its key stays free for a corrected retry.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// Retention is how long a key is remembered.
const Retention = 24 * time.Hour

// MaxKeyLength is the longest key accepted.
const MaxKeyLength = 255

// Key identifies one guarded request: the caller's key for one operation and its input.
type Key struct {
	UserID    string
	Key       string
	Operation string
	// Request is the operation's input; its canonical JSON is fingerprinted.
	Request any
	// Required refuses an empty Key with INVALID_INPUT; otherwise an empty Key runs the work
	// unguarded (operations whose key is optional).
	Required bool
}

// WaitTimeout bounds how long a request waits for another request holding the same key.
var WaitTimeout = 10 * time.Second

// StaleAfter is how long a committed claim without a response (a two-step operation such as a
// checkout, whose process died between its steps) blocks its key; after that the key is taken
// over as if new, instead of answering IDEMPOTENCY_IN_PROGRESS until it expires.
const StaleAfter = 5 * time.Minute

// Do runs fn once for k, in tx: it claims k, then replays the stored result of an earlier
// request with k (replayed true) or runs fn and stores its result, all in tx. The key is taken
// exactly when the work commits: a request refused by fn, or failing, rolls tx back and leaves the
// key free for a corrected retry. Errors: fn's, and those of Begin.
func Do[T any](ctx context.Context, tx bun.Tx, k Key, fn func() (T, error)) (res T, replayed bool, err error) {
	if k.Key == "" && !k.Required {
		res, err = fn()
		return res, false, err
	}
	stored, err := Begin(ctx, tx, k)
	if err != nil {
		return res, false, err
	}
	if stored != nil {
		if err := json.Unmarshal(stored, &res); err != nil {
			return res, false, fmt.Errorf("idempotency: decode stored response: %w", err)
		}
		return res, true, nil
	}
	if res, err = fn(); err != nil {
		return res, false, err
	}
	return res, false, Complete(ctx, tx, k, res)
}

// RecordTimeout bounds DoTwoStep's last transaction, which runs even if the client has gone away.
const RecordTimeout = 10 * time.Second

// DoTwoStep is Do for an operation whose work ends outside the transaction that claims its key (a
// checkout, whose last step calls Stripe): in one transaction it claims k (or replays its stored
// result) and runs prepare; after that commits, it runs finish outside any transaction; then, in
// a second transaction that runs even if ctx is cancelled (what finish did outside cannot be
// undone), record and the stored result. If finish or the second transaction fails, the key is
// released, so that a retry does the work again instead of waiting for this one. A claim whose
// process died between the steps is taken over after StaleAfter (Begin).
func DoTwoStep[P, T any](ctx context.Context, db bun.IDB, k Key, prepare func(ctx context.Context, tx bun.Tx) (P, error),
	finish func(ctx context.Context, p P) (T, error), record func(ctx context.Context, tx bun.Tx, res T) error,
) (res T, replayed bool, err error) {
	guarded := k.Key != "" || k.Required
	var prepared P
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if guarded {
			stored, err := Begin(ctx, tx, k)
			if err != nil {
				return err
			}
			if stored != nil {
				replayed = true
				return json.Unmarshal(stored, &res)
			}
		}
		var err error
		prepared, err = prepare(ctx, tx)
		return err
	})
	if err != nil || replayed {
		return res, replayed, err
	}
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecordTimeout)
	defer cancel()
	release := func(cause error) error {
		if guarded {
			if err := Release(recordCtx, db, k); err != nil {
				return fmt.Errorf("%w (and releasing its idempotency key: %v)", cause, err)
			}
		}
		return cause
	}
	if res, err = finish(ctx, prepared); err != nil {
		return res, false, release(err)
	}
	err = db.RunInTx(recordCtx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := record(ctx, tx, res); err != nil {
			return err
		}
		if guarded {
			return Complete(ctx, tx, k, res)
		}
		return nil
	})
	if err != nil {
		return res, false, release(err)
	}
	return res, false, nil
}

// Begin claims k inside tx. It returns (nil, nil) when the caller should do the work (and then
// call Complete in the same tx), or the stored response of the earlier request with this key.
// Errors: INVALID_INPUT for an empty or over-long key, IDEMPOTENCY_KEY_REUSED when the key was
// used with other input, IDEMPOTENCY_IN_PROGRESS when the first request holds it past WaitTimeout.
func Begin(ctx context.Context, tx bun.Tx, k Key) (json.RawMessage, error) {
	k.Key = strings.TrimSpace(k.Key)
	if k.Key == "" || len(k.Key) > MaxKeyLength {
		return nil, apperr.New(apperr.InvalidInput, "idempotencyKey must have 1 to %d characters", MaxKeyLength)
	}
	hash, err := fingerprint(k)
	if err != nil {
		return nil, err
	}
	// The wait for the key is bounded by a lock timeout local to this transaction; the setting it
	// had is restored right after the claim (PostgreSQL evaluates the select list in order).
	var prevLockTimeout, set string
	if err := tx.QueryRowContext(ctx, "SELECT current_setting('lock_timeout'), set_config('lock_timeout', ?, true)",
		fmt.Sprintf("%dms", WaitTimeout.Milliseconds())).Scan(&prevLockTimeout, &set); err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	// A key older than Retention is forgotten, and a claim left without a response for StaleAfter
	// abandoned: the upsert takes either over as if it were new.
	res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (user_id, key, operation, request_hash)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, key) DO UPDATE SET operation = EXCLUDED.operation, request_hash = EXCLUDED.request_hash,
			response = NULL, created_at = now(), completed_at = NULL
		WHERE idempotency_keys.created_at < now() - ?::interval
			OR (idempotency_keys.response IS NULL AND idempotency_keys.created_at < now() - ?::interval)`,
		k.UserID, k.Key, k.Operation, hash, fmt.Sprintf("%d seconds", int(Retention.Seconds())),
		fmt.Sprintf("%d seconds", int(StaleAfter.Seconds())))
	if db.IsLockTimeout(err) {
		return nil, apperr.New(apperr.IdempotencyInProgress, "a request with this idempotencyKey is still running; retry shortly")
	}
	if err != nil {
		return nil, fmt.Errorf("idempotency: claim key: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT set_config('lock_timeout', ?, true)", prevLockTimeout); err != nil {
		return nil, fmt.Errorf("idempotency: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil, nil
	}
	var prev struct {
		Operation   string          `bun:"operation"`
		RequestHash string          `bun:"request_hash"`
		Response    json.RawMessage `bun:"response"`
	}
	if err := tx.NewRaw("SELECT operation, request_hash, response FROM idempotency_keys WHERE user_id = ? AND key = ?",
		k.UserID, k.Key).Scan(ctx, &prev); err != nil {
		return nil, fmt.Errorf("idempotency: read key: %w", err)
	}
	if prev.Operation != k.Operation || prev.RequestHash != hash {
		return nil, apperr.New(apperr.IdempotencyKeyReused,
			"this idempotencyKey was used with different input; use a new key for a new request")
	}
	if len(prev.Response) == 0 || string(prev.Response) == "null" {
		return nil, apperr.New(apperr.IdempotencyInProgress, "a request with this idempotencyKey is still running; retry shortly")
	}
	return prev.Response, nil
}

// Complete stores response as the result of k; call it last in the transaction Begin claimed k in.
func Complete(ctx context.Context, tx bun.Tx, k Key, response any) error {
	b, err := json.Marshal(response)
	if err != nil {
		return fmt.Errorf("idempotency: encode response: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE idempotency_keys SET response = ?, completed_at = now()
		WHERE user_id = ? AND key = ?`, string(b), k.UserID, strings.TrimSpace(k.Key))
	if err != nil {
		return fmt.Errorf("idempotency: store response: %w", err)
	}
	return nil
}

// Release forgets k, so the next request with it does the work again: for a two-step operation
// whose second step failed after the first committed the claim.
func Release(ctx context.Context, db bun.IDB, k Key) error {
	if _, err := db.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND response IS NULL",
		k.UserID, strings.TrimSpace(k.Key)); err != nil {
		return fmt.Errorf("idempotency: release key: %w", err)
	}
	return nil
}

// Purge deletes keys older than Retention and returns how many.
func Purge(ctx context.Context, db bun.IDB) (int64, error) {
	res, err := db.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE created_at < now() - ?::interval",
		fmt.Sprintf("%d seconds", int(Retention.Seconds())))
	if err != nil {
		return 0, fmt.Errorf("idempotency: purge: %w", err)
	}
	return res.RowsAffected()
}

func fingerprint(k Key) (string, error) {
	b, err := json.Marshal(k.Request) // encoding/json sorts map keys, so equal input hashes equally
	if err != nil {
		return "", fmt.Errorf("idempotency: encode request: %w", err)
	}
	h := sha256.Sum256(append([]byte(k.Operation+"\x00"), b...))
	return hex.EncodeToString(h[:]), nil
}
