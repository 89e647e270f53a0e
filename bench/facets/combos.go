package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// filter is one combination of browse filters, in LeadFilter's JSON shape.
type filter struct {
	Industries           []string `json:"industries,omitempty"`
	Countries            []string `json:"countries,omitempty"`
	Seniorities          []string `json:"seniorities,omitempty"`
	CompanySizes         []string `json:"companySizes,omitempty"`
	VerificationStatuses []string `json:"verificationStatuses,omitempty"`
	MinPriceCredits      *int     `json:"minPriceCredits,omitempty"`
	MaxPriceCredits      *int     `json:"maxPriceCredits,omitempty"`
	TitleContains        string   `json:"titleContains,omitempty"`
}

// The values the demo seed writes (internal/seed), and some it never writes: a combination may
// match nothing.
var (
	industries = []string{"Software", "Fintech", "Healthcare", "Retail", "Manufacturing", "Logistics",
		"Education", "Media", "Energy", "Real Estate", "Telecom", "Insurance"}
	countries   = []string{"US", "GB", "DE", "FR", "NL", "CA", "AU", "ES", "SE", "IN", "JP"}
	seniorities = []string{"ENTRY", "SENIOR", "MANAGER", "DIRECTOR", "VP", "C_LEVEL", "OWNER", "UNKNOWN"}
	sizes       = []string{"SIZE_1_10", "SIZE_11_50", "SIZE_51_200", "SIZE_201_500", "SIZE_501_1000",
		"SIZE_1001_5000", "SIZE_5001_PLUS", "UNKNOWN"}
	statuses = []string{"PENDING", "VALID", "CATCH_ALL", "RISKY", "UNKNOWN", "INVALID"}
	// titleWords occur in the demo titles; absentWords do not.
	titleWords  = []string{"Sales", "Engineer", "Manager", "Chief", "Director", "Head", "VP", "Founder", "Marketing", "Officer", "Analyst", "Product", "Senior", "Growth", "Consultant"}
	absentWords = []string{"Plumber", "Nurse", "Pilot", "Teacher", "Lawyer", "Architect", "Sales Engineer", "Chef"}
)

// orders are LeadOrder's values; every combination is browsed in each.
var orders = []string{"NEWEST", "PRICE_ASC", "PRICE_DESC"}

// issueCombos are the slow corners issue 15 names, measured in every run.
func issueCombos() []filter {
	return []filter{
		{Seniorities: []string{"SENIOR"}, TitleContains: "Sales"},
		{Countries: []string{"SE"}, Seniorities: []string{"ENTRY"}, CompanySizes: []string{"SIZE_5001_PLUS"}, Industries: []string{"Telecom"}},
	}
}

// combos returns n combinations: issueCombos, then random ones of 1 to 4 filters each (lists of
// 1 to 3 values, price ranges open or closed, title words present or absent) from a generator
// seeded with seed, so that runs are comparable.
func combos(n int, seed uint64) []filter {
	out := issueCombos()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kinds := []func(*filter){
		func(f *filter) { f.Industries = pick(r, industries) },
		func(f *filter) { f.Countries = pick(r, countries) },
		func(f *filter) { f.Seniorities = pick(r, seniorities) },
		func(f *filter) { f.CompanySizes = pick(r, sizes) },
		func(f *filter) { f.VerificationStatuses = pick(r, statuses[:5]) },
		func(f *filter) {
			lo, hi := 1+r.IntN(50), 1+r.IntN(50)
			lo, hi = min(lo, hi), max(lo, hi)
			switch r.IntN(3) {
			case 0:
				f.MinPriceCredits = &lo
			case 1:
				f.MaxPriceCredits = &hi
			default:
				f.MinPriceCredits, f.MaxPriceCredits = &lo, &hi
			}
		},
		func(f *filter) {
			if r.IntN(2) == 0 {
				f.TitleContains = titleWords[r.IntN(len(titleWords))]
			} else {
				f.TitleContains = absentWords[r.IntN(len(absentWords))]
			}
			if r.IntN(4) == 0 {
				f.TitleContains = strings.ToLower(f.TitleContains)
			}
		},
	}
	for len(out) < n {
		var f filter
		for _, k := range r.Perm(len(kinds))[:1+r.IntN(4)] {
			kinds[k](&f)
		}
		out = append(out, f)
	}
	return out[:n]
}

// pick returns 1 to 3 distinct values of from (mostly one).
func pick(r *rand.Rand, from []string) []string {
	n := 1
	switch x := r.IntN(10); {
	case x >= 9:
		n = 3
	case x >= 6:
		n = 2
	}
	var out []string
	for _, i := range r.Perm(len(from))[:n] {
		out = append(out, from[i])
	}
	slices.Sort(out)
	return out
}

// String is the combination as the report prints it.
func (f filter) String() string {
	var parts []string
	list := func(name string, vs []string) {
		if len(vs) > 0 {
			parts = append(parts, name+":["+strings.Join(vs, ",")+"]")
		}
	}
	list("industries", f.Industries)
	list("countries", f.Countries)
	list("seniorities", f.Seniorities)
	list("companySizes", f.CompanySizes)
	list("verificationStatuses", f.VerificationStatuses)
	if f.MinPriceCredits != nil {
		parts = append(parts, fmt.Sprintf("minPriceCredits:%d", *f.MinPriceCredits))
	}
	if f.MaxPriceCredits != nil {
		parts = append(parts, fmt.Sprintf("maxPriceCredits:%d", *f.MaxPriceCredits))
	}
	if f.TitleContains != "" {
		parts = append(parts, fmt.Sprintf("titleContains:%q", f.TitleContains))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
