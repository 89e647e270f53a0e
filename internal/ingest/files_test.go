package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
)

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return string(b)
}

// Files that cannot be an upload are FAILED uploads with a code and a message, never an error:
// nothing is staged, no job is queued, and the failure is in the audit log. Some are refused
// only part-way through (a row that is not UTF-8, one row too many): what was staged before is
// undone.
func TestUploadRefusesFiles(t *testing.T) {
	t.Parallel()
	rows := func(n int) string {
		var b strings.Builder
		b.WriteString(header)
		for i := range n {
			b.WriteString("r" + strings.Repeat("x", i%7) + "@acme.example,Ann,Lee,Acme,,,\n")
		}
		return b.String()
	}
	cases := []struct {
		name, csv string
		code      ingest.ErrorCode
	}{
		{"empty body", "", ingest.CodeEmptyFile},
		{"header only", header, ingest.CodeEmptyFile},
		{"blank lines only", "\n\n  \n", ingest.CodeEmptyFile},
		{"binary data", "\x00\x01\x02\x03garbage\x00", ingest.CodeNotCSV},
		{"an Excel workbook", testdata(t, "xlsx.bin"), ingest.CodeNotCSV},
		{"UTF-16", testdata(t, "utf16.csv"), ingest.CodeNotCSV},
		{"not UTF-8 (Latin-1)", testdata(t, "latin1.csv"), ingest.CodeNotCSV},
		{"not UTF-8 after 40 good rows", rows(40) + "caf\xe9@acme.example,Ann,Lee,Acme,,,\n", ingest.CodeNotCSV},
		{"no header row", testdata(t, "no_header.csv"), ingest.CodeNotCSV},
		{"no email column", "first_name,last_name,company_name\nAnn,Lee,Acme\n", ingest.CodeMissingColumns},
		{"10,000 columns in the header", header[:len(header)-1] + strings.Repeat(",extra", 10_000) + "\n" +
			"a@acme.example,Ann,Lee,Acme,,,\n", ingest.CodeTooManyColumns},
		{"more rows than MAX_UPLOAD_ROWS", rows(51), ingest.CodeTooManyRows},
	}
	e := newEnv(t, ingest.ServiceOptions{MaxRows: 50})
	s := e.supplier()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := e.upload(s, tc.csv, ingest.UploadInput{FileName: tc.name + ".csv"})
			require.Equal(t, ingest.StatusFailed, u.Status)
			require.NotNil(t, u.ErrorCode)
			require.Equal(t, string(tc.code), *u.ErrorCode)
			require.NotEmpty(t, *u.ErrorMessage)
			require.NotNil(t, u.CompletedAt)
			require.Zero(t, u.RowsTotal)
			require.Empty(t, u.RejectionsCSVPath())
			require.Zero(t, e.count("SELECT count(*) FROM lead_upload_rows WHERE upload_id = ?", u.ID))
			require.Zero(t, e.count("SELECT count(*) FROM river_job WHERE args->>'upload_id' = ?", u.ID))
			require.Equal(t, 1, e.count(`SELECT count(*) FROM audit_logs WHERE resource_id = ? AND action = 'lead_upload.failed'
				AND new_values->>'errorCode' = ?`, u.ID, string(tc.code)))
			done, err := e.svc.Process(context.Background(), u.ID)
			require.NoError(t, err)
			require.True(t, done, "a failed upload has nothing left to do")
		})
	}
	require.Zero(t, e.leadCount(s.PartnerID))
}

// Rows that are bad in themselves are rejected one by one, and the rest of the file goes on.
func TestUploadRejectsBadRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 2})
	s := e.supplier()
	u := e.upload(s, header+
		"a@acme.example,Ann,Lee,"+strings.Repeat("A", 1<<20)+",,,\n"+ // a 1 MB field
		"b@acme.example,Bo,Li,Acme,,,"+strings.Repeat(",x", 10_000)+"\n"+ // 10,000 columns
		"c@acme.example,\"C\"\"y\",Chen,\"Acme, Inc.\",,,\n"+
		"\"d@acme.example\",Dee,\"unclosed,Acme,,,\n", ingest.UploadInput{})
	require.Equal(t, ingest.StatusQueued, u.Status)
	u = e.process(s, u.ID)
	require.Equal(t, [4]int{4, 1, 0, 3}, counts(u))
	rs := e.rejections(s, u.ID)
	require.Equal(t, []got{{2, ingest.ReasonInvalidValue, "company_name"}, {3, ingest.ReasonMalformedRow, ""},
		{5, ingest.ReasonMalformedRow, ""}}, summarize(rs))
	require.LessOrEqual(t, len(rs[0].Raw["company_name"]), ingest.MaxValueBytes+len("…"), "what is kept of a value is bounded")
	require.LessOrEqual(t, len(rs[1].Raw), ingest.MaxColumns, "and so are the values kept of a row")
}
