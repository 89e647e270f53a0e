package ingest

import (
	"fmt"
	"strings"
	"unicode"
)

// countryAliases are English spellings of countries that ISO 3166-1's names (iso3166.go) lack:
// short forms, former names and the constituent countries of the United Kingdom. XK (Kosovo) is
// not in ISO 3166-1, but libphonenumber and most CRMs use it, and the leads table accepts any
// two letters.
var countryAliases = map[string][]string{
	"AE": {"UAE", "U.A.E.", "Emirates"},
	"BA": {"Bosnia"},
	"BN": {"Brunei"},
	"BO": {"Bolivia"},
	"BS": {"The Bahamas"},
	"CD": {"Democratic Republic of the Congo", "DR Congo", "DRC", "Congo-Kinshasa", "Congo (Kinshasa)"},
	"CG": {"Congo-Brazzaville", "Congo (Brazzaville)"},
	"CI": {"Ivory Coast"},
	"CN": {"PRC", "Mainland China"},
	"CV": {"Cape Verde"},
	"CZ": {"Czech Rep."},
	"FK": {"Falkland Islands", "Falklands"},
	"FM": {"Micronesia"},
	"GB": {"UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales", "Northern Ireland"},
	"GM": {"The Gambia"},
	"HK": {"Hong Kong SAR"},
	"IR": {"Iran"},
	"KP": {"Korea, North", "DPRK"},
	"KR": {"Korea, South", "Republic of Korea", "Korea Republic"},
	"LA": {"Lao PDR"},
	"MK": {"Macedonia", "Republic of Macedonia"},
	"MM": {"Burma"},
	"MO": {"Macau"},
	"NL": {"Holland", "The Netherlands"},
	"PS": {"Palestine", "Palestinian Territories"},
	"RU": {"Russia"},
	"SZ": {"Swaziland"},
	"TL": {"East Timor"},
	"TR": {"Turkey"},
	"US": {"U.S.", "U.S.A.", "United States of America"},
	"VA": {"Vatican", "Vatican City", "Holy See"},
	"VG": {"BVI"},
	"VI": {"US Virgin Islands", "U.S. Virgin Islands", "USVI"},
	"XK": {"Kosovo"},
}

var (
	countryByAlpha2 = map[string]bool{}
	countryByAlpha3 = map[string]string{}
	countryByName   = map[string]string{}
)

func init() {
	addName := func(code, name string) {
		k := countryKey(name)
		if prev, dup := countryByName[k]; dup && prev != code {
			panic(fmt.Sprintf("ingest: country name %q is both %s and %s", name, prev, code))
		}
		countryByName[k] = code
	}
	for _, c := range iso3166 {
		countryByAlpha2[c.alpha2] = true
		countryByAlpha3[c.alpha3] = c.alpha2
		for _, n := range c.names {
			addName(c.alpha2, n)
		}
	}
	countryByAlpha2["XK"] = true
	for code, names := range countryAliases {
		if !countryByAlpha2[code] {
			panic("ingest: country alias for unknown code " + code)
		}
		for _, n := range names {
			addName(code, n)
		}
	}
}

// countryStopWords are left out of a name's key, so "Bosnia & Herzegovina" is "Bosnia and
// Herzegovina" and "Netherlands (the)" is "The Netherlands".
var countryStopWords = map[string]bool{"the": true, "and": true, "of": true}

// countryKey is the form country names are compared in: lower case, accents removed, words of
// letters and digits without stop words, "St." read as "Saint".
func countryKey(s string) string {
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	var b strings.Builder
	for _, w := range words {
		if countryStopWords[w] {
			continue
		}
		if w == "st" {
			w = "saint"
		}
		for _, r := range w {
			if f, ok := latinFold[r]; ok {
				b.WriteRune(f)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// latinFold maps the accented letters of English country names ("Curaçao", "Réunion", "Åland",
// "Türkiye", "São Tomé") to their plain letter, so both spellings are read.
var latinFold = func() map[rune]rune {
	m := map[rune]rune{}
	for plain, accented := range map[rune]string{
		'a': "àáâãäåāă", 'c': "çćč", 'e': "èéêëēěę", 'i': "ìíîïīı", 'n': "ñń", 'o': "òóôõöøō",
		'u': "ùúûüūů", 'y': "ýÿ", 's': "śşșš", 't': "ţțť", 'z': "źżž", 'l': "ł", 'g': "ğ", 'r': "ř", 'd': "ď",
	} {
		for _, r := range accented {
			m[r] = plain
		}
	}
	return m
}()

// ParseCountry reads a country as its ISO 3166-1 alpha-2 code: an alpha-2 code ("de", "US"), an
// alpha-3 code ("DEU", "USA") or an English name, official or common, in any case and with or
// without accents ("Germany", "United States of America", "UK", "Côte d'Ivoire", "Ivory Coast").
// It reports false for anything else, including regions and continents ("California", "EU").
func ParseCountry(s string) (string, bool) {
	s = trimValue(s)
	if len(s) == 2 || len(s) == 3 {
		up := strings.ToUpper(s)
		if len(up) == 2 && countryByAlpha2[up] {
			return up, true
		}
		if code, ok := countryByAlpha3[up]; ok && len(up) == 3 {
			return code, true
		}
	}
	code, ok := countryByName[countryKey(s)]
	return code, ok
}
