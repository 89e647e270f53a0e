package ingest_test

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/csvx"
	"github.com/leadmarket/leadmarket/internal/ingest"
)

// TestRejectionsDownload writes a file's rejections as the download does, through csvx: the four
// fixed columns, then the file's own, formula cells neutralised.
func TestRejectionsDownload(t *testing.T) {
	t.Parallel()
	data := []byte("email,first_name,last_name,company_name,=notes\n" +
		"not-an-email,Ann,Lee,Initech,=1+1\n" +
		"a@acme.com,A,A,Acme,x,-5\n")
	out, err := parse(t, data, ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Len(t, out.rejected, 2)

	var buf bytes.Buffer
	w := csvx.NewWriter(&buf, csvx.Options{})
	require.NoError(t, w.Write(ingest.RejectionsCSVHeader(out.header)))
	var rec []string
	for _, r := range out.rejected {
		rec = ingest.RejectionsCSVRecord(r, rec)
		require.NoError(t, w.Write(rec))
	}
	require.NoError(t, w.Flush())

	rd := csv.NewReader(&buf)
	rd.FieldsPerRecord = -1
	got, err := rd.ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"row_number", "reason", "field", "detail", "email", "first_name", "last_name", "company_name", "'=notes"},
		{"2", "INVALID_EMAIL", "email", `"not-an-email" is not a valid e-mail address`, "not-an-email", "Ann", "Lee", "Initech", "'=1+1"},
		{"3", "MALFORMED_ROW", "", "the row has 6 fields, the header has 5", "a@acme.com", "A", "A", "Acme", "x", "'-5"},
	}, got)
}

func TestRawValuesInvertsRawMap(t *testing.T) {
	t.Parallel()
	h, err := ingest.NewHeader([]string{"email", "first_name", "last_name", "company_name", "", "notes", "notes"})
	require.NoError(t, err)
	for _, values := range [][]string{
		{"a@acme.com", "A", "A", "Acme", "x", "n1", "n2"},
		{"a@acme.com", "A"},
		{"a@acme.com", "A", "A", "Acme", "x", "n1", "n2", "e8", "e9", "e10"},
		{},
	} {
		require.Equal(t, values, h.RawValues(h.RawMap(values)), "%q", values)
	}
}
