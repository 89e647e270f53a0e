package live_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// lastQuery is a bun hook keeping the last statement's text.
type lastQuery struct {
	mu  sync.Mutex
	sql string
}

func (h *lastQuery) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (h *lastQuery) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sql = e.Query
}

// A new audit entry's notification carries its occurred_at beside its id, and the load by id
// bounded by it reads the one partition of audit_logs that holds the entry (of the fifteen the
// migrations keep), and finds it; a bound that misses it finds nothing, so the bound is applied.
func TestAuditEntryNotificationCarriesItsPartitionTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fresh := dbtest.FreshDB(t)
	got := make(chan events.Event, 4)
	ready := make(chan struct{})
	go func() {
		_ = events.ListenReady(ctx, dbtest.URL(dbtest.NameOf(ctx, fresh)), func() { close(ready) }, func(ev events.Event) {
			if ev.Type == audit.AddedEvent {
				got <- ev
			}
		})
	}()
	<-ready
	require.NoError(t, audit.Record(ctx, fresh, audit.Entry{ActorType: audit.ActorSystem, Action: "test.row_times", ResourceType: "test"}))

	var ev events.Event
	select {
	case ev = <-got:
	case <-ctx.Done():
		t.Fatal("no audit.added notification")
	}
	var ref struct {
		ID string    `json:"id"`
		At time.Time `json:"at"`
	}
	require.NoError(t, json.Unmarshal(ev.Payload, &ref))
	var occurred time.Time
	require.NoError(t, fresh.NewRaw("SELECT occurred_at FROM audit_logs WHERE id = ?", ref.ID).Scan(ctx, &occurred))
	require.True(t, occurred.Equal(ref.At), "the notification's at %s is the row's occurred_at %s", ref.At, occurred)

	hook := &lastQuery{}
	hooked := fresh.WithQueryHook(hook)
	logs, err := audit.LogsByIDs(ctx, hooked, []string{ref.ID}, ref.At.Add(-time.Millisecond), ref.At.Add(time.Millisecond))
	require.NoError(t, err)
	require.Len(t, logs, 1)
	require.Equal(t, ref.ID, logs[0].ID)

	var partitions int
	require.NoError(t, fresh.NewRaw("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass").Scan(ctx, &partitions))
	require.Greater(t, partitions, 2)
	hook.mu.Lock()
	bounded := hook.sql
	hook.mu.Unlock()
	var plan []string
	require.NoError(t, fresh.NewRaw("EXPLAIN "+bounded).Scan(ctx, &plan))
	scanned := 0
	for _, line := range plan {
		if strings.Contains(line, " on audit_logs_") {
			scanned++
		}
	}
	require.Equal(t, 1, scanned, "the bounded load plans one partition: %s", strings.Join(plan, "\n"))

	logs, err = audit.LogsByIDs(ctx, fresh, []string{ref.ID}, ref.At.Add(-2*time.Hour), ref.At.Add(-time.Hour))
	require.NoError(t, err)
	require.Empty(t, logs)
	logs, err = audit.LogsByIDs(ctx, fresh, []string{ref.ID}, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, logs, 1, "no bound: every partition")
}
