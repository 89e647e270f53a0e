package ingest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
)

// BenchmarkUploadAndProcess stages and works a generated 20,000-row file (10% duplicates within
// it, 3% invalid) per iteration, each on a database of its own, and reports rows/s for the
// request (staging) and the job.
func BenchmarkUploadAndProcess(b *testing.B) {
	const rows = 20_000
	var staging, working time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		var file bytes.Buffer
		_, err := ingesttest.Generate(&file, ingesttest.Options{Rows: rows, Seed: uint64(i + 1), DuplicateFraction: 0.1, InvalidFraction: 0.03})
		require.NoError(b, err)
		e := newEnv(b, ingest.ServiceOptions{})
		s := e.supplier()
		ctx := context.Background()
		b.StartTimer()
		start := time.Now()
		u, err := e.svc.Upload(ctx, s.Caller, ingest.UploadInput{PartnerID: s.PartnerID, File: bytes.NewReader(file.Bytes())})
		require.NoError(b, err)
		staging += time.Since(start)
		start = time.Now()
		for done := false; !done; {
			done, err = e.svc.Process(ctx, u.ID)
			require.NoError(b, err)
		}
		working += time.Since(start)
	}
	b.ReportMetric(float64(rows*b.N)/staging.Seconds(), "staged-rows/s")
	b.ReportMetric(float64(rows*b.N)/working.Seconds(), "worked-rows/s")
}
