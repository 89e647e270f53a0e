package ingest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
)

// outcome is everything reading and validating a file produced.
type outcome struct {
	header   *ingest.Header
	delim    rune
	staged   []ingest.StagedRow
	rejected []ingest.Rejection
}

// parse reads data to the end, validating every row; it returns the first error.
func parse(t testing.TB, data []byte, opts ingest.Options, d ingest.Defaults) (outcome, error) {
	t.Helper()
	r, err := ingest.NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return outcome{}, err
	}
	out := outcome{header: r.Header(), delim: r.Delimiter()}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		staged, rej := ingest.Validate(r.Header(), row, d)
		if rej != nil {
			out.rejected = append(out.rejected, *rej)
		} else {
			out.staged = append(out.staged, staged)
		}
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// rej is what a test expects of a rejection.
type rej struct {
	row    int
	reason ingest.Reason
	field  string
}

func (o outcome) acceptedRows() []int {
	rows := []int{}
	for _, s := range o.staged {
		rows = append(rows, s.RowNumber)
	}
	return rows
}

func (o outcome) rejections() []rej {
	rs := []rej{}
	for _, r := range o.rejected {
		rs = append(rs, rej{r.RowNumber, r.Reason, r.Field})
	}
	return rs
}

// TestFiles runs one small file per rule of the file format and checks which rows are accepted,
// which are rejected and why, or how the whole file fails.
func TestFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		delim    rune
		accepted []int
		rejected []rej
		code     ingest.ErrorCode // the file fails
		errRow   int
	}{
		{file: "bom.csv", delim: ',', accepted: []int{2, 3}},
		{file: "semicolon.csv", delim: ';', accepted: []int{2, 3}},
		{file: "tab.tsv", delim: '\t', accepted: []int{2, 3}},
		{file: "quoted_header.csv", delim: ';', accepted: []int{2}},
		{file: "quoted_newline.csv", delim: ',', accepted: []int{2, 3},
			rejected: []rej{{4, ingest.ReasonInvalidEmail, "email"}, {5, ingest.ReasonMissingFields, "last_name"}}},
		{file: "crlf.csv", delim: ',', accepted: []int{2, 3}, rejected: []rej{{4, ingest.ReasonInvalidEmail, "email"}}},
		{file: "cr_only.csv", delim: ',', accepted: []int{2}, rejected: []rej{{3, ingest.ReasonInvalidEmail, "email"}}},
		{file: "blank_rows.csv", delim: ',', accepted: []int{4}, rejected: []rej{{7, ingest.ReasonInvalidEmail, "email"}}},
		{file: "aliases.csv", delim: ',', accepted: []int{2}},
		{file: "duplicate_columns.csv", delim: ',', accepted: []int{2}},
		{file: "mapping.csv", delim: ',', accepted: []int{2, 3, 4, 5, 6, 7, 8}},
		{file: "unclosed_quote.csv", delim: ',', accepted: []int{2}, rejected: []rej{{3, ingest.ReasonMalformedRow, ""}}},
		{file: "rejections.csv", delim: ',', accepted: []int{2, 17, 18}, rejected: []rej{
			{3, ingest.ReasonInvalidEmail, "email"},
			{4, ingest.ReasonMissingFields, "email"},
			{5, ingest.ReasonMissingFields, "first_name"},
			{6, ingest.ReasonInvalidValue, "seniority"},
			{7, ingest.ReasonInvalidValue, "company_size"},
			{8, ingest.ReasonInvalidValue, "country"},
			{9, ingest.ReasonInvalidValue, "price_credits"},
			{10, ingest.ReasonInvalidValue, "price_credits"},
			{11, ingest.ReasonInvalidValue, "price_credits"},
			{12, ingest.ReasonMalformedRow, ""},
			{13, ingest.ReasonMalformedRow, ""},
			{14, ingest.ReasonMalformedRow, ""},
			{15, ingest.ReasonMalformedRow, ""},
			{16, ingest.ReasonInvalidValue, "last_name"},
		}},

		{file: "missing_email_column.csv", code: ingest.CodeMissingColumns, errRow: 1},
		{file: "missing_columns.csv", code: ingest.CodeMissingColumns, errRow: 1},
		{file: "no_header.csv", code: ingest.CodeNotCSV, errRow: 1},
		{file: "bad_header.csv", code: ingest.CodeNotCSV, errRow: 1},
		{file: "header_only.csv", code: ingest.CodeEmptyFile},
		{file: "header_then_blank.csv", code: ingest.CodeEmptyFile},
		{file: "empty.csv", code: ingest.CodeEmptyFile},
		{file: "blank_only.csv", code: ingest.CodeEmptyFile},
		{file: "bom_only.csv", code: ingest.CodeEmptyFile},
		{file: "binary.bin", code: ingest.CodeNotCSV},
		{file: "xlsx.bin", code: ingest.CodeNotCSV},
		{file: "utf16.csv", code: ingest.CodeNotCSV},
		{file: "utf16_nobom.csv", code: ingest.CodeNotCSV},
		{file: "latin1.csv", code: ingest.CodeNotCSV, errRow: 3},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			out, err := parse(t, readFile(t, c.file), ingest.Options{}, ingest.Defaults{})
			if c.code != "" {
				fe, ok := ingest.AsFileError(err)
				require.True(t, ok, "want a *FileError, got %v", err)
				require.Equal(t, c.code, fe.Code, fe.Message)
				require.Equal(t, c.errRow, fe.Row, fe.Message)
				require.NotEmpty(t, fe.Message)
				return
			}
			require.NoError(t, err)
			require.Equal(t, string(c.delim), string(out.delim))
			require.Equal(t, c.accepted, out.acceptedRows())
			if c.rejected == nil {
				c.rejected = []rej{}
			}
			require.Equal(t, c.rejected, out.rejections())
			for _, r := range out.rejected {
				require.NotEmpty(t, r.Detail)
			}
		})
	}
}

func TestBOMIsNotPartOfTheHeader(t *testing.T) {
	t.Parallel()
	out, err := parse(t, readFile(t, "bom.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, []string{"email", "first_name", "last_name", "company_name"}, out.header.Names)
	require.Equal(t, "jane@acme.com", out.staged[0].Email)
}

func TestQuotedFields(t *testing.T) {
	t.Parallel()
	out, err := parse(t, readFile(t, "quoted_newline.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, "line one\nline two\nline three", out.header.RawMap(out.staged[0].Raw)["notes"])
	require.Equal(t, `Globex "The Big One", Inc.`, out.staged[1].CompanyName)

	out, err = parse(t, readFile(t, "semicolon.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, "Acme, Inc.", out.staged[0].CompanyName)
	require.Equal(t, "a;b", out.staged[0].Raw[4])

	out, err = parse(t, readFile(t, "crlf.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, "one\ntwo", out.staged[0].Raw[4], "CR LF inside a quoted field reads as LF, as encoding/csv does")
}

func TestAliasesAndUnknownColumns(t *testing.T) {
	t.Parallel()
	out, err := parse(t, readFile(t, "aliases.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	for _, c := range ingest.Columns() {
		require.True(t, out.header.Has(c), "column %s", c)
	}
	s := out.staged[0]
	require.Equal(t, "Jane.Doe+news@GoogleMail.com", s.Email)
	require.Equal(t, "janedoe@gmail.com", s.Normalized.Email)
	require.Equal(t, "acme.com", s.Normalized.CompanyDomain)
	require.Equal(t, "+14155550134", s.Normalized.PhoneE164)
	require.Len(t, s.Normalized.HashKey, 64)
	require.Equal(t, "Jane", s.FirstName)
	require.Equal(t, "Doe", s.LastName)
	require.Equal(t, "Acme", s.CompanyName)
	require.Equal(t, "https://www.Acme.com/about", s.CompanyDomain)
	require.Equal(t, "(415) 555-0134", s.Phone)
	require.Equal(t, "https://linkedin.com/in/janedoe", s.LinkedinURL)
	require.Equal(t, "VP Sales", s.Title)
	require.Equal(t, "VP", s.Seniority)
	require.Equal(t, "Sales", s.Department)
	require.Equal(t, "SIZE_51_200", s.CompanySize)
	require.Equal(t, "Software", s.Industry)
	require.Equal(t, "US", s.Country)
	require.Equal(t, "CA", s.Region)
	require.Equal(t, "San Francisco", s.City)
	require.Equal(t, 12, s.PriceCredits)
	raw := out.header.RawMap(s.Raw)
	require.Equal(t, "green", raw["Favourite Colour"], "unknown columns stay in raw")
	require.Equal(t, "Jane.Doe+news@GoogleMail.com", raw["E-Mail Address"])
	require.Len(t, raw, 17)
}

func TestDuplicateAndEmptyHeaderCells(t *testing.T) {
	t.Parallel()
	out, err := parse(t, readFile(t, "duplicate_columns.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, 0, out.header.Index(ingest.ColumnEmail), "the first column naming email wins")
	require.Equal(t, "jane@acme.com", out.staged[0].Email)
	require.Equal(t, []string{"Email", "Email Address", "First Name", "Last Name", "Company", "column_6", "notes", "notes_2"},
		out.header.Keys)
	raw := out.header.RawMap(out.staged[0].Raw)
	require.Equal(t, "jane.private@gmail.com", raw["Email Address"])
	require.Equal(t, "x", raw["column_6"])
	require.Equal(t, "n2", raw["notes_2"])
}

func TestMissingColumnsAreNamed(t *testing.T) {
	t.Parallel()
	_, err := parse(t, readFile(t, "missing_columns.csv"), ingest.Options{}, ingest.Defaults{})
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok)
	require.Equal(t, []string{"first_name", "last_name"}, fe.Columns, "Organisation is company_name")
	require.Contains(t, fe.Message, "first_name")

	_, err = parse(t, readFile(t, "missing_email_column.csv"), ingest.Options{}, ingest.Defaults{})
	fe, ok = ingest.AsFileError(err)
	require.True(t, ok)
	require.Equal(t, []string{"email"}, fe.Columns)
	require.Contains(t, fe.Message, "e-mail", "the message lists the accepted spellings")
}

func TestFileErrorMessages(t *testing.T) {
	t.Parallel()
	for file, want := range map[string]string{
		"no_header.csv":   "header row",
		"xlsx.bin":        "Excel workbook",
		"utf16.csv":       "UTF-16",
		"utf16_nobom.csv": "NUL byte",
		"binary.bin":      "NUL byte",
		"latin1.csv":      "row 3 is not UTF-8",
		"bad_header.csv":  "quote",
	} {
		_, err := parse(t, readFile(t, file), ingest.Options{}, ingest.Defaults{})
		require.ErrorContains(t, err, want, file)
	}
}

func TestMapping(t *testing.T) {
	t.Parallel()
	out, err := parse(t, readFile(t, "mapping.csv"), ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	type mapped struct {
		seniority, size, country string
		price                    int
		phone                    string
	}
	var got []mapped
	for _, s := range out.staged {
		got = append(got, mapped{s.Seniority, s.CompanySize, s.Country, s.PriceCredits, s.Normalized.PhoneE164})
	}
	require.Equal(t, []mapped{
		{"VP", "SIZE_51_200", "US", 7, "+14155550134"},
		{"DIRECTOR", "SIZE_51_200", "DE", 7, "+49301234567"},
		{"C_LEVEL", "SIZE_201_500", "GB", 5, ""},
		{"C_LEVEL", "SIZE_5001_PLUS", "CI", 5, ""},
		{"OWNER", "SIZE_5001_PLUS", "DE", 5, ""},
		{"UNKNOWN", "UNKNOWN", "", 5, ""},
		{"SENIOR", "SIZE_1001_5000", "NL", 5, ""},
	}, got)
}

func TestDefaultsApplyWhereTheRowHasNone(t *testing.T) {
	t.Parallel()
	data := []byte("email,first_name,last_name,company_name,country,price_credits,phone\n" +
		"a@acme.com,A,A,Acme,,,030 1234567\n" +
		"b@acme.com,B,B,Acme,FR,9,01 23 45 67 89\n")
	price, country := 11, "Germany"
	d, err := ingest.NewDefaults(&price, &country)
	require.NoError(t, err)
	require.Equal(t, ingest.Defaults{PriceCredits: 11, Country: "DE"}, d)
	out, err := parse(t, data, ingest.Options{}, d)
	require.NoError(t, err)
	require.Len(t, out.staged, 2)
	require.Equal(t, "DE", out.staged[0].Country)
	require.Equal(t, 11, out.staged[0].PriceCredits)
	require.Equal(t, "+49301234567", out.staged[0].Normalized.PhoneE164, "the default country is the phone's region")
	require.Equal(t, "FR", out.staged[1].Country)
	require.Equal(t, 9, out.staged[1].PriceCredits)
	require.Equal(t, "+33123456789", out.staged[1].Normalized.PhoneE164)

	out, err = parse(t, data, ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, ingest.DefaultPriceCredits, out.staged[0].PriceCredits)
	require.Equal(t, "", out.staged[0].Country)
	require.Equal(t, "+10301234567", out.staged[0].Normalized.PhoneE164, "without a country the phone is read as a US number")
}

// TestLongValues: a 1 MB value is INVALID_VALUE for a known column, is kept only in part in raw,
// and does not stop the rows after it.
func TestLongValues(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 1<<20)
	data := []byte("email,first_name,last_name,company_name,notes\n" +
		"a@acme.com,A," + big + ",Acme,\n" +
		"b@acme.com,B,B,Acme," + big + "\n" +
		"c@acme.com,C,C,\"" + big + "\"\n" +
		"d@acme.com,D,D,Acme,\n")
	out, err := parse(t, data, ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, []int{3, 5}, out.acceptedRows(), "an unknown column is not limited")
	require.Equal(t, []rej{{2, ingest.ReasonInvalidValue, "last_name"}, {4, ingest.ReasonMalformedRow, ""}}, out.rejections())
	require.Contains(t, out.rejected[0].Detail, "longer than 1000 characters")
	for _, raw := range [][]string{out.rejected[0].Raw, out.staged[0].Raw} {
		for _, v := range raw {
			require.LessOrEqual(t, len(v), ingest.MaxValueBytes+len("…"))
		}
	}
	require.True(t, strings.HasSuffix(out.rejected[0].Raw[2], "…"))
}

func TestManyColumns(t *testing.T) {
	t.Parallel()
	wide := strings.Repeat("x,", 9999) + "x"
	data := []byte("email,first_name,last_name,company_name\n" +
		"a@acme.com,A,A,Acme\n" +
		wide + "\n" +
		"b@acme.com,B,B,Acme\n")
	out, err := parse(t, data, ingest.Options{}, ingest.Defaults{})
	require.NoError(t, err)
	require.Equal(t, []int{2, 4}, out.acceptedRows())
	require.Equal(t, []rej{{3, ingest.ReasonMalformedRow, ""}}, out.rejections())
	require.Equal(t, "the row has 10000 fields, the header has 4", out.rejected[0].Detail)
	require.Len(t, out.rejected[0].Raw, ingest.MaxColumns)

	_, err = parse(t, []byte(wide+"\n"+wide+"\n"), ingest.Options{}, ingest.Defaults{})
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, ingest.CodeTooManyColumns, fe.Code)
}

func TestTooManyRows(t *testing.T) {
	t.Parallel()
	data := []byte("email,first_name,last_name,company_name\n\n" +
		"a@acme.com,A,A,Acme\n,,,\nb@acme.com,B,B,Acme\nbad,C,C,Acme\n")
	out, err := parse(t, data, ingest.Options{MaxRows: 3}, ingest.Defaults{})
	require.NoError(t, err, "blank rows do not count")
	require.Len(t, out.staged, 2)

	data = append(data, "d@acme.com,D,D,Acme\n"...)
	r, err := ingest.NewReader(bytes.NewReader(data), ingest.Options{MaxRows: 3})
	require.NoError(t, err)
	for range 3 {
		_, err := r.Next()
		require.NoError(t, err)
	}
	_, err = r.Next()
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, ingest.CodeTooManyRows, fe.Code)
	require.Equal(t, 7, fe.Row)
	_, again := r.Next()
	require.Equal(t, err, again, "the error is sticky")
}

// TestUnclosedQuoteInALargeFile: a quote that is never closed would make encoding/csv read the
// rest of the file as one field; the row limit fails the file instead.
func TestUnclosedQuoteInALargeFile(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("email,first_name,last_name,company_name\na@acme.com,A,A,Acme\nb@acme.com,\"B,B,Acme\n")
	for b.Len() < 1<<20 {
		b.WriteString("c@acme.com,C,C,Acme\n")
	}
	r, err := ingest.NewReader(&b, ingest.Options{MaxRowBytes: 64 << 10})
	require.NoError(t, err)
	row, err := r.Next()
	require.NoError(t, err)
	require.Equal(t, 2, row.Number)
	_, err = r.Next()
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, ingest.CodeRowTooLarge, fe.Code)
	require.Equal(t, 3, fe.Row)
}

func TestNULAfterTheStart(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("email,first_name,last_name,company_name\n")
	for b.Len() < 200<<10 {
		b.WriteString("c@acme.com,C,C,Acme\n")
	}
	b.WriteString("d@acme.com,D\x00,D,Acme\n")
	_, err := parse(t, b.Bytes(), ingest.Options{}, ingest.Defaults{})
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, ingest.CodeNotCSV, fe.Code)
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestReadErrorsAreNotFileErrors: a request cut short is the transport's failure, not the file's.
func TestReadErrorsAreNotFileErrors(t *testing.T) {
	t.Parallel()
	cut := errors.New("connection reset")
	_, err := ingest.NewReader(&failingReader{err: cut}, ingest.Options{})
	require.ErrorIs(t, err, cut)
	_, isFile := ingest.AsFileError(err)
	require.False(t, isFile)

	var b bytes.Buffer
	b.WriteString("email,first_name,last_name,company_name\n")
	for b.Len() < 200<<10 {
		b.WriteString("c@acme.com,C,C,Acme\n")
	}
	r, err := ingest.NewReader(&failingReader{data: b.Bytes(), err: cut}, ingest.Options{})
	require.NoError(t, err)
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	require.ErrorIs(t, err, cut)
	_, isFile = ingest.AsFileError(err)
	require.False(t, isFile)
}

// TestRowNumbersAreSpreadsheetRows: quoted line breaks do not add rows, blank lines do, and a
// malformed row keeps its own number.
func TestRowNumbersAreSpreadsheetRows(t *testing.T) {
	t.Parallel()
	data := []byte("\n\nemail,first_name,last_name,company_name\n" + // header on row 3
		"a@acme.com,A,\"A\nA\nA\",Acme\n" + // row 4, lines 4-6
		"\n" + // row 5
		"b@acme.com,B\"x,B,Acme\n" + // row 6, malformed
		"c@acme.com,\"C\n\",C,\"Acme\n\n\"\n" + // row 7, lines 8-11
		"d@acme.com,D,D,Acme") // row 8, no final line break
	r, err := ingest.NewReader(bytes.NewReader(data), ingest.Options{})
	require.NoError(t, err)
	var numbers []int
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		numbers = append(numbers, row.Number)
	}
	require.Equal(t, []int{4, 6, 7, 8}, numbers)
	require.Equal(t, 4, r.RowsRead())
	require.Equal(t, int64(len(data)), r.BytesRead())
}

func TestDelimiterDetection(t *testing.T) {
	t.Parallel()
	cases := []struct {
		header string
		want   rune
	}{
		{"email,first_name,last_name,company_name", ','},
		{"email;first_name;last_name;company_name", ';'},
		{"email\tfirst_name\tlast_name\tcompany_name", '\t'},
		{`"email";"first_name";"last_name";"Company, Inc. or Org";company_name`, ';'},
		{`email,first_name,last_name,"a;b;c;d;e;f",company_name`, ','},
		{"email;first_name;last_name;company_name;tags (a,b,c,d)", ';'},
		{";;;\n\nemail;first_name;last_name;company_name", ';'},
	}
	for _, c := range cases {
		r, err := ingest.NewReader(strings.NewReader(c.header+"\n"+
			strings.Repeat(string(c.want)+"x", 1)+"\n"), ingest.Options{})
		if err != nil {
			// Only the delimiter is under test; a row of the wrong shape is fine.
			fe, ok := ingest.AsFileError(err)
			require.True(t, ok && fe.Code != ingest.CodeMissingColumns, "%q: %v", c.header, err)
		}
		if r != nil {
			require.Equal(t, string(c.want), string(r.Delimiter()), c.header)
		}
	}
}
