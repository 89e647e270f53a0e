// Package ingesttest writes realistic partner CSV files for tests and benchmarks of lead
// ingestion: any number of rows, streamed to an io.Writer, with chosen fractions of rows that
// repeat an earlier row of the same file, rows that Validate rejects, and rows copied from an
// earlier generated file. Nothing is kept in memory per row: a lead is a pure function of its
// set's seed and its index, so an earlier file's leads are regenerated rather than remembered.
package ingesttest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/leadmarket/leadmarket/internal/ingest"
)

// Set names the unique leads of a generated file, so that a later file can copy some of them
// (Options.Previous). Lead k of a set is the same on every call.
type Set struct {
	// Seed is the file's Options.Seed.
	Seed uint64
	// Unique is how many unique leads the file has: leads 0 to Unique-1.
	Unique int
}

// Options describe a file to generate.
type Options struct {
	// Rows is the number of data rows (the header is extra).
	Rows int
	// Seed makes the file reproducible; files with different seeds share no lead unless one
	// copies from the other.
	Seed uint64
	// DuplicateFraction of the rows repeat an earlier unique row of this file: the same
	// hash_key, written differently (case, spaces, "www.", the phone's format), so dedup sees
	// them only after normalisation. They are DUPLICATE_IN_FILE.
	DuplicateFraction float64
	// InvalidFraction of the rows are rejected by ingest.Validate, cycling through its reasons.
	InvalidFraction float64
	// CopyFraction of the rows are leads of Previous, each copied once and written differently.
	// They are DUPLICATE_SAME_PARTNER or DUPLICATE_CROSS_PARTNER, depending on who uploaded
	// Previous. Generate fails when Previous has fewer unique leads than the copies need.
	CopyFraction float64
	// Previous is the earlier file copies are taken from.
	Previous Set
	// Delimiter separates fields; default ','.
	Delimiter rune
}

// Result says what a generated file holds, so a test can check an upload's counts.
type Result struct {
	// Set names this file's unique leads, for a later file's Options.Previous.
	Set Set
	// Rows is the number of data rows written.
	Rows int
	// Duplicates is the number of rows repeating an earlier row of the file.
	Duplicates int
	// Copied is the number of rows copied from Options.Previous.
	Copied int
	// Invalid counts the rows Validate rejects, by reason.
	Invalid map[ingest.Reason]int
}

// Header is the generated files' header row.
var Header = []string{"email", "first_name", "last_name", "title", "seniority", "department", "company_name",
	"company_domain", "company_size", "industry", "phone", "linkedin_url", "country", "region", "city",
	"price_credits", "notes"}

// Generate writes a CSV file of o.Rows rows to w, buffered; it holds no row beyond the one it
// writes. The fractions are met to within a row or two: rows of each kind are spread evenly
// over the file.
func Generate(w io.Writer, o Options) (Result, error) {
	if o.Rows < 0 || o.DuplicateFraction < 0 || o.InvalidFraction < 0 || o.CopyFraction < 0 ||
		o.DuplicateFraction+o.InvalidFraction+o.CopyFraction > 1 {
		return Result{}, errors.New("ingesttest: rows and fractions must be positive, the fractions at most 1 together")
	}
	copies := int(o.CopyFraction * float64(o.Rows))
	if copies > 0 && copies > o.Previous.Unique {
		return Result{}, fmt.Errorf("ingesttest: %d copies wanted, the previous set has %d leads", copies, o.Previous.Unique)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if o.Delimiter != 0 {
		cw.Comma = o.Delimiter
	}
	res := Result{Set: Set{Seed: o.Seed}, Invalid: map[ingest.Reason]int{}}
	if err := cw.Write(Header); err != nil {
		return res, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x1e4d))
	stride := coprimeStride(o.Previous.Unique)
	invalid := 0
	record := make([]string, len(Header))
	for i := range o.Rows {
		due := func(f float64, done int) bool { return done < int(f*float64(i+1)) }
		var l lead
		switch {
		case due(o.InvalidFraction, invalid):
			l = newLead(o.Seed^0x9e3779b97f4a7c15, invalid) // its own set: never a duplicate
			reason := l.spoil(invalid)
			res.Invalid[reason]++
			invalid++
		case due(o.DuplicateFraction, res.Duplicates) && res.Set.Unique > 0:
			l = newLead(o.Seed, rng.IntN(res.Set.Unique))
			l.restyle(rng)
			res.Duplicates++
		case due(o.CopyFraction, res.Copied) && res.Copied < o.Previous.Unique:
			l = newLead(o.Previous.Seed, int((int64(res.Copied)*int64(stride))%int64(o.Previous.Unique)))
			l.restyle(rng)
			res.Copied++
		default:
			l = newLead(o.Seed, res.Set.Unique)
			res.Set.Unique++
		}
		if err := cw.Write(l.record(record)); err != nil {
			return res, err
		}
		res.Rows++
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return res, err
	}
	return res, bw.Flush()
}

// coprimeStride returns a step near n×0.618 that shares no factor with n, so that copy c takes
// lead c×step mod n: every lead once before any repeats, spread over the earlier file.
func coprimeStride(n int) int {
	if n < 2 {
		return 1
	}
	s := max(1, int(float64(n)*0.6180339887))
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// lead is one generated row's values.
type lead struct {
	email, first, last, title, seniority, department, company, domain, size, industry string
	phone, linkedin, country, region, city, price, notes                              string

	place       int    // index in places
	phoneDigits string // the subscriber digits of phone, or empty for no phone
	extra       bool   // one field too many
}

type place struct {
	country []string // spellings of the country, all read as the same code
	region  string
	city    string
	phones  []string // formats of one number: %s is the subscriber's last digits
	digits  int      // how many digits %s stands for
}

var (
	firstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
		"Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos",
		"Sofía", "Lukas", "Anna", "Léa", "Hugo", "Emma", "Noah", "Mia", "Luca", "Chloé", "Oliver", "Zoë", "Jürgen",
		"Aoife", "Mateo", "Priya", "Wei", "Yuki", "Fatima", "Omar", "Ingrid"}
	lastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
		"Martinez", "Müller", "Schmidt", "Schneider", "Fischer", "Dubois", "Martin", "Bernard", "O'Brien", "Murphy",
		"Rossi", "Bianchi", "van der Berg", "de Vries", "Kowalski", "Nowak", "Andersson", "Nielsen", "Tanaka",
		"Patel", "Chen", "Kim", "Nguyen", "Silva", "Santos", "Haddad", "Cohen", "Ivanova", "Lopez", "Walker", "Young"}
	companyWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay",
		"Soylent", "Cyberdyne", "Tyrell", "Nakatomi", "Oscorp", "Gringotts", "Monarch", "Aperture", "Black Mesa",
		"Pied Piper", "Dunder Mifflin", "Prestige", "Sterling", "Bluth", "Wernham", "Massive Dynamic", "Virtucon"}
	companyKinds = []string{"Logistics", "Analytics", "Software", "Health", "Foods", "Energy", "Capital", "Labs",
		"Systems", "Media", "Robotics", "Partners", "Retail", "Bio", "Security", "Cloud"}
	companyForms = []string{"", "", " Inc.", " LLC", " GmbH", ", Inc.", " Ltd", " SA", " BV"}
	tlds         = []string{".com", ".com", ".com", ".io", ".co", ".net", ".de", ".co.uk", ".fr"}
	industries   = []string{"Software", "Logistics", "Healthcare", "Financial Services", "Manufacturing", "Retail",
		"Energy", "Media", "Education", "Telecommunications"}
	// titles pair a title with ways a CRM writes its seniority, all read as one level.
	titles = []struct {
		title, department string
		seniority         []string
	}{
		{"Chief Executive Officer", "Executive", []string{"C-level", "C_LEVEL", "CEO", ""}},
		{"Chief Technology Officer", "Engineering", []string{"C-Suite", "c_level", "CXO"}},
		{"VP Sales", "Sales", []string{"VP", "Vice President", "VP Sales"}},
		{"Vice President of Marketing", "Marketing", []string{"VP", "vp", ""}},
		{"Director of Engineering", "Engineering", []string{"Director", "DIRECTOR", "Director of Engineering"}},
		{"Sales Director", "Sales", []string{"director", "Sr. Director"}},
		{"Marketing Manager", "Marketing", []string{"Manager", "manager", ""}},
		{"Head of Operations", "Operations", []string{"", "Director"}},
		{"Senior Software Engineer", "Engineering", []string{"Senior", "Sr", ""}},
		{"Account Executive", "Sales", []string{"Entry", "Junior", "entry level"}},
		{"Founder", "Executive", []string{"Owner", "Founder", "Founder & CEO"}},
		{"Procurement Specialist", "Procurement", []string{"", "Senior"}},
	}
	sizes  = []string{"1-10", "11-50", "11-50", "51-200", "51-200", "51 to 200", "201-500", "201–500", "501-1000", "1,001-5,000", "5000+", "10001", ""}
	places = []place{
		{[]string{"US", "United States", "USA"}, "CA", "San Francisco", []string{"(415) 555-%s", "+1 415 555 %s", "415.555.%s"}, 4},
		{[]string{"US", "United States", "us"}, "NY", "New York", []string{"(212) 555-%s", "+1 212-555-%s"}, 4},
		{[]string{"US", "U.S.A."}, "TX", "Austin", []string{"(512) 555-%s", "+1 512 555 %s"}, 4},
		{[]string{"GB", "United Kingdom", "UK"}, "England", "London", []string{"020 7946 %s", "+44 20 7946 %s"}, 4},
		{[]string{"DE", "Germany", "DEU"}, "Berlin", "Berlin", []string{"030 123%s", "+49 30 123%s"}, 4},
		{[]string{"FR", "France"}, "Île-de-France", "Paris", []string{"01 42 %s", "+33 1 42 %s"}, 6},
		{[]string{"NL", "Netherlands", "The Netherlands"}, "North Holland", "Amsterdam", []string{"020 55%s", "+31 20 55%s"}, 5},
		{[]string{"CA", "Canada"}, "ON", "Toronto", []string{"(416) 555-%s", "+1 416 555 %s"}, 4},
		{[]string{"ES", "Spain"}, "Madrid", "Madrid", []string{"91 55%s", "+34 91 55%s"}, 5},
		{[]string{"AU", "Australia"}, "NSW", "Sydney", []string{"(02) 95%s", "+61 2 95%s"}, 6},
	}
)

// newLead returns lead k of the set with the given seed, in its first spelling.
func newLead(seed uint64, k int) lead {
	r := rand.New(rand.NewPCG(seed, uint64(k)))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	first, last := pick(firstNames), pick(lastNames)
	word, kind := pick(companyWords), pick(companyKinds)
	company := word + " " + kind + pick(companyForms)
	domain := strings.ToLower(strings.ReplaceAll(word+"-"+kind, " ", "")) + pick(tlds)
	local := strings.ToLower(asciiName(first) + "." + asciiName(last))
	// The index and seed after "_" make the address unique even once Gmail's dots are removed.
	local += "_" + strconv.FormatInt(int64(k), 36) + "_" + strconv.FormatUint(seed, 36)
	emailDomain := domain
	if r.IntN(10) == 0 {
		emailDomain = "gmail.com"
	}
	t := titles[r.IntN(len(titles))]
	pi := r.IntN(len(places))
	p := places[pi]
	l := lead{
		place:      pi,
		email:      local + "@" + emailDomain,
		first:      first,
		last:       last,
		title:      t.title,
		seniority:  t.seniority[r.IntN(len(t.seniority))],
		department: t.department,
		company:    company,
		domain:     domain,
		size:       pick(sizes),
		industry:   pick(industries),
		country:    p.country[0],
		region:     p.region,
		city:       p.city,
		price:      strconv.Itoa(1 + int(r.ExpFloat64()*6)%50),
		linkedin:   "https://www.linkedin.com/in/" + strings.ToLower(asciiName(first)+"-"+asciiName(last)) + "-" + strconv.FormatInt(int64(k), 36),
	}
	if r.IntN(8) > 0 {
		l.phoneDigits = fmt.Sprintf("%0*d", p.digits, r.IntN(pow10(p.digits)))
		l.phone = fmt.Sprintf(p.phones[0], l.phoneDigits)
	}
	if r.IntN(5) == 0 {
		l.price = ""
	}
	switch r.IntN(50) {
	case 0:
		l.notes = "Met at \"SaaStr\", asked for:\n- pricing\n- a demo, next quarter"
	case 1:
		l.notes = "=HYPERLINK(\"http://example.com\",\"x\")"
	case 2:
		l.notes = "prefers e-mail; no calls"
	}
	return l
}

// restyle writes the same lead differently: what dedup must see through after normalisation.
func (l *lead) restyle(r *rand.Rand) {
	switch r.IntN(3) {
	case 0:
		l.email = strings.ToUpper(l.email)
	case 1:
		l.email = "  " + l.email + " "
	case 2:
		if local, domain, _ := strings.Cut(l.email, "@"); domain == "gmail.com" {
			l.email = strings.ReplaceAll(local, "_", "_.") + "+crm@googlemail.com"
		} else {
			l.email = strings.ToUpper(local[:1]) + local[1:] + "@" + strings.ToUpper(domain)
		}
	}
	switch r.IntN(3) {
	case 0:
		l.domain = "https://www." + l.domain + "/"
	case 1:
		l.domain = "WWW." + strings.ToUpper(l.domain)
	}
	p := places[l.place]
	l.country = p.country[r.IntN(len(p.country))]
	if l.phoneDigits != "" {
		l.phone = fmt.Sprintf(p.phones[r.IntN(len(p.phones))], l.phoneDigits)
	}
	l.first = strings.ToUpper(l.first)
}

// spoil makes the lead fail Validate with the n'th reason of a cycle and returns the reason.
func (l *lead) spoil(n int) ingest.Reason {
	switch n % 8 {
	case 0:
		l.email = strings.Replace(l.email, "@", " at ", 1)
		return ingest.ReasonInvalidEmail
	case 1:
		l.first = ""
		return ingest.ReasonMissingFields
	case 2:
		l.seniority = "Wizard"
		return ingest.ReasonInvalidValue
	case 3:
		l.country = "Atlantis"
		return ingest.ReasonInvalidValue
	case 4:
		l.price = "-3"
		return ingest.ReasonInvalidValue
	case 5:
		l.extra = true
		return ingest.ReasonMalformedRow
	case 6:
		l.company = " "
		return ingest.ReasonMissingFields
	default:
		l.size = "50-249"
		return ingest.ReasonInvalidValue
	}
}

// record fills buf (len(Header)) with the lead's values in Header order.
func (l *lead) record(buf []string) []string {
	buf = append(buf[:0], l.email, l.first, l.last, l.title, l.seniority, l.department, l.company, l.domain,
		l.size, l.industry, l.phone, l.linkedin, l.country, l.region, l.city, l.price, l.notes)
	if l.extra {
		buf = append(buf, "unexpected")
	}
	return buf
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// asciiName is a name as it appears in an e-mail address: letters only, accents removed.
func asciiName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case strings.ContainsRune("áàâäã", r):
			b.WriteByte('a')
		case strings.ContainsRune("éèêë", r):
			b.WriteByte('e')
		case strings.ContainsRune("íìîï", r):
			b.WriteByte('i')
		case strings.ContainsRune("óòôöõ", r):
			b.WriteByte('o')
		case strings.ContainsRune("úùûü", r):
			b.WriteByte('u')
		}
	}
	return b.String()
}
