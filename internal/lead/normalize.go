package lead

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Contact is a lead's contact data as a partner supplied it, before normalisation.
type Contact struct {
	// Email is the raw e-mail address.
	Email string
	// CompanyDomain is the raw company website or domain; it may be a URL.
	CompanyDomain string
	// Phone is the raw phone number in any format libphonenumber understands.
	Phone string
	// Country is the row's ISO 3166-1 alpha-2 code, the region for national phone numbers;
	// empty means US.
	Country string
}

// Normalized is a Contact in the form stored in the leads table's normalised columns. Empty
// strings mean "unknown": an unusable phone or an undeterminable company domain.
type Normalized struct {
	// Email is the normalised e-mail (NormalizeEmail).
	Email string
	// CompanyDomain is the normalised company domain (NormalizeDomain).
	CompanyDomain string
	// PhoneE164 is the phone in E.164 form, or empty (NormalizePhone).
	PhoneE164 string
	// HashKey is the dedup key of the three values above (HashKey).
	HashKey string
}

// DefaultPhoneRegion is the region national phone numbers are read in when a row has no country.
const DefaultPhoneRegion = "US"

// freeMailDomains are mailbox providers whose domain says nothing about the lead's company, so
// it is never used as the company domain. Kept in step with ../shared/fixtures/dedup_vectors.json.
var freeMailDomains = map[string]bool{
	"gmail.com":      true,
	"googlemail.com": true,
	"yahoo.com":      true,
	"hotmail.com":    true,
	"outlook.com":    true,
	"live.com":       true,
	"aol.com":        true,
	"icloud.com":     true,
	"proton.me":      true,
	"protonmail.com": true,
	"gmx.com":        true,
	"mail.com":       true,
	"yandex.com":     true,
}

// Normalize returns the normalised form of c and its dedup key. It never fails: values that
// cannot be normalised become empty, and deciding whether the lead is acceptable (ValidEmail)
// is the caller's business.
func Normalize(c Contact) Normalized {
	email := NormalizeEmail(c.Email)
	domain := NormalizeDomain(c.CompanyDomain, email)
	phone := NormalizePhone(c.Phone, c.Country)
	return Normalized{
		Email:         email,
		CompanyDomain: domain,
		PhoneE164:     phone,
		HashKey:       HashKey(email, domain, phone),
	}
}

// trim removes surrounding white space and invisible format characters (a byte-order mark, a
// zero-width space pasted along with an address), which would otherwise make one address two.
func trim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) })
}

// NormalizeEmail trims and lower-cases an e-mail address. Gmail ignores dots and "+tags" in the
// local part and serves googlemail.com as an alias, so for those domains they are removed and the
// domain becomes gmail.com: otherwise one mailbox could be sold as several leads.
func NormalizeEmail(email string) string {
	email = strings.ToLower(trim(email))
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	local, domain := email[:at], email[at+1:]
	if domain != "gmail.com" && domain != "googlemail.com" {
		return email
	}
	local, _, _ = strings.Cut(local, "+")
	local = strings.ReplaceAll(local, ".", "")
	return local + "@gmail.com"
}

// NormalizeDomain reduces a company domain or website URL to a bare host name: trimmed,
// lower-cased, without scheme, user info, path, query, fragment, port, a leading "www." or a
// trailing dot. When nothing is left, the domain of normalizedEmail (already normalised by
// NormalizeEmail) is used unless it is a free-mail domain, which says nothing about the company.
func NormalizeDomain(domain, normalizedEmail string) string {
	d := strings.ToLower(trim(domain))
	if _, rest, ok := strings.Cut(d, "://"); ok {
		d = rest
	} else {
		d = strings.TrimPrefix(d, "//") // scheme-relative URL
	}
	if i := strings.IndexAny(d, "/?#"); i >= 0 {
		d = d[:i]
	}
	// Anything before the last "@" is user info ("user:pass@host") or mailto-style junk.
	if i := strings.LastIndexByte(d, '@'); i >= 0 {
		d = d[i+1:]
	}
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[:i]
	}
	d = strings.TrimRight(d, ".")
	// "www.com" is a company of its own, so "www." goes only when a domain with a dot remains.
	if rest, ok := strings.CutPrefix(d, "www."); ok && strings.Contains(rest, ".") {
		d = rest
	}
	if d != "" {
		return d
	}
	at := strings.LastIndexByte(normalizedEmail, '@')
	if at < 0 {
		return ""
	}
	emailDomain := normalizedEmail[at+1:]
	if IsFreeMailDomain(emailDomain) {
		return ""
	}
	return emailDomain
}

// NormalizePhone returns phone in E.164 form, read with libphonenumber in the region of country
// (ISO 3166-1 alpha-2, DefaultPhoneRegion when empty). It returns "" when the number cannot be
// parsed, is not a possible number, or has more digits than E.164 allows. "Possible" (a
// plausible length for the region) rather than "valid" (an allocated range) is what the shared
// dedup vectors specify: allocations change with every metadata release and lengths rarely, so
// the same row keeps its dedup key across library upgrades.
func NormalizePhone(phone, country string) string {
	phone = strings.TrimSpace(phone)
	if phone == "" {
		return ""
	}
	region := strings.ToUpper(strings.TrimSpace(country))
	if region == "" {
		region = DefaultPhoneRegion
	}
	num, err := phonenumbers.Parse(phone, region)
	// A number possible only for local dialling (a US number without its area code) has no
	// E.164 form: "+1" and seven digits would be a different number, or none.
	if err != nil || phonenumbers.IsPossibleNumberWithReason(num) != phonenumbers.IS_POSSIBLE {
		return ""
	}
	e164 := phonenumbers.Format(num, phonenumbers.E164)
	// Some regions' possible lengths exceed E.164's 15 digits; the leads table would refuse them.
	if !isE164(e164) {
		return ""
	}
	return e164
}

// isE164 reports whether s is "+" and 6 to 15 digits without a leading zero, the form the leads
// table's phone_e164 check accepts.
func isE164(s string) bool {
	digits, ok := strings.CutPrefix(s, "+")
	if !ok || len(digits) < 6 || len(digits) > 15 || digits[0] == '0' {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// HashKey is the lead dedup key: lower-case hex SHA-256 of email|domain|phone, the already
// normalised values. The database's lead_hash_key function computes the same, and a unique index
// on leads.hash_key turns a repeat into an insert error.
func HashKey(email, domain, phone string) string {
	sum := sha256.Sum256([]byte(email + "|" + domain + "|" + phone))
	return hex.EncodeToString(sum[:])
}

// IsFreeMailDomain reports whether domain (lower-case) belongs to a free-mail provider, whose
// domain is not taken as a lead's company domain.
func IsFreeMailDomain(domain string) bool {
	return freeMailDomains[domain]
}

// ValidEmail reports whether a normalised e-mail looks deliverable enough to accept: one "@", a
// non-empty local part, a domain with an inner dot, no white space or control characters, valid
// UTF-8 and at most 254 bytes. It is deliberately loose; the verification providers decide
// whether the mailbox exists.
func ValidEmail(normalized string) bool {
	if normalized == "" || len(normalized) > 254 || !utf8.ValidString(normalized) {
		return false
	}
	local, domain, ok := strings.Cut(normalized, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return false
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") ||
		strings.Contains(domain, "..") {
		return false
	}
	for _, r := range normalized {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}
