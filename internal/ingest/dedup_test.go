package ingest_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
)

// vector is a case of internal/lead/testdata/dedup_vectors.json (the repository's copy of
// ../shared/fixtures/dedup_vectors.json).
type vector struct {
	Note  string `json:"note"`
	Input struct {
		CompanyDomain string `json:"company_domain"`
		Country       string `json:"country"`
		Email         string `json:"email"`
		Phone         string `json:"phone"`
	} `json:"input"`
	Expect struct {
		HashKey string `json:"hash_key"`
	} `json:"expect"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "lead", "testdata", "dedup_vectors.json"))
	require.NoError(t, err)
	var v struct {
		Cases []vector `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.Cases)
	return v.Cases
}

// vectorFile is a CSV file with one row per vector, in order.
func vectorFile(t *testing.T, vs []vector) string {
	t.Helper()
	var b strings.Builder
	w := csv.NewWriter(&b)
	require.NoError(t, w.Write([]string{"email", "first_name", "last_name", "company_name", "company_domain", "phone", "country", "notes"}))
	for i, v := range vs {
		require.NoError(t, w.Write([]string{v.Input.Email, "First", "Last", "Company", v.Input.CompanyDomain, v.Input.Phone,
			v.Input.Country, fmt.Sprintf("vector %d: %s", i, v.Note)}))
	}
	w.Flush()
	require.NoError(t, w.Error())
	return b.String()
}

// Every dedup vector, through uploads of two partners: the first partner's file accepts each
// distinct key once (the vectors that share a key are duplicates within the file), and the
// database's hash_key is the vector's; the second partner's file repeats them all (duplicates of
// another partner's leads, no lead id given); the first partner's second file repeats them too
// (its own leads, with their ids).
func TestUploadDedupVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 5})
	a, b := e.supplier(), e.supplier()
	file := vectorFile(t, vs)

	firstRow := map[string]int{} // key → row of its first vector
	var inFile []got
	for i, v := range vs {
		row := i + 2
		if _, seen := firstRow[v.Expect.HashKey]; seen {
			inFile = append(inFile, got{row, ingest.ReasonDuplicateInFile, ""})
			continue
		}
		firstRow[v.Expect.HashKey] = row
	}
	distinct := len(firstRow)
	require.Less(t, distinct, len(vs), "the vectors include keys shared by several inputs")

	u := e.process(a, e.upload(a, file, ingest.UploadInput{}).ID)
	require.Equal(t, [4]int{len(vs), distinct, len(vs) - distinct, 0}, counts(u))
	require.Equal(t, inFile, summarize(e.rejections(a, u.ID)))
	keys := make([]string, 0, distinct)
	for k := range firstRow {
		keys = append(keys, k)
	}
	leads := e.leadsOf(keys...)
	require.Len(t, leads, distinct, "every lead is found by the vector's hash_key: the trigger and Go agree")
	for k, l := range leads {
		require.Equal(t, a.PartnerID, l.PartnerID, k)
	}

	// The other partner: duplicates within the file first, then of the first partner's leads.
	u = e.process(b, e.upload(b, file, ingest.UploadInput{}).ID)
	require.Equal(t, [4]int{len(vs), 0, len(vs), 0}, counts(u))
	rs := e.rejections(b, u.ID)
	for i, r := range rs {
		v := vs[r.RowNumber-2]
		want := ingest.ReasonDuplicateCrossPartner
		if firstRow[v.Expect.HashKey] != r.RowNumber {
			want = ingest.ReasonDuplicateInFile
		}
		require.Equal(t, want, r.Reason, "row %d (%s)", r.RowNumber, v.Note)
		require.Nil(t, r.DuplicateOfLeadID, "another partner's lead id is never disclosed")
		require.Equal(t, i+2, r.RowNumber)
	}
	require.Zero(t, e.leadCount(b.PartnerID))

	// The first partner again: its own leads, named.
	u = e.process(a, e.upload(a, file, ingest.UploadInput{}).ID)
	require.Equal(t, [4]int{len(vs), 0, len(vs), 0}, counts(u))
	for _, r := range e.rejections(a, u.ID) {
		v := vs[r.RowNumber-2]
		if firstRow[v.Expect.HashKey] != r.RowNumber {
			require.Equal(t, ingest.ReasonDuplicateInFile, r.Reason)
			continue
		}
		require.Equal(t, ingest.ReasonDuplicateSamePartner, r.Reason, v.Note)
		require.NotNil(t, r.DuplicateOfLeadID)
		require.Equal(t, leads[v.Expect.HashKey].ID, *r.DuplicateOfLeadID, v.Note)
	}
	require.Equal(t, distinct, e.leadCount(a.PartnerID))
}

// overlapFile has the shared leads 0..shared-1 and own leads of its own, in batches that
// interleave them.
func overlapFile(shared, own int, tag string) string {
	var b strings.Builder
	b.WriteString(header)
	for i := range max(shared, own) {
		if i < shared {
			fmt.Fprintf(&b, "shared%d@overlap.example,S,Hared,Overlap,,+1 415 555 %04d,US\n", i, i)
		}
		if i < own {
			fmt.Fprintf(&b, "%s%d@%s.example,O,Wn,Own,,,\n", tag, i, tag)
		}
	}
	return b.String()
}

// Two uploads with the same leads, worked at the same time: each shared lead is inserted once,
// and the upload that lost the race for it rejects it as the other partner's, or as the
// partner's own (with its id) when one partner uploads both.
func TestUploadsRacingForTheSameLeads(t *testing.T) {
	t.Parallel()
	const shared, own = 120, 40
	for _, samePartner := range []bool{false, true} {
		t.Run(fmt.Sprintf("same partner %v", samePartner), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ingest.ServiceOptions{BatchRows: 20})
			a := e.supplier()
			b := a
			if !samePartner {
				b = e.supplier()
			}
			ua := e.upload(a, overlapFile(shared, own, "a"), ingest.UploadInput{})
			ub := e.upload(b, overlapFile(shared, own, "b"), ingest.UploadInput{})

			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, id := range []string{ua.ID, ub.ID} {
				wg.Go(func() {
					for {
						done, err := e.svc.Process(context.Background(), id)
						if err != nil || done {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			ua, ub = e.get(a, ua.ID), e.get(b, ub.ID)
			for _, u := range []*ingest.Upload{ua, ub} {
				require.Equal(t, ingest.StatusCompleted, u.Status)
				require.Equal(t, shared+own, u.RowsTotal)
				require.Equal(t, u.RowsTotal, u.AcceptedCount+u.DuplicateCount)
				require.Zero(t, u.InvalidCount)
			}
			require.Equal(t, shared+2*own, ua.AcceptedCount+ub.AcceptedCount, "each shared lead accepted once")
			require.Equal(t, shared, ua.DuplicateCount+ub.DuplicateCount)
			leads := e.leadCount(a.PartnerID)
			if !samePartner {
				leads += e.leadCount(b.PartnerID)
			}
			require.Equal(t, shared+2*own, leads, "no lead twice")

			want := ingest.ReasonDuplicateCrossPartner
			if samePartner {
				want = ingest.ReasonDuplicateSamePartner
			}
			for _, pair := range []struct {
				s supplier
				u *ingest.Upload
			}{{a, ua}, {b, ub}} {
				for _, r := range e.rejections(pair.s, pair.u.ID) {
					require.Equal(t, want, r.Reason, "row %d", r.RowNumber)
					require.Equal(t, samePartner, r.DuplicateOfLeadID != nil)
				}
			}
		})
	}
}
