package ingest

import (
	"math"
	"strconv"
	"strings"
)

// The values of enum CompanySize (schema.graphqls) and of the leads.company_size check.
const (
	CompanySize1To10      = "SIZE_1_10"
	CompanySize11To50     = "SIZE_11_50"
	CompanySize51To200    = "SIZE_51_200"
	CompanySize201To500   = "SIZE_201_500"
	CompanySize501To1000  = "SIZE_501_1000"
	CompanySize1001To5000 = "SIZE_1001_5000"
	CompanySize5001Plus   = "SIZE_5001_PLUS"
	CompanySizeUnknown    = "UNKNOWN"
)

const (
	unbounded    = math.MaxInt64
	maxEmployees = 100_000_000 // more than any employer has; larger numbers are typos
)

var sizeBuckets = []struct {
	lo, hi int64
	name   string
}{
	{1, 10, CompanySize1To10},
	{11, 50, CompanySize11To50},
	{51, 200, CompanySize51To200},
	{201, 500, CompanySize201To500},
	{501, 1000, CompanySize501To1000},
	{1001, 5000, CompanySize1001To5000},
	{5001, unbounded, CompanySize5001Plus},
}

// sizeSuffixes are words after the number that say what is counted.
var sizeSuffixes = []string{"employees", "employee", "people", "staff", "emps", "emp", "ppl"}

// ParseCompanySize maps a company size to enum CompanySize. Empty (or "unknown", "n/a") means
// UNKNOWN; the enum's own names are read in any case. Otherwise the value is a number of
// employees ("10001", "1,500", "2k") or a range: "51-200", "51 to 200", "201–500", "5000+",
// "more than 5000", "under 10", optionally followed by "employees". A number or range maps to
// the bucket that holds it. A range that starts on a bucket's upper bound counts from the next
// number, as data vendors write ranges that way ("1000-5000", "5000+", "200-500"); a range that
// still spans two buckets ("50-249", "1000+") is ambiguous and reports false.
func ParseCompanySize(s string) (string, bool) {
	t := strings.ToLower(trimValue(s))
	switch t {
	case "", "unknown", "n/a", "na", "none", "-":
		return CompanySizeUnknown, true
	}
	if strings.HasPrefix(t, "size_") {
		up := strings.ToUpper(t)
		for _, b := range sizeBuckets {
			if up == b.name {
				return b.name, true
			}
		}
		return "", false
	}
	for _, suf := range sizeSuffixes {
		if rest, ok := strings.CutSuffix(t, suf); ok {
			t = strings.TrimSpace(rest)
			break
		}
	}
	lo, hi, ok := parseSizeRange(t)
	if !ok || lo > hi || hi < 1 {
		return "", false
	}
	if lo < 1 {
		lo = 1
	}
	if lo < hi {
		for _, b := range sizeBuckets {
			if lo == b.hi {
				lo++
				break
			}
		}
	}
	for _, b := range sizeBuckets {
		if lo >= b.lo && lo <= b.hi {
			if hi > b.hi {
				return "", false
			}
			return b.name, true
		}
	}
	return "", false
}

// sizeRangeWords turn "more than 5000" and "5000 or more" into bounds; each entry is the text
// before or after the number and how the number becomes [lo, hi].
var (
	sizePrefixes = []struct {
		text   string
		bounds func(n int64) (int64, int64)
	}{
		{">=", atLeast}, {"≥", atLeast}, {"at least", atLeast}, {"min.", atLeast}, {"min", atLeast},
		{">", moreThan}, {"more than", moreThan}, {"over", moreThan}, {"above", moreThan}, {"greater than", moreThan},
		{"<=", upTo}, {"≤", upTo}, {"up to", upTo}, {"max.", upTo}, {"max", upTo},
		{"<", lessThan}, {"less than", lessThan}, {"fewer than", lessThan}, {"under", lessThan}, {"below", lessThan},
	}
	sizeSuffixBounds = []string{"+", "plus", "or more", "and more", "and above", "and up", "or above"}
	// rangeSeparators are the ways "51-200" is written: dashes of every width, "to", "..".
	rangeSeparators = strings.NewReplacer("–", "-", "—", "-", "−", "-", "‒", "-", " to ", "-", "..", "-")
)

func atLeast(n int64) (int64, int64)  { return n, unbounded }
func moreThan(n int64) (int64, int64) { return n + 1, unbounded }
func upTo(n int64) (int64, int64)     { return 1, n }
func lessThan(n int64) (int64, int64) { return 1, n - 1 }

// parseSizeRange reads a number, a range or an open range of employees.
func parseSizeRange(t string) (lo, hi int64, ok bool) {
	for _, p := range sizePrefixes {
		if rest, found := strings.CutPrefix(t, p.text); found {
			n, ok := parseCount(rest)
			if !ok {
				return 0, 0, false
			}
			lo, hi := p.bounds(n)
			return lo, hi, true
		}
	}
	for _, suf := range sizeSuffixBounds {
		if rest, found := strings.CutSuffix(t, suf); found {
			n, ok := parseCount(rest)
			return n, unbounded, ok
		}
	}
	t = rangeSeparators.Replace(t)
	if a, b, found := strings.Cut(t, "-"); found {
		lo, ok1 := parseCount(a)
		hi, ok2 := parseCount(b)
		return lo, hi, ok1 && ok2
	}
	n, ok := parseCount(t)
	return n, n, ok
}

// parseCount reads a non-negative count of employees: digits, digits in groups of three with a
// thousands separator ("10,001", "10.001", "10 001", "10'001"), or a number with a "k" suffix
// ("2k", "1.5k", "2,5k").
func parseCount(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if k, found := strings.CutSuffix(s, "k"); found {
		k = strings.Replace(strings.TrimSpace(k), ",", ".", 1)
		if k == "" || strings.HasPrefix(k, ".") {
			return 0, false
		}
		for i := 0; i < len(k); i++ {
			if (k[i] < '0' || k[i] > '9') && k[i] != '.' {
				return 0, false
			}
		}
		f, err := strconv.ParseFloat(k, 64)
		n := math.Round(f * 1000)
		if err != nil || math.Abs(n-f*1000) > 1e-6 || n > maxEmployees {
			return 0, false
		}
		return int64(n), true
	}
	digits := s
	if len(s) > 3 {
		if sep := s[len(s)-4]; sep == ',' || sep == '.' || sep == ' ' || sep == '\'' {
			digits = strings.ReplaceAll(s, string(sep), "")
			// Every group after the first must have exactly three digits.
			groups := strings.Split(s, string(sep))
			if len(groups[0]) < 1 || len(groups[0]) > 3 {
				return 0, false
			}
			for _, g := range groups[1:] {
				if len(g) != 3 {
					return 0, false
				}
			}
		}
	}
	if digits == "" || len(digits) > 9 {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, _ := strconv.ParseInt(digits, 10, 64)
	if n > maxEmployees {
		return 0, false
	}
	return n, true
}
