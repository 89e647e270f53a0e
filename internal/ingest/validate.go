package ingest

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// DefaultPriceCredits is the price of a lead whose row has no price_credits and whose upload
// sets no defaultPriceCredits.
const DefaultPriceCredits = 5

// MaxPriceCredits is the highest price_credits accepted: the leads table's integer column.
const MaxPriceCredits = math.MaxInt32

// Defaults are an upload's values for rows that leave a column empty. Build them with
// NewDefaults; the zero value means DefaultPriceCredits and no country.
type Defaults struct {
	// PriceCredits applies where a row has no price_credits; 0 means DefaultPriceCredits.
	PriceCredits int
	// Country (ISO 3166-1 alpha-2, or empty) applies where a row has no country. It is also the
	// region such a row's national phone numbers are read in.
	Country string
}

// NewDefaults checks an upload's defaultPriceCredits and defaultCountry (nil: not given) and
// returns them as Defaults, the country as its alpha-2 code (English names are read as in rows).
// It fails with an apperr.InvalidInput error naming the argument.
func NewDefaults(priceCredits *int, country *string) (Defaults, error) {
	d := Defaults{PriceCredits: DefaultPriceCredits}
	if priceCredits != nil {
		if *priceCredits < 1 || *priceCredits > MaxPriceCredits {
			return Defaults{}, apperr.New(apperr.InvalidInput,
				"defaultPriceCredits must be a whole number from 1 to %d", MaxPriceCredits).
				With("field", "defaultPriceCredits")
		}
		d.PriceCredits = *priceCredits
	}
	if country != nil && trimValue(*country) != "" {
		code, ok := ParseCountry(*country)
		if !ok {
			return Defaults{}, apperr.New(apperr.InvalidInput,
				"defaultCountry %q is not an ISO 3166-1 country code or English country name", clip(*country, 60)).
				With("field", "defaultCountry")
		}
		d.Country = code
	}
	return d, nil
}

// StagedRow is a row that passed validation, in the form of the leads table's columns: ready for
// dedup by HashKey. Text values are trimmed; empty means unknown.
type StagedRow struct {
	// RowNumber is the row's spreadsheet row number (Row.Number).
	RowNumber     int
	Email         string // as supplied (trimmed); Normalized.Email is the normalised form
	FirstName     string
	LastName      string
	Title         string
	Seniority     string // one of enum Seniority, "UNKNOWN" when the row has none
	Department    string
	CompanyName   string
	CompanyDomain string // as supplied; Normalized.CompanyDomain is the normalised form
	CompanySize   string // one of enum CompanySize, "UNKNOWN" when the row has none
	Industry      string
	Country       string // ISO 3166-1 alpha-2: the row's, else Defaults.Country, else empty
	Region        string
	City          string
	Phone         string // as supplied; Normalized.PhoneE164 is empty when it is not a usable number
	LinkedinURL   string
	PriceCredits  int // the row's, else Defaults.PriceCredits
	// Normalized holds the normalised e-mail, domain, E.164 phone and the dedup key, computed by
	// lead.Normalize.
	Normalized lead.Normalized
	// Raw is the row's values as read (Row.Values), for a rejection the dedup may still make.
	Raw []string
}

// Rejection is a row that is not accepted, with what LeadRejection shows of it.
type Rejection struct {
	// RowNumber is the row's spreadsheet row number.
	RowNumber int
	// Reason classifies the rejection.
	Reason Reason
	// Field is the canonical column name the rejection is about, or empty (MALFORMED_ROW).
	Field string
	// Detail says, for the partner, what is wrong; it is never empty.
	Detail string
	// Raw is the row's values as read (Row.Values); Header.RawMap keys them.
	Raw []string
}

// Validate checks one row against the header and maps it to a StagedRow, or says why it is
// rejected. Checks run in this order and the first failure is the row's reason:
//   - MALFORMED_ROW: the row is not valid CSV, or has another number of fields than the header;
//   - INVALID_VALUE: a known column's value is longer than MaxFieldChars characters;
//   - MISSING_FIELDS: email, first_name, last_name or company_name is empty (Field is the first
//     one missing, Detail lists all);
//   - INVALID_EMAIL: the e-mail, normalised, is not lead.ValidEmail;
//   - INVALID_VALUE: seniority (ParseSeniority), company_size (ParseCompanySize), country
//     (ParseCountry) or price_credits (ParsePriceCredits) cannot be read.
//
// A row without a seniority takes the one its title says plainly ("VP Sales", "CEO"), else
// UNKNOWN. Unknown columns are neither checked nor stored; they stay in Raw. A phone that is not
// a usable number does not reject the row: the lead keeps it as supplied, without an E.164 form.
func Validate(h *Header, row Row, d Defaults) (StagedRow, *Rejection) {
	reject := func(reason Reason, c Column, format string, args ...any) (StagedRow, *Rejection) {
		field := ""
		if c >= 0 {
			field = c.String()
		}
		return StagedRow{}, &Rejection{RowNumber: row.Number, Reason: reason, Field: field,
			Detail: fmt.Sprintf(format, args...), Raw: row.Values}
	}
	if row.Malformed != "" {
		return reject(ReasonMalformedRow, -1, "the row is not valid CSV: %s", row.Malformed)
	}
	if row.FieldCount != len(h.Names) {
		return reject(ReasonMalformedRow, -1, "the row has %d fields, the header has %d", row.FieldCount, len(h.Names))
	}

	var v [numColumns]string
	for c := Column(0); c < numColumns; c++ {
		if i := h.cols[c]; i >= 0 && i < len(row.Values) {
			v[c] = trimValue(row.Values[i])
		}
	}
	// In file order, so the first long value the partner sees in the row is the one named.
	for _, c := range h.at {
		if c >= 0 && len(v[c]) > MaxFieldChars && utf8.RuneCountInString(v[c]) > MaxFieldChars {
			return reject(ReasonInvalidValue, c, "%s is longer than %d characters", c, MaxFieldChars)
		}
	}

	var missing []string
	first := Column(-1)
	for _, c := range RequiredColumns {
		if v[c] == "" {
			missing = append(missing, c.String())
			if first < 0 {
				first = c
			}
		}
	}
	if len(missing) > 0 {
		return reject(ReasonMissingFields, first, "missing %s", strings.Join(missing, ", "))
	}
	email := lead.NormalizeEmail(v[ColumnEmail])
	if !lead.ValidEmail(email) {
		return reject(ReasonInvalidEmail, ColumnEmail, "%q is not a valid e-mail address", clip(v[ColumnEmail], 100))
	}

	seniority, ok := ParseSeniority(v[ColumnSeniority])
	if !ok {
		return reject(ReasonInvalidValue, ColumnSeniority,
			"seniority %q is not one of ENTRY, SENIOR, MANAGER, DIRECTOR, VP, C_LEVEL, OWNER, UNKNOWN, nor a title that says one of them",
			clip(v[ColumnSeniority], 100))
	}
	if v[ColumnSeniority] == "" && v[ColumnTitle] != "" {
		// Buyers filter by seniority; a title that says it plainly fills it in, and one that does
		// not ("Head of Sales") leaves it UNKNOWN rather than rejecting the row.
		if fromTitle, ok := ParseSeniority(v[ColumnTitle]); ok {
			seniority = fromTitle
		}
	}
	size, ok := ParseCompanySize(v[ColumnCompanySize])
	if !ok {
		return reject(ReasonInvalidValue, ColumnCompanySize,
			"company_size %q is not a number of employees or a range within one of 1-10, 11-50, 51-200, 201-500, 501-1000, 1001-5000, 5001+",
			clip(v[ColumnCompanySize], 100))
	}
	country := d.Country
	if v[ColumnCountry] != "" {
		if country, ok = ParseCountry(v[ColumnCountry]); !ok {
			return reject(ReasonInvalidValue, ColumnCountry,
				"country %q is not an ISO 3166-1 country code or English country name", clip(v[ColumnCountry], 100))
		}
	}
	price := d.PriceCredits
	if price <= 0 {
		price = DefaultPriceCredits
	}
	if v[ColumnPriceCredits] != "" {
		if price, ok = ParsePriceCredits(v[ColumnPriceCredits]); !ok {
			return reject(ReasonInvalidValue, ColumnPriceCredits,
				"price_credits %q is not a whole number from 1 to %d", clip(v[ColumnPriceCredits], 100), MaxPriceCredits)
		}
	}

	return StagedRow{
		RowNumber:     row.Number,
		Email:         v[ColumnEmail],
		FirstName:     v[ColumnFirstName],
		LastName:      v[ColumnLastName],
		Title:         v[ColumnTitle],
		Seniority:     seniority,
		Department:    v[ColumnDepartment],
		CompanyName:   v[ColumnCompanyName],
		CompanyDomain: v[ColumnCompanyDomain],
		CompanySize:   size,
		Industry:      v[ColumnIndustry],
		Country:       country,
		Region:        v[ColumnRegion],
		City:          v[ColumnCity],
		Phone:         v[ColumnPhone],
		LinkedinURL:   v[ColumnLinkedinURL],
		PriceCredits:  price,
		Normalized: lead.Normalize(lead.Contact{
			Email:         v[ColumnEmail],
			CompanyDomain: v[ColumnCompanyDomain],
			Phone:         v[ColumnPhone],
			Country:       country,
		}),
		Raw: row.Values,
	}, nil
}

// ParsePriceCredits reads a price in credits: a whole number from 1 to MaxPriceCredits, written
// with digits only, or with a zero fraction of one or two digits ("5.0", "5.00", as spreadsheets
// export a number formatted with decimals). Thousands separators are refused: "1,000" and
// "1.000" mean 1 or 1000 depending on the locale.
func ParsePriceCredits(s string) (int, bool) {
	s = trimValue(s)
	if whole, frac, ok := strings.Cut(s, "."); ok {
		if frac != "0" && frac != "00" {
			return 0, false
		}
		s = whole
	}
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 || n > MaxPriceCredits {
		return 0, false
	}
	return int(n), true
}
