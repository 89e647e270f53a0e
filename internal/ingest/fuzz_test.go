package ingest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

var (
	fileCodes = map[ingest.ErrorCode]bool{
		ingest.CodeNotCSV: true, ingest.CodeEmptyFile: true, ingest.CodeMissingColumns: true,
		ingest.CodeTooManyRows: true, ingest.CodeTooManyColumns: true, ingest.CodeRowTooLarge: true,
	}
	rowReasons = map[ingest.Reason]bool{
		ingest.ReasonInvalidEmail: true, ingest.ReasonMissingFields: true,
		ingest.ReasonInvalidValue: true, ingest.ReasonMalformedRow: true,
	}
	seniorities  = map[string]bool{"ENTRY": true, "SENIOR": true, "MANAGER": true, "DIRECTOR": true, "VP": true, "C_LEVEL": true, "OWNER": true, "UNKNOWN": true}
	companySizes = map[string]bool{"SIZE_1_10": true, "SIZE_11_50": true, "SIZE_51_200": true, "SIZE_201_500": true, "SIZE_501_1000": true, "SIZE_1001_5000": true, "SIZE_5001_PLUS": true, "UNKNOWN": true}
	countryCode  = regexp.MustCompile(`^([A-Z]{2})?$`)
)

// FuzzParse feeds arbitrary bytes through NewReader, Next and Validate: nothing may panic, a file
// either fails with a known code or yields rows that obey the limits, and every row is staged
// with values the leads table accepts or rejected with a known reason. Run it with
// go test -run '^$' -fuzz FuzzParse ./internal/ingest/.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte("email,first_name,last_name,company_name\n\"a@b.co\",\"x\"\"y\",\"l\nm\",c\n"))
	f.Add([]byte("email;first_name;last_name;company_name;seniority;company_size;country;price_credits;phone\n" +
		"a@b.co;A;B;C;VP;51-200;Germany;7;+49 30 1234567\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ingest.NewReader(bytes.NewReader(data), ingest.Options{MaxRows: 50, MaxRowBytes: 16 << 10})
		if err != nil {
			checkFileError(t, err)
			return
		}
		h := r.Header()
		last := 0
		for {
			row, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				checkFileError(t, err)
				if _, again := r.Next(); again != err {
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
				return
			}
			if row.Number <= last || row.Number < 2 {
				t.Fatalf("row number %d after %d", row.Number, last)
			}
			last = row.Number
			if len(row.Values) > ingest.MaxColumns || row.FieldCount < len(row.Values) {
				t.Fatalf("row %d: %d values of %d fields", row.Number, len(row.Values), row.FieldCount)
			}
			for _, v := range row.Values {
				if len(v) > ingest.MaxValueBytes+len("…") || !utf8.ValidString(v) {
					t.Fatalf("row %d: value of %d bytes, valid UTF-8 %v", row.Number, len(v), utf8.ValidString(v))
				}
			}
			staged, rej := ingest.Validate(h, row, ingest.Defaults{})
			if rej != nil {
				checkRejection(t, rej, row)
				continue
			}
			checkStaged(t, staged)
		}
	})
}

func checkFileError(t *testing.T, err error) {
	t.Helper()
	fe, ok := ingest.AsFileError(err)
	if !ok {
		t.Fatalf("not a file error (bytes.Reader cannot fail): %v", err)
	}
	if !fileCodes[fe.Code] || fe.Message == "" {
		t.Fatalf("bad file error %#v", fe)
	}
}

func checkRejection(t *testing.T, rej *ingest.Rejection, row ingest.Row) {
	t.Helper()
	if !rowReasons[rej.Reason] || rej.Detail == "" || rej.RowNumber != row.Number {
		t.Fatalf("bad rejection %#v", rej)
	}
	if rej.Field != "" {
		if _, ok := ingest.ColumnOf(rej.Field); !ok {
			t.Fatalf("rejection names unknown field %q", rej.Field)
		}
	}
}

func checkStaged(t *testing.T, s ingest.StagedRow) {
	t.Helper()
	n := s.Normalized
	switch {
	case !lead.ValidEmail(n.Email):
		t.Fatalf("staged invalid e-mail %q", n.Email)
	case s.FirstName == "" || s.LastName == "" || s.CompanyName == "":
		t.Fatalf("staged without a required field: %#v", s)
	case !seniorities[s.Seniority] || !companySizes[s.CompanySize] || !countryCode.MatchString(s.Country):
		t.Fatalf("staged value outside the enums: %q %q %q", s.Seniority, s.CompanySize, s.Country)
	case s.PriceCredits < 1 || s.PriceCredits > ingest.MaxPriceCredits:
		t.Fatalf("staged price %d", s.PriceCredits)
	case n.HashKey != lead.HashKey(n.Email, n.CompanyDomain, n.PhoneE164):
		t.Fatalf("hash key of %#v", n)
	}
	for _, v := range []string{s.FirstName, s.LastName, s.CompanyName, s.Title, s.Email, s.Phone, s.City} {
		if utf8.RuneCountInString(v) > ingest.MaxFieldChars {
			t.Fatalf("staged a value of %d characters", utf8.RuneCountInString(v))
		}
	}
}
