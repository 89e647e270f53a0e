package seed

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"golang.org/x/sync/errgroup"

	"github.com/leadmarket/leadmarket/internal/lead"
)

// leadBatch is how many leads one INSERT writes: small enough to log progress often and to keep
// two cores busy on 100,000 leads, large enough that a statement's overhead does not count.
const leadBatch = 50_000

// leadEpoch is the creation time of the newest demo lead; the others go back up to leadSpread
// from it. It is fixed so that the same leads come out on every run.
var leadEpoch = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// leadSpreadSeconds is 90 days. Lead i is created (i × 7919) mod leadSpreadSeconds seconds before
// leadEpoch; 7919 is prime to the spread, so the first 7,776,000 leads all differ in time.
const leadSpreadSeconds = 90 * 24 * 60 * 60

// LeadID returns the id of demo lead i (1-based).
func LeadID(i int) string { return stableID("lead", strconv.Itoa(i)) }

var (
	firstNames = []string{"James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
		"David", "Elizabeth", "William", "Barbara", "Sofia", "Lukas", "Emma", "Noah", "Olivia", "Liam",
		"Chloe", "Hugo", "Priya", "Arjun", "Freja", "Oscar"}
	lastNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
		"Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Muller", "Schmidt",
		"Dubois", "Bernard", "Jansen", "Nilsson", "Patel", "Sharma", "Lopez"}
	// companyPrefixes × companySuffixes make the demo companies; a suffix decides the industry.
	companyPrefixes = []string{"Apex", "Blue", "Bright", "Cedar", "Cobalt", "Crimson", "Delta", "Evergreen",
		"Falcon", "Granite", "Harbor", "Iron", "Juniper", "Keystone", "Lumen", "Maple", "Nimbus", "Orion",
		"Pioneer", "Quantum", "Redwood", "Summit", "Titan", "Vertex", "Zenith"}
	companySuffixes = []struct{ name, industry string }{
		{"Software", "Software"}, {"Systems", "Software"},
		{"Pay", "Fintech"}, {"Capital", "Fintech"},
		{"Health", "Healthcare"}, {"Care", "Healthcare"},
		{"Retail", "Retail"}, {"Stores", "Retail"},
		{"Manufacturing", "Manufacturing"}, {"Industries", "Manufacturing"},
		{"Logistics", "Logistics"}, {"Freight", "Logistics"},
		{"Learning", "Education"}, {"Academy", "Education"},
		{"Media", "Media"}, {"Studios", "Media"},
		{"Energy", "Energy"}, {"Power", "Energy"},
		{"Properties", "Real Estate"}, {"Realty", "Real Estate"},
		{"Telecom", "Telecom"}, {"Networks", "Telecom"},
		{"Insurance", "Insurance"}, {"Assurance", "Insurance"},
	}
	// companySizes is weighted toward small and mid-sized companies; a company keeps its size.
	companySizes = []string{"SIZE_1_10", "SIZE_11_50", "SIZE_11_50", "SIZE_51_200", "SIZE_51_200",
		"SIZE_201_500", "SIZE_201_500", "SIZE_501_1000", "SIZE_1001_5000", "SIZE_5001_PLUS", "UNKNOWN"}
	titles = []struct {
		name, seniority, department string
		weight                      int
	}{
		{"Chief Executive Officer", "C_LEVEL", "Executive", 1},
		{"Chief Technology Officer", "C_LEVEL", "Engineering", 1},
		{"Chief Marketing Officer", "C_LEVEL", "Marketing", 1},
		{"Chief Financial Officer", "C_LEVEL", "Finance", 1},
		{"Founder", "OWNER", "Executive", 1},
		{"Co-Founder & CEO", "OWNER", "Executive", 1},
		{"VP of Sales", "VP", "Sales", 2},
		{"VP of Engineering", "VP", "Engineering", 2},
		{"VP of Marketing", "VP", "Marketing", 2},
		{"Director of Operations", "DIRECTOR", "Operations", 2},
		{"Director of IT", "DIRECTOR", "IT", 2},
		{"Head of Marketing", "DIRECTOR", "Marketing", 2},
		{"Head of Growth", "DIRECTOR", "Marketing", 2},
		{"Sales Manager", "MANAGER", "Sales", 3},
		{"Engineering Manager", "MANAGER", "Engineering", 3},
		{"Product Manager", "MANAGER", "Product", 3},
		{"HR Manager", "MANAGER", "Human Resources", 2},
		{"Senior Software Engineer", "SENIOR", "Engineering", 3},
		{"Senior Account Executive", "SENIOR", "Sales", 3},
		{"Software Engineer", "ENTRY", "Engineering", 3},
		{"Sales Development Representative", "ENTRY", "Sales", 3},
		{"Marketing Coordinator", "ENTRY", "Marketing", 2},
		{"Financial Analyst", "ENTRY", "Finance", 2},
		{"Consultant", "UNKNOWN", "", 1},
	}
	// locations carry the E.164 prefix (country code and an area code) of their phone numbers.
	locations = []struct{ country, region, city, phonePrefix string }{
		{"US", "California", "San Francisco", "+1415"},
		{"US", "New York", "New York", "+1212"},
		{"US", "Texas", "Austin", "+1512"},
		{"US", "Illinois", "Chicago", "+1312"},
		{"US", "Massachusetts", "Boston", "+1617"},
		{"US", "Washington", "Seattle", "+1206"},
		{"GB", "England", "London", "+4420"},
		{"GB", "England", "Manchester", "+44161"},
		{"DE", "Berlin", "Berlin", "+4930"},
		{"DE", "Bavaria", "Munich", "+4989"},
		{"FR", "Île-de-France", "Paris", "+331"},
		{"FR", "Auvergne-Rhône-Alpes", "Lyon", "+334"},
		{"NL", "North Holland", "Amsterdam", "+3120"},
		{"CA", "Ontario", "Toronto", "+1416"},
		{"CA", "British Columbia", "Vancouver", "+1604"},
		{"AU", "New South Wales", "Sydney", "+612"},
		{"AU", "Victoria", "Melbourne", "+613"},
		{"ES", "Community of Madrid", "Madrid", "+3491"},
		{"ES", "Catalonia", "Barcelona", "+3493"},
		{"SE", "Stockholm County", "Stockholm", "+468"},
		{"IN", "Karnataka", "Bengaluru", "+9180"},
		{"IN", "Maharashtra", "Mumbai", "+9122"},
	}
)

// demoPartnerIDs are the ids of demoPartners, in their order.
func demoPartnerIDs() []string {
	ids := make([]string, len(demoPartners))
	for p, dp := range demoPartners {
		ids[p] = stableID("partner", dp.slug)
	}
	return ids
}

// leadArrays are the lists the lead INSERT picks from, as SQL array arguments in the order of the
// placeholders of demoLeadsSQL that follow the ids.
func leadArrays() []any {
	var partnerIdx []int
	var verificationCuts []int
	for p, dp := range demoPartners {
		for range dp.leadWeight {
			partnerIdx = append(partnerIdx, p)
		}
		cum := 0
		for _, perMille := range dp.verification[:5] {
			cum += perMille
			verificationCuts = append(verificationCuts, cum)
		}
	}
	var suffixes, industries []string
	for _, s := range companySuffixes {
		suffixes = append(suffixes, s.name)
		industries = append(industries, s.industry)
	}
	var titleNames, seniorities, departments []string
	for _, t := range titles {
		for range t.weight {
			titleNames = append(titleNames, t.name)
			seniorities = append(seniorities, t.seniority)
			departments = append(departments, t.department)
		}
	}
	var countries, regions, cities, phonePrefixes []string
	for _, l := range locations {
		countries = append(countries, l.country)
		regions = append(regions, l.region)
		cities = append(cities, l.city)
		phonePrefixes = append(phonePrefixes, l.phonePrefix)
	}
	return []any{
		pgdialect.Array(demoPartnerIDs()), pgdialect.Array(partnerIdx), pgdialect.Array(verificationCuts),
		pgdialect.Array(verificationStatuses),
		pgdialect.Array(firstNames), pgdialect.Array(lastNames),
		pgdialect.Array(companyPrefixes), pgdialect.Array(suffixes), pgdialect.Array(industries),
		pgdialect.Array(companySizes),
		pgdialect.Array(titleNames), pgdialect.Array(seniorities), pgdialect.Array(departments),
		pgdialect.Array(countries), pgdialect.Array(regions), pgdialect.Array(cities), pgdialect.Array(phonePrefixes),
	}
}

// demoLeadsSQL selects the leads whose ids are given, numbered from a first number on, as the rows
// of lead.InsertFrom (lead.InsertColumns). Every column is a function of the lead's number i:
// x1..x5 are steps of a Lehmer generator modulo the prime 2^31-1 seeded with i (no hashing that
// could differ between PostgreSQL builds), and each column picks from a list with one of them.
// hash_key is left to the leads_hash_key trigger.
//
// Placeholders: epoch and spread, first number, ids, then leadArrays.
const demoLeadsSQL = `
SELECT id, partner_ids[1 + p], first_name, last_name, title_names[1 + t], seniorities[1 + t], departments[1 + t],
	prefixes[1 + c % 25] || ' ' || suffixes[1 + c / 25], slug || '.example', sizes[1 + (c * 7) % cardinality(sizes)],
	industries[1 + c / 25], countries[1 + l], regions[1 + l], cities[1 + l],
	email, phone, 'https://www.linkedin.com/in/' || lower(first_name) || '-' || lower(last_name) || '-' || i,
	email, slug || '.example', phone,
	1 + (x5 % 1000) * (x5 % 1000) * (x5 % 1000) * 49 / 997002999,
	CASE (x4 / 220) % 10 WHEN 0 THEN 1 WHEN 1 THEN 5 ELSE 3 END,
	'ACTIVE',
	CASE
		WHEN v < cuts[5 * p + 1] THEN statuses[1]
		WHEN v < cuts[5 * p + 2] THEN statuses[2]
		WHEN v < cuts[5 * p + 3] THEN statuses[3]
		WHEN v < cuts[5 * p + 4] THEN statuses[4]
		WHEN v < cuts[5 * p + 5] THEN statuses[5]
		ELSE statuses[6]
	END,
	created_at, created_at
FROM (
	SELECT g.id, g.i, x4, x5, l, p, t, c, v, first_name, last_name, slug,
		lower(first_name) || '.' || lower(last_name) || '.' || g.i || '@' || slug || '.example' AS email,
		CASE WHEN (x4 / 22) % 10 = 0 THEN ''
			ELSE phone_prefixes[1 + l] || (2000000 + (g.i * 7919) % 8000000) END AS phone,
		?::timestamptz - make_interval(secs => (g.i * 7919) % ?) AS created_at,
		partner_ids, cuts, statuses, prefixes, suffixes, industries, sizes,
		title_names, seniorities, departments, countries, regions, cities
	FROM (SELECT id, (n + ?::bigint - 1) AS i FROM unnest(?::uuid[]) WITH ORDINALITY AS u(id, n)) g
	CROSS JOIN (SELECT ?::uuid[] AS partner_ids, ?::int[] AS partner_idx, ?::int[] AS cuts, ?::text[] AS statuses,
		?::text[] AS first_names, ?::text[] AS last_names,
		?::text[] AS prefixes, ?::text[] AS suffixes, ?::text[] AS industries, ?::text[] AS sizes,
		?::text[] AS title_names, ?::text[] AS seniorities, ?::text[] AS departments,
		?::text[] AS countries, ?::text[] AS regions, ?::text[] AS cities, ?::text[] AS phone_prefixes) a
	CROSS JOIN LATERAL (SELECT (g.i * 1588635695 + 12345) % 2147483647 AS x1) r1
	CROSS JOIN LATERAL (SELECT (x1 * 1588635695) % 2147483647 AS x2) r2
	CROSS JOIN LATERAL (SELECT (x2 * 1588635695) % 2147483647 AS x3) r3
	CROSS JOIN LATERAL (SELECT (x3 * 1588635695) % 2147483647 AS x4) r4
	CROSS JOIN LATERAL (SELECT (x4 * 1588635695) % 2147483647 AS x5) r5
	CROSS JOIN LATERAL (SELECT
		partner_idx[1 + x1 % cardinality(partner_idx)] AS p,
		(x1 / 20) % 1000 AS v,
		x2 % (25 * cardinality(suffixes)) AS c,
		(x3 / 576) % cardinality(title_names) AS t,
		x4 % cardinality(countries) AS l) k
	CROSS JOIN LATERAL (SELECT
		first_names[1 + x3 % 24] AS first_name,
		last_names[1 + (x3 / 24) % 24] AS last_name,
		lower(prefixes[1 + c % 25] || suffixes[1 + c / 25]) AS slug) s
) q`

// seedLeads makes sure demo leads 1..n exist, batch by batch, skipping the batches that are
// complete, and returns how many leads the demo partners have. On a *bun.DB two batches run at a
// time (PostgreSQL spends most of a batch maintaining the leads indexes, on one core each);
// in a transaction they run one after the other.
func seedLeads(ctx context.Context, db bun.IDB, n int, log *slog.Logger) (int, error) {
	arrays := leadArrays()
	// The titles first, in one statement: the batches side by side would otherwise add them as
	// their leads come, each in its own order, and could deadlock (lead.AddTitles).
	var names []string
	for _, t := range titles {
		names = append(names, t.name)
	}
	if err := lead.AddTitles(ctx, db, names); err != nil {
		return 0, fmt.Errorf("seed titles: %w", err)
	}
	var inserted atomic.Int64
	started := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(1)
	if _, ok := db.(*bun.DB); ok {
		g.SetLimit(2)
	}
	for first := 1; first <= n; first += leadBatch {
		last := min(first+leadBatch-1, n)
		g.Go(func() error {
			added, err := seedLeadBatch(gctx, db, first, last, arrays)
			if err != nil {
				return fmt.Errorf("seed leads %d-%d: %w", first, last, err)
			}
			inserted.Add(added)
			log.Info("seed: leads", "from", first, "to", last, "inserted", added,
				"elapsed", time.Since(started).Round(time.Millisecond))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	partnerIDs := demoPartnerIDs()
	if inserted.Load() > 0 {
		if err := lead.Analyze(ctx, db); err != nil {
			return 0, err
		}
		if err := seedPassRates(ctx, db, partnerIDs); err != nil {
			return 0, err
		}
	}
	total, err := lead.Count(ctx, db, lead.Scope{PartnerIDs: partnerIDs})
	if err != nil {
		return 0, fmt.Errorf("count demo leads: %w", err)
	}
	log.Info("seed: leads ready", "inserted", inserted.Load(), "total", total, "elapsed", time.Since(started).Round(time.Millisecond))
	return total, nil
}

// seedPassRates sets the demo partners' verification pass rates (valid / verified, to four
// places) from their leads. Verification keeps a rate current; the seed starts it off so that the
// demo partners' commission bonuses match their leads.
func seedPassRates(ctx context.Context, db bun.IDB, partnerIDs []string) error {
	counts, err := lead.VerificationCounts(ctx, db, partnerIDs)
	if err != nil {
		return fmt.Errorf("seed pass rates: %w", err)
	}
	if len(counts) == 0 {
		return nil
	}
	ids := make([]string, len(counts))
	valid, verified := make([]int64, len(counts)), make([]int64, len(counts))
	for i, c := range counts {
		ids[i], valid[i], verified[i] = c.PartnerID, c.Valid, c.Verified
	}
	if _, err := db.ExecContext(ctx, `UPDATE partners p SET verification_pass_rate = round(s.valid::numeric / s.verified, 4)
		FROM unnest(?::uuid[], ?::bigint[], ?::bigint[]) AS s(partner_id, valid, verified)
		WHERE p.id = s.partner_id`, pgdialect.Array(ids), pgdialect.Array(valid), pgdialect.Array(verified)); err != nil {
		return fmt.Errorf("seed pass rates: %w", err)
	}
	return nil
}

// seedLeadBatch inserts the missing demo leads first..last and returns how many it inserted.
func seedLeadBatch(ctx context.Context, db bun.IDB, first, last int, arrays []any) (int64, error) {
	ids := make([]string, 0, last-first+1)
	for i := first; i <= last; i++ {
		ids = append(ids, LeadID(i))
	}
	present, err := lead.Count(ctx, db, lead.Scope{IDs: ids})
	if err != nil {
		return 0, err
	}
	if present == len(ids) {
		return 0, nil
	}
	args := append([]any{leadEpoch, leadSpreadSeconds, first, pgdialect.Array(ids)}, arrays...)
	return lead.InsertFrom(ctx, db, demoLeadsSQL, args...)
}
