// Package events publishes domain events through PostgreSQL NOTIFY, so they are delivered when
// (and only if) the transaction that publishes them commits, to every instance listening.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// Channel is the NOTIFY channel every event goes through.
const Channel = "leadmarket_events"

// Event is one domain event. Payloads stay small (ids and figures): NOTIFY carries at most
// 8000 bytes.
type Event struct {
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurredAt"`
	Payload    json.RawMessage `json:"payload"`
}

// Publish queues an event of type typ on db; call it with the transaction of the change.
func Publish(ctx context.Context, db bun.IDB, typ string, payload any) error {
	return PublishAll(ctx, db, typ, []any{payload})
}

// PublishAll queues one event of type typ per payload on db, in one statement whatever their
// number: for a change too large for one notification (the ids of a bulk operation on thousands of
// leads, sent in parts). Call it with the transaction of the change.
func PublishAll(ctx context.Context, db bun.IDB, typ string, payloads []any) error {
	if len(payloads) == 0 {
		return nil
	}
	now := time.Now().UTC()
	msgs := make([]string, len(payloads))
	for i, payload := range payloads {
		p, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("publish %s: %w", typ, err)
		}
		b, err := json.Marshal(Event{Type: typ, OccurredAt: now, Payload: p})
		if err != nil {
			return fmt.Errorf("publish %s: %w", typ, err)
		}
		if len(b) > 7900 {
			return fmt.Errorf("publish %s: payload of %d bytes is over NOTIFY's limit", typ, len(b))
		}
		msgs[i] = string(b)
	}
	if _, err := db.ExecContext(ctx, "SELECT pg_notify(?, m) FROM unnest(?::text[]) AS m", Channel, pgdialect.Array(msgs)); err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return nil
}

// ListenReady connects to databaseURL, LISTENs on Channel, calls ready (when not nil) once the
// LISTEN is in place, so that nothing published after it is missed, and then calls fn for each
// event until ctx ends. It returns ctx's error, or the connection's.
func ListenReady(ctx context.Context, databaseURL string, ready func(), fn func(Event)) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var ev Event
		if json.Unmarshal([]byte(n.Payload), &ev) == nil {
			fn(ev)
		}
	}
}
