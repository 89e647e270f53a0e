package ingesttest_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
)

// BenchmarkReadAndValidate measures ingest's share of an upload: reading and validating
// generated rows from memory. go test -run '^$' -bench . ./internal/ingest/ingesttest/
func BenchmarkReadAndValidate(b *testing.B) {
	var file bytes.Buffer
	const rows = 50_000
	if _, err := ingesttest.Generate(&file, ingesttest.Options{Rows: rows, Seed: 1, DuplicateFraction: 0.1,
		InvalidFraction: 0.03}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(file.Len()))
	b.ResetTimer()
	for b.Loop() {
		rd, err := ingest.NewReader(bytes.NewReader(file.Bytes()), ingest.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			row, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			ingest.Validate(rd.Header(), row, ingest.Defaults{})
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkGenerate measures the generator, so a benchmark can tell its cost from the upload's.
func BenchmarkGenerate(b *testing.B) {
	const rows = 50_000
	for b.Loop() {
		if _, err := ingesttest.Generate(io.Discard, ingesttest.Options{Rows: rows, Seed: 1, DuplicateFraction: 0.1,
			InvalidFraction: 0.03}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
