package csvx_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/csvx"
)

func TestSafeCell(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"=1+1", "'=1+1"},
		{"+1", "'+1"},
		{"-5", "'-5"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tfoo", "'\tfoo"},
		{"\rfoo", "'\rfoo"},
		{"\nfoo", "'\nfoo"},
		{"\x00foo", "'\x00foo"},
		{"=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"},
		{"＝1+1", "'＝1+1"},
		{"＠SUM(A1)", "'＠SUM(A1)"},
		{"a=1", "a=1"},
		{" =1", " =1"},
		{"'=1", "'=1"},
		{"jane@acme.com", "jane@acme.com"},
		{"Zoë", "Zoë"},
		{"5", "5"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, csvx.SafeCell(c.in), "SafeCell(%q)", c.in)
	}
}

// TestWriterRoundTrip writes dangerous cells and reads them back with encoding/csv: each cell is
// the prefixed value, and quoting still keeps delimiters, quotes and line breaks inside cells.
func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	records := [][]string{
		{"row_number", "reason", "=cmd|' /C calc'!A0"},
		{"-5", "=1+1", "@SUM(A1)"},
		{"\tfoo", "a,b", "say \"hi\"\nthere"},
		{"+33 1 23 45 67 89", "\r\n", ""},
	}
	var buf bytes.Buffer
	w := csvx.NewWriter(&buf, csvx.Options{})
	for _, r := range records {
		require.NoError(t, w.Write(r))
	}
	require.NoError(t, w.Flush())

	got, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{
		{"row_number", "reason", "'=cmd|' /C calc'!A0"},
		{"'-5", "'=1+1", "'@SUM(A1)"},
		{"'\tfoo", "a,b", "say \"hi\"\nthere"},
		{"'+33 1 23 45 67 89", "'\n", ""},
	}, got)
}

func TestWriterOptions(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := csvx.NewWriter(&buf, csvx.Options{BOM: true, CRLF: true})
	require.NoError(t, w.Write([]string{"a", "=b"}))
	require.NoError(t, w.Write([]string{"c", "d"}))
	require.NoError(t, w.Flush())
	require.Equal(t, "\xEF\xBB\xBFa,'=b\r\nc,d\r\n", buf.String())

	buf.Reset()
	w = csvx.NewWriter(&buf, csvx.Options{BOM: true})
	require.NoError(t, w.Flush())
	require.Equal(t, "\xEF\xBB\xBF", buf.String(), "an empty file still starts with the mark")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterReportsErrors(t *testing.T) {
	t.Parallel()
	w := csvx.NewWriter(failingWriter{}, csvx.Options{})
	require.NoError(t, w.Write([]string{"a"}), "buffered")
	require.EqualError(t, w.Flush(), "disk full")

	w = csvx.NewWriter(failingWriter{}, csvx.Options{BOM: true})
	require.EqualError(t, w.Write([]string{"a"}), "disk full")
}
