package ingesttest_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
)

// summary is what reading a generated file through ingest finds.
type summary struct {
	rows     int
	rejected map[ingest.Reason]int
	hashes   map[string]int // hash_key → rows staged with it
}

func read(t *testing.T, r io.Reader) summary {
	t.Helper()
	rd, err := ingest.NewReader(r, ingest.Options{})
	require.NoError(t, err)
	s := summary{rejected: map[ingest.Reason]int{}, hashes: map[string]int{}}
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return s
		}
		require.NoError(t, err)
		s.rows++
		staged, rej := ingest.Validate(rd.Header(), row, ingest.Defaults{})
		if rej != nil {
			s.rejected[rej.Reason]++
			continue
		}
		s.hashes[staged.Normalized.HashKey]++
	}
}

// TestGeneratedFilesHaveTheirCounts: every row the generator meant to be invalid is rejected for
// its reason, every in-file duplicate shares a hash_key with an earlier row, and every copy has
// the hash_key of a lead of the earlier file and of no other row.
func TestGeneratedFilesHaveTheirCounts(t *testing.T) {
	t.Parallel()
	var first bytes.Buffer
	prev, err := ingesttest.Generate(&first, ingesttest.Options{Rows: 3000, Seed: 1, DuplicateFraction: 0.1})
	require.NoError(t, err)
	require.Equal(t, 3000, prev.Rows)
	require.InDelta(t, 300, prev.Duplicates, 2)
	require.Equal(t, prev.Rows, prev.Set.Unique+prev.Duplicates)
	before := read(t, &first)
	require.Len(t, before.hashes, prev.Set.Unique)
	require.Empty(t, before.rejected)

	var second bytes.Buffer
	res, err := ingesttest.Generate(&second, ingesttest.Options{Rows: 10000, Seed: 2, DuplicateFraction: 0.1,
		InvalidFraction: 0.03, CopyFraction: 0.05, Previous: prev.Set, Delimiter: ';'})
	require.NoError(t, err)
	require.Equal(t, 10000, res.Rows)
	require.InDelta(t, 1000, res.Duplicates, 3)
	require.InDelta(t, 500, res.Copied, 3)
	invalid := 0
	for _, n := range res.Invalid {
		invalid += n
	}
	require.InDelta(t, 300, invalid, 3)
	require.Len(t, res.Invalid, 4, "every reason Validate gives")
	require.Equal(t, res.Rows, res.Set.Unique+res.Duplicates+res.Copied+invalid)

	after := read(t, &second)
	require.Equal(t, res.Rows, after.rows)
	require.Equal(t, res.Invalid, after.rejected)
	copied, dups := 0, 0
	for h, n := range after.hashes {
		if before.hashes[h] > 0 {
			copied += n
			require.Equal(t, 1, n, "a lead is copied once")
			continue
		}
		dups += n - 1
	}
	require.Equal(t, res.Copied, copied)
	require.Equal(t, res.Duplicates, dups)
	require.Len(t, after.hashes, res.Set.Unique+res.Copied)
}

func TestGenerateIsReproducible(t *testing.T) {
	t.Parallel()
	var a, b bytes.Buffer
	o := ingesttest.Options{Rows: 500, Seed: 7, DuplicateFraction: 0.2, InvalidFraction: 0.1}
	_, err := ingesttest.Generate(&a, o)
	require.NoError(t, err)
	_, err = ingesttest.Generate(&b, o)
	require.NoError(t, err)
	require.Equal(t, a.String(), b.String())
}

func TestGenerateRefusesImpossibleOptions(t *testing.T) {
	t.Parallel()
	_, err := ingesttest.Generate(io.Discard, ingesttest.Options{Rows: 100, CopyFraction: 0.5,
		Previous: ingesttest.Set{Seed: 1, Unique: 10}})
	require.Error(t, err)
	_, err = ingesttest.Generate(io.Discard, ingesttest.Options{Rows: 100, DuplicateFraction: 0.7, InvalidFraction: 0.7})
	require.Error(t, err)
}

// TestStreaming pipes a generated file of about 30 MB into a Reader: neither side holds the
// file, so the heap stays small however many rows pass. (Validate keeps nothing either, but is
// left out: libphonenumber would make this test slow.)
func TestStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 150,000 rows")
	}
	t.Parallel()
	const rows = 150_000
	pr, pw := io.Pipe()
	go func() {
		_, err := ingesttest.Generate(pw, ingesttest.Options{Rows: rows, Seed: 3, DuplicateFraction: 0.1,
			InvalidFraction: 0.03})
		pw.CloseWithError(err)
	}()
	rd, err := ingest.NewReader(pr, ingest.Options{})
	require.NoError(t, err)
	var peak uint64
	var ms runtime.MemStats
	for n := 0; ; n++ {
		_, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if n%25_000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	t.Logf("%d rows, %d MB read, peak heap after GC %d KB", rows, rd.BytesRead()>>20, peak>>10)
	require.Equal(t, rows, rd.RowsRead())
	require.Greater(t, rd.BytesRead(), int64(25<<20))
	require.Less(t, peak, uint64(16<<20), "heap after GC while streaming")
}
