package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// Column is one of the lead fields a file's columns are read into.
type Column int

// The columns a file may have, in the order of the leads table. Their String is the canonical
// header name (the one the README documents and rejections name).
const (
	ColumnEmail Column = iota
	ColumnFirstName
	ColumnLastName
	ColumnCompanyName
	ColumnCompanyDomain
	ColumnPhone
	ColumnLinkedinURL
	ColumnTitle
	ColumnSeniority
	ColumnDepartment
	ColumnCompanySize
	ColumnIndustry
	ColumnCountry
	ColumnRegion
	ColumnCity
	ColumnPriceCredits
	numColumns
)

// columnInfo is a column's canonical name and the header spellings that name it. Spellings are
// compared after headerKey, so "E-mail", "EMAIL" and "e_mail" are one spelling.
var columnInfo = [numColumns]struct {
	name    string
	aliases []string
}{
	ColumnEmail:         {"email", []string{"email", "e-mail", "email address"}},
	ColumnFirstName:     {"first_name", []string{"first_name", "firstname", "first name"}},
	ColumnLastName:      {"last_name", []string{"last_name", "lastname", "surname"}},
	ColumnCompanyName:   {"company_name", []string{"company_name", "company", "organization", "organisation"}},
	ColumnCompanyDomain: {"company_domain", []string{"company_domain", "domain", "website"}},
	ColumnPhone:         {"phone", []string{"phone", "phone number", "mobile"}},
	ColumnLinkedinURL:   {"linkedin_url", []string{"linkedin_url", "linkedin"}},
	ColumnTitle:         {"title", []string{"title", "job title"}},
	ColumnSeniority:     {"seniority", []string{"seniority"}},
	ColumnDepartment:    {"department", []string{"department"}},
	ColumnCompanySize:   {"company_size", []string{"company_size", "employees"}},
	ColumnIndustry:      {"industry", []string{"industry"}},
	ColumnCountry:       {"country", []string{"country"}},
	ColumnRegion:        {"region", []string{"region", "state"}},
	ColumnCity:          {"city", []string{"city"}},
	ColumnPriceCredits:  {"price_credits", []string{"price_credits"}},
}

// RequiredColumns are the columns a file must have: every row needs a value in each, so a file
// without one of them could only be rejected row by row.
var RequiredColumns = []Column{ColumnEmail, ColumnFirstName, ColumnLastName, ColumnCompanyName}

// aliasIndex maps headerKey(alias) to its column.
var aliasIndex = func() map[string]Column {
	m := make(map[string]Column)
	for c := Column(0); c < numColumns; c++ {
		for _, a := range columnInfo[c].aliases {
			k := headerKey(a)
			if prev, dup := m[k]; dup && prev != c {
				panic(fmt.Sprintf("ingest: header alias %q names both %s and %s", a, prev, c))
			}
			m[k] = c
		}
	}
	return m
}()

// String returns the column's canonical header name, such as "first_name".
func (c Column) String() string {
	if c < 0 || c >= numColumns {
		return "column(" + strconv.Itoa(int(c)) + ")"
	}
	return columnInfo[c].name
}

// Aliases returns the header spellings that name c (compared case- and punctuation-insensitively).
func (c Column) Aliases() []string {
	if c < 0 || c >= numColumns {
		return nil
	}
	return append([]string(nil), columnInfo[c].aliases...)
}

// Columns returns every column in table order.
func Columns() []Column {
	cs := make([]Column, numColumns)
	for i := range cs {
		cs[i] = Column(i)
	}
	return cs
}

// headerKey is the form header cells are compared in: lower case, letters and digits only, so
// "E-Mail Address", "email_address" and "EMAIL ADDRESS" are the same header.
func headerKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// ColumnOf returns the column a header cell names, if it names one.
func ColumnOf(headerCell string) (Column, bool) {
	c, ok := aliasIndex[headerKey(headerCell)]
	return c, ok
}

// Header is a file's header row: its cells, the raw keys its values are kept under and where
// each known column is. Build it with NewHeader.
type Header struct {
	// Names are the header cells as in the file, trimmed, in file order.
	Names []string
	// Keys are unique names for the columns, in file order, used as the keys of RawMap: a cell
	// name, "column_N" (N counted from 1) for an empty cell, "name_2", "name_3", ... for a
	// repeated one.
	Keys []string

	cols [numColumns]int // file position of each column, -1 when absent
	at   []Column        // column of each file position, -1 for an unknown one
}

// NewHeader reads a header row. When two cells name the same column the first one is used and
// the later ones are kept in raw like unknown columns. It fails with a *FileError:
// CodeTooManyColumns above MaxColumns cells; CodeNotCSV when the row has no email column but
// looks like data (an e-mail address in it: the file has no header row); CodeMissingColumns
// when a required column is missing, naming every missing one.
func NewHeader(names []string) (*Header, error) {
	if len(names) > MaxColumns {
		return nil, fileErrorf(CodeTooManyColumns, 1,
			"the header row has %d columns; at most %d are accepted", len(names), MaxColumns)
	}
	h := &Header{Names: make([]string, len(names)), Keys: make([]string, len(names)), at: make([]Column, len(names))}
	for i := range h.cols {
		h.cols[i] = -1
	}
	for i, n := range names {
		n = trimValue(n)
		h.Names[i] = n
		h.at[i] = -1
		if c, ok := ColumnOf(n); ok && h.cols[c] < 0 {
			h.cols[c] = i
			h.at[i] = c
		}
	}
	used := make(map[string]bool, len(names))
	for i, n := range h.Names {
		h.Keys[i] = uniqueKey(used, n, i)
	}

	var missing []string
	for _, c := range RequiredColumns {
		if h.cols[c] < 0 {
			missing = append(missing, c.String())
		}
	}
	if len(missing) == 0 {
		return h, nil
	}
	if h.cols[ColumnEmail] < 0 {
		for _, n := range h.Names {
			if lead.ValidEmail(lead.NormalizeEmail(n)) {
				return nil, fileErrorf(CodeNotCSV, 1,
					"the first row holds data (%q), not column names: the file needs a header row such as email,first_name,last_name,company_name",
					clip(n, 80))
			}
		}
	}
	fe := fileErrorf(CodeMissingColumns, 1, "the header row has no column for %s (accepted names: %s)",
		strings.Join(missing, ", "), describeAliases(missing))
	fe.Columns = missing
	return nil, fe
}

// uniqueKey returns name, or a variant of it that is not yet in used, and marks it used.
func uniqueKey(used map[string]bool, name string, index int) string {
	base := name
	if base == "" {
		base = "column_" + strconv.Itoa(index+1)
	}
	key := base
	for n := 2; used[key]; n++ {
		key = base + "_" + strconv.Itoa(n)
	}
	used[key] = true
	return key
}

func describeAliases(names []string) string {
	var parts []string
	for _, n := range names {
		for c := Column(0); c < numColumns; c++ {
			if c.String() == n {
				parts = append(parts, n+": "+strings.Join(columnInfo[c].aliases, " / "))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// Index returns the position of c's column in the file, or -1 when the file has none.
func (h *Header) Index(c Column) int {
	if c < 0 || c >= numColumns {
		return -1
	}
	return h.cols[c]
}

// Has reports whether the file has a column for c.
func (h *Header) Has(c Column) bool { return h.Index(c) >= 0 }

// RawMap returns a row's values keyed by Keys, the form LeadRejection.raw shows. Values beyond
// the header (a malformed row) are kept under "column_N"; cells a row lacks are absent.
func (h *Header) RawMap(values []string) map[string]string {
	m := make(map[string]string, len(values))
	for i, v := range values {
		if i < len(h.Keys) {
			m[h.Keys[i]] = v
			continue
		}
		key := "column_" + strconv.Itoa(i+1)
		for n := 2; ; n++ {
			if _, taken := m[key]; !taken {
				break
			}
			key = "column_" + strconv.Itoa(i+1) + "_" + strconv.Itoa(n)
		}
		m[key] = v
	}
	return m
}

// trimValue removes surrounding white space and invisible format characters (a stray
// byte-order mark, a zero-width space), which make a value look present when it is not.
func trimValue(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) })
}

// clip shortens s to at most n runes for a message, marking the cut.
func clip(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}
