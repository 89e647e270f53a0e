package ingest_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// An upload hands the leads each batch inserted to EnqueueVerificationFunc in the batch's own
// transaction: every accepted lead once, none of a dry run, and a batch whose enqueue fails
// inserts nothing (it rolls back with it).
func TestUploadEnqueuesVerificationOfItsLeads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var enqueued []string
	fail := false
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 2,
		EnqueueVerificationFunc: func(ctx context.Context, tx bun.Tx, ids []string) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return errors.New("queue down")
			}
			// In the batch's transaction: the leads are visible here before the batch commits.
			var n int
			if err := tx.NewRaw("SELECT count(*) FROM leads WHERE id = ANY(?::uuid[])", pgdialect.Array(ids)).Scan(ctx, &n); err != nil {
				return err
			}
			if n != len(ids) {
				return errors.New("the leads are not in this transaction")
			}
			enqueued = append(enqueued, ids...)
			return nil
		}})
	s := e.supplier()
	csv := "email,first_name,last_name,company_name\n" +
		"a@verify-one.example,A,One,Acme\n" +
		"b@verify-one.example,B,Two,Acme\n" +
		"A@verify-one.example,A,One,Acme\n" + // duplicate of row 2
		"broken,C,Three,Acme\n" +
		"d@verify-one.example,D,Four,Acme\n"
	up := e.process(s, e.upload(s, csv, ingest.UploadInput{}).ID)
	require.Equal(t, ingest.StatusCompleted, up.Status)
	require.Equal(t, 3, up.AcceptedCount)
	require.Len(t, enqueued, 3)
	require.ElementsMatch(t, enqueued, uniq(enqueued), "each lead once")

	dry := e.process(s, e.upload(s, csv+"e@verify-one.example,E,Five,Acme\n", ingest.UploadInput{DryRun: true}).ID)
	require.Equal(t, ingest.StatusCompleted, dry.Status)
	require.Len(t, enqueued, 3, "a dry run inserts and enqueues nothing")

	fail = true
	other := e.supplier()
	id := e.upload(other, "email,first_name,last_name,company_name\nf@verify-two.example,F,Six,Beta\n", ingest.UploadInput{}).ID
	_, err := e.svc.Process(ctx, id)
	require.Error(t, err)
	require.Empty(t, e.leadsOf(hashOf(t, "f@verify-two.example")), "the batch rolled back with its enqueue")
}

func uniq(ids []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// hashOf is the dedup key of a row with only an e-mail (its domain taken from it).
func hashOf(t *testing.T, email string) string {
	t.Helper()
	return lead.Normalize(lead.Contact{Email: email}).HashKey
}
