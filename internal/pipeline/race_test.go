package pipeline_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

// race runs a and b at the same moment and fails on an error of either (a deadlock would be one).
func race(t *testing.T, a, b func() (pipeline.BulkResult, error)) (ra, rb pipeline.BulkResult) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	var ea, eb error
	wg.Go(func() { <-start; ra, ea = a() })
	wg.Go(func() { <-start; rb, eb = b() })
	close(start)
	wg.Wait()
	require.NoError(t, ea)
	require.NoError(t, eb)
	return ra, rb
}

// Two bulk operations racing on overlapping leads leave every lead as one order of the two would:
// the leads they share all saw the same one first, and each result agrees with that order.
func TestRacingBulkOperationsSerialize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	orders := map[string]int{}
	for round := 0; round < 6; round++ {
		tm := newTeam(t, db, 900)
		first, shared, last := tm.leads[:300], tm.leads[300:600], tm.leads[600:]

		// NEW → CONTACTED on the first 600 against CONTACTED → QUALIFIED on the last 600: the shared
		// leads end QUALIFIED if the first ran first, CONTACTED (the second skipping them, its own
		// leads being NEW) otherwise.
		a, b := race(t,
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkUpdateStatus(ctx, caller(tm.member), tm.in(ids(tm.leads[:600]...)), "CONTACTED")
			},
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkUpdateStatus(ctx, caller(tm.member), tm.in(ids(tm.leads[300:]...)), "QUALIFIED")
			})
		require.Equal(t, 600, a.Affected, "every lead of the first was NEW")
		got := rows(t, db, tm.leads)
		want := "CONTACTED" // b, then a
		if b.Affected > 0 {
			want = "QUALIFIED" // a, then b
			require.Equal(t, 300, b.Affected, "b changed exactly the shared leads")
		}
		orders["status:"+want]++
		if b.Affected > 0 {
			// b's audit entry saw the shared leads as a left them.
			var old string
			require.NoError(t, db.NewRaw(`SELECT old_values::text FROM audit_logs WHERE workspace_id = ?
				AND action = 'workspace_leads.status_updated' AND new_values->>'status' = 'QUALIFIED'`, tm.ws).Scan(ctx, &old))
			var byID map[string]map[string]string
			require.NoError(t, json.Unmarshal([]byte(old), &byID))
			require.Len(t, byID, 300)
			for _, id := range shared {
				require.Equal(t, "CONTACTED", byID[id]["status"])
			}
		}
		for _, id := range shared {
			require.Equal(t, want, got[id].Status, "every shared lead saw the same order")
		}
		for _, id := range first {
			require.Equal(t, "CONTACTED", got[id].Status)
		}
		for _, id := range last {
			require.Equal(t, "NEW", got[id].Status)
		}

		// Two taggings: the shared leads end with both tags, whichever ran first (none is lost).
		e, f := race(t,
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkAddTags(ctx, caller(tm.member), tm.in(ids(tm.leads[:600]...)), []string{"e"})
			},
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkAddTags(ctx, caller(tm.admin), tm.in(ids(tm.leads[300:]...)), []string{"f"})
			})
		require.Equal(t, 600, e.Affected)
		require.Equal(t, 600, f.Affected)
		got = rows(t, db, tm.leads)
		for _, id := range shared {
			require.Equal(t, []string{"e", "f"}, got[id].Tags, "no tag lost")
		}
		set(t, db, tm.leads, "tags = '{}'")

		// Tagging the first 600 against deleting the last 600: the shared leads are tagged and
		// deleted, or deleted and skipped by the tagging.
		c, d := race(t,
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkAddTags(ctx, caller(tm.member), tm.in(ids(tm.leads[:600]...)), []string{"raced"})
			},
			func() (pipeline.BulkResult, error) {
				return tm.svc.BulkDelete(ctx, caller(tm.owner), tm.in(ids(tm.leads[300:]...)))
			})
		require.Equal(t, 600, d.Affected)
		got = rows(t, db, tm.leads)
		tagged := c.Affected == 600 // c, then d
		if !tagged {
			require.Equal(t, 300, c.Affected, "the tagging skipped exactly the shared leads, deleted before it")
		}
		orders["tags:"+map[bool]string{true: "first", false: "second"}[tagged]]++
		for _, id := range shared {
			require.True(t, got[id].Deleted)
			require.Equal(t, tagged, len(got[id].Tags) == 1, "every shared lead saw the same order")
		}
		for _, id := range first {
			require.Equal(t, []string{"raced"}, got[id].Tags)
		}
	}
	t.Logf("orders seen: %v", orders)
}

// A bulk operation publishes workspace_leads.updated once it commits, with the ids it changed in
// parts small enough for NOTIFY.
func TestBulkOperationPublishesItsIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	tm := newTeam(t, db, 400)

	got := make(chan events.Event, 16)
	ready := make(chan struct{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = events.ListenReady(lctx, dbtest.URL(dbtest.NameOf(ctx, db)), func() { close(ready) }, func(ev events.Event) {
			if ev.Type == pipeline.UpdatedEvent {
				got <- ev
			}
		})
	}()
	<-ready
	res, err := tm.svc.BulkUpdateStatus(ctx, caller(tm.member), tm.in(ids(tm.leads...)), "LOST")
	require.NoError(t, err)
	require.Equal(t, 400, res.Affected)

	seen := map[string]bool{}
	for part := 0; part < 3; part++ {
		select {
		case ev := <-got:
			var p struct {
				WorkspaceID string   `json:"workspaceId"`
				Operation   string   `json:"operation"`
				IDs         []string `json:"ids"`
				Parts       int      `json:"parts"`
			}
			require.NoError(t, json.Unmarshal(ev.Payload, &p))
			require.Equal(t, tm.ws, p.WorkspaceID)
			require.Equal(t, "bulkUpdateLeadStatus", p.Operation)
			require.Equal(t, 3, p.Parts)
			require.LessOrEqual(t, len(p.IDs), pipeline.EventIDs)
			for _, id := range p.IDs {
				seen[id] = true
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 3 parts arrived", part)
		}
	}
	require.Len(t, seen, 400)
	for _, id := range tm.leads {
		require.True(t, seen[id])
	}
}
