package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/lead"
)

const (
	benchSecret = "leadmarket-facets-benchmark-secret-0123456789"
	pageSize    = 50
	// deepPages is how many pages a combination walks: page 4 is three cursors deep.
	deepPages = 4
)

const leadFields = `edges { cursor node { id title seniority industry country companySize verificationStatus
	priceCredits createdAt emailPreview purchasedByMyWorkspace partner { id name } } }
	pageInfo { hasNextPage endCursor }`

const pageQuery = `query Page($filter: LeadFilter, $order: LeadOrder, $after: String) {
	marketplaceLeads(first: 50, after: $after, filter: $filter, orderBy: $order) { ` + leadFields + ` } }`

const countQuery = `query Counted($filter: LeadFilter, $order: LeadOrder) {
	marketplaceLeads(first: 50, filter: $filter, orderBy: $order) { totalCount { value isExact } ` + leadFields + ` } }`

const facetsQuery = `query Facets($filter: LeadFilter) { marketplaceFacets(filter: $filter) {
	industries { value count isExact } countries { value count isExact } seniorities { value count isExact }
	companySizes { value count isExact } verificationStatuses { value count isExact } } }`

type node struct {
	ID                 string    `json:"id"`
	Title              string    `json:"title"`
	Seniority          string    `json:"seniority"`
	Industry           string    `json:"industry"`
	Country            string    `json:"country"`
	CompanySize        string    `json:"companySize"`
	VerificationStatus string    `json:"verificationStatus"`
	PriceCredits       int       `json:"priceCredits"`
	CreatedAt          time.Time `json:"createdAt"`
}

type total struct {
	Value   int  `json:"value"`
	IsExact bool `json:"isExact"`
}

type connection struct {
	TotalCount *total `json:"totalCount"`
	Edges      []struct {
		Node node `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
}

type facetCount struct {
	Value   string `json:"value"`
	Count   int    `json:"count"`
	IsExact bool   `json:"isExact"`
}

type facets struct {
	Industries           []facetCount `json:"industries"`
	Countries            []facetCount `json:"countries"`
	Seniorities          []facetCount `json:"seniorities"`
	CompanySizes         []facetCount `json:"companySizes"`
	VerificationStatuses []facetCount `json:"verificationStatuses"`
}

// sample is one measured request.
type sample struct {
	d      time.Duration
	f      filter
	order  string
	page   int
	after  *node // the last lead of the page before (nil on page 1)
	leads  int
	exact  *total
	facets bool
}

// sizeResult is everything measured on one database.
type sizeResult struct {
	leads         int
	dbReport      string
	first, deep   []sample // page 1; page 4
	walk          []sample // pages 2 and 3
	counted       []sample // page 1 with totalCount
	facet         []sample
	hasCounts     bool
	checkFailures int
	failures      []string
	plans         map[int][]string // slowest page index in all() -> its plans
	warmFacets    time.Duration    // the warm-up's facets request, not measured
	bdb           *bun.DB
	userID        string
}

type env struct {
	client   *http.Client
	endpoint string
	token    string
}

func measureSize(ctx context.Context, o options, n int, cs []filter) (*sizeResult, error) {
	name := dbName(n)
	fmt.Fprintf(os.Stderr, "facets: preparing %s ...\n", name)
	prepared, owner, token, err := benchdb.PrepareOwner(ctx, benchdb.Options{ServerURL: o.databaseURL, Name: name,
		Leads: n, Fresh: o.fresh, Log: os.Stderr, LogPrefix: "facets: ", MigrateExisting: true}, benchSecret)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"ENV": "development", "JWT_SECRET": benchSecret, "DATABASE_URL": prepared.URL, "HTTP_ADDR": "127.0.0.1:0",
		"LOG_LEVEL": "error", "RATE_LIMIT_BROWSE": "1000000000", "RATE_LIMIT_PURCHASE": "1000000000",
		"RATE_LIMIT_STANDARD": "1000000000",
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	bdb, err := db.Open(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return nil, err
	}
	defer bdb.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	app.TuneGC()
	srv := app.New(cfg, bdb, slog.New(slog.DiscardHandler))
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Run(serveCtx, ln) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "facets: server:", err)
		}
	}()
	e := &env{endpoint: "http://" + ln.Addr().String() + "/graphql", token: token,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true}}}

	r := &sizeResult{leads: n, dbReport: prepared.Report, bdb: bdb, userID: owner.UserID}
	var probe struct {
		Type *struct {
			Name string `json:"name"`
		} `json:"__type"`
	}
	if _, err := e.do(ctx, `{ __type(name: "LeadFacets") { name } }`, nil, &probe); err != nil {
		return nil, err
	}
	r.hasCounts = probe.Type != nil

	// Warm up: the first combination in every order, and its facets, unmeasured. The facets'
	// sample reads the same 2% of the table's pages every time (REPEATABLE): on a database
	// reused from an earlier run they are not in memory, and the first request reads them from
	// the disk (its time is reported apart).
	for _, order := range orders {
		var c struct{ MarketplaceLeads connection }
		if _, err := e.do(ctx, pageQuery, map[string]any{"filter": cs[0], "order": order}, &c); err != nil {
			return nil, err
		}
	}
	if r.hasCounts {
		var c struct{ MarketplaceFacets facets }
		if r.warmFacets, err = e.do(ctx, facetsQuery, map[string]any{"filter": cs[0]}, &c); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "facets: %s: measuring %d combinations ...\n", name, len(cs))
	for i, f := range cs {
		if i > 0 && i%50 == 0 {
			fmt.Fprintf(os.Stderr, "facets: %s: %d combinations done\n", name, i)
		}
		for _, order := range orders {
			if err := r.walkPages(ctx, e, f, order); err != nil {
				return nil, err
			}
		}
		if r.hasCounts {
			if err := r.facetsOf(ctx, e, f); err != nil {
				return nil, err
			}
		}
	}
	r.explainSlowest(ctx, o.slowest)
	return r, nil
}

// walkPages measures pages 1-4 of f in order, then page 1 with totalCount, and checks them.
func (r *sizeResult) walkPages(ctx context.Context, e *env, f filter, order string) error {
	var after *string
	var last *node
	var seen []node
	ended := false
	for page := 1; page <= deepPages; page++ {
		var c struct{ MarketplaceLeads connection }
		d, err := e.do(ctx, pageQuery, map[string]any{"filter": f, "order": order, "after": after}, &c)
		if err != nil {
			return fmt.Errorf("%s %s page %d: %w", f, order, page, err)
		}
		s := sample{d: d, f: f, order: order, page: page, after: last, leads: len(c.MarketplaceLeads.Edges)}
		switch page {
		case 1:
			r.first = append(r.first, s)
		case deepPages:
			r.deep = append(r.deep, s)
		default:
			r.walk = append(r.walk, s)
		}
		for _, edge := range c.MarketplaceLeads.Edges {
			seen = append(seen, edge.Node)
		}
		if n := len(c.MarketplaceLeads.Edges); n > 0 {
			l := c.MarketplaceLeads.Edges[n-1].Node
			last = &l
		}
		if !c.MarketplaceLeads.PageInfo.HasNextPage {
			ended = true
			break
		}
		after = c.MarketplaceLeads.PageInfo.EndCursor
	}
	r.check(f, order, seen)
	if !r.hasCounts {
		return nil
	}
	var c struct{ MarketplaceLeads connection }
	d, err := e.do(ctx, countQuery, map[string]any{"filter": f, "order": order}, &c)
	if err != nil {
		return fmt.Errorf("%s %s totalCount: %w", f, order, err)
	}
	t := c.MarketplaceLeads.TotalCount
	r.counted = append(r.counted, sample{d: d, f: f, order: order, page: 1, exact: t})
	// A walk that ended within its pages saw every match: an exact count must be their number,
	// an estimate is only allowed above 10,000.
	complete := ended
	switch {
	case t == nil:
		r.fail("%s %s: no totalCount", f, order)
	case complete && (!t.IsExact || t.Value != len(seen)):
		r.fail("%s %s: totalCount %+v, but the walk found %d leads", f, order, *t, len(seen))
	case !t.IsExact && t.Value <= 10_000 && len(seen) < 10_000 && complete:
		r.fail("%s %s: estimated totalCount %d at or below 10,000", f, order, t.Value)
	case t.IsExact && t.Value < len(seen):
		r.fail("%s %s: exact totalCount %d below the %d leads walked", f, order, t.Value, len(seen))
	}
	return nil
}

// facetsOf measures marketplaceFacets(f) and checks it against f's exact totalCount, where a
// facet that f does not filter counts the same leads.
func (r *sizeResult) facetsOf(ctx context.Context, e *env, f filter) error {
	var c struct{ MarketplaceFacets facets }
	d, err := e.do(ctx, facetsQuery, map[string]any{"filter": f}, &c)
	if err != nil {
		return fmt.Errorf("%s facets: %w", f, err)
	}
	r.facet = append(r.facet, sample{d: d, f: f, facets: true})
	var t *total
	for _, s := range slices.Backward(r.counted) {
		if s.f.String() == f.String() {
			t = s.exact
			break
		}
	}
	if t == nil || !t.IsExact {
		return nil
	}
	for name, fc := range map[string]struct {
		filtered bool
		counts   []facetCount
	}{
		"industries":           {len(f.Industries) > 0, c.MarketplaceFacets.Industries},
		"countries":            {len(f.Countries) > 0, c.MarketplaceFacets.Countries},
		"seniorities":          {len(f.Seniorities) > 0, c.MarketplaceFacets.Seniorities},
		"companySizes":         {len(f.CompanySizes) > 0, c.MarketplaceFacets.CompanySizes},
		"verificationStatuses": {len(f.VerificationStatuses) > 0, c.MarketplaceFacets.VerificationStatuses},
	} {
		if fc.filtered {
			continue
		}
		sum := 0
		for _, v := range fc.counts {
			if !v.IsExact {
				r.fail("%s facets: %s %s is an estimate (%d) of at most %d leads", f, name, v.Value, v.Count, t.Value)
			}
			sum += v.Count
		}
		if sum != t.Value {
			r.fail("%s facets: %s add up to %d, totalCount is exactly %d", f, name, sum, t.Value)
		}
	}
	return nil
}

// check fails the walk of f in order unless every lead matches f and the leads come in order,
// each once.
func (r *sizeResult) check(f filter, order string, leads []node) {
	ids := map[string]bool{}
	for i, l := range leads {
		if ids[l.ID] {
			r.fail("%s %s: lead %s twice", f, order, l.ID)
			return
		}
		ids[l.ID] = true
		if why := mismatch(f, l); why != "" {
			r.fail("%s %s: lead %s %s", f, order, l.ID, why)
			return
		}
		if i > 0 && !inOrder(order, leads[i-1], l) {
			r.fail("%s %s: leads %s and %s out of order", f, order, leads[i-1].ID, l.ID)
			return
		}
	}
}

func mismatch(f filter, l node) string {
	in := func(vs []string, v string) bool { return len(vs) == 0 || slices.Contains(vs, v) }
	switch {
	case !in(f.Industries, l.Industry):
		return "has industry " + l.Industry
	case !in(f.Countries, l.Country):
		return "has country " + l.Country
	case !in(f.Seniorities, l.Seniority):
		return "has seniority " + l.Seniority
	case !in(f.CompanySizes, l.CompanySize):
		return "has company size " + l.CompanySize
	case !in(f.VerificationStatuses, l.VerificationStatus) || l.VerificationStatus == "INVALID":
		return "has verification status " + l.VerificationStatus
	case f.MinPriceCredits != nil && l.PriceCredits < *f.MinPriceCredits,
		f.MaxPriceCredits != nil && l.PriceCredits > *f.MaxPriceCredits:
		return fmt.Sprintf("costs %d", l.PriceCredits)
	case f.TitleContains != "" && !strings.Contains(strings.ToLower(l.Title), strings.ToLower(f.TitleContains)):
		return "has title " + l.Title
	}
	return ""
}

func inOrder(order string, a, b node) bool {
	switch order {
	case "PRICE_ASC":
		return a.PriceCredits < b.PriceCredits || a.PriceCredits == b.PriceCredits && a.ID < b.ID
	case "PRICE_DESC":
		return a.PriceCredits > b.PriceCredits || a.PriceCredits == b.PriceCredits && a.ID > b.ID
	}
	return a.CreatedAt.After(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID > b.ID
}

func (r *sizeResult) fail(format string, args ...any) {
	r.checkFailures++
	if len(r.failures) < 20 {
		r.failures = append(r.failures, fmt.Sprintf(format, args...))
	}
}

// pages is every measured page request: page 1 and page 4.
func (r *sizeResult) pages() []sample { return slices.Concat(r.first, r.deep) }

// explainSlowest runs lead.ExplainSellable for the slowest pages.
func (r *sizeResult) explainSlowest(ctx context.Context, k int) {
	all := slices.Concat(r.first, r.walk, r.deep)
	idx := slowest(all, k)
	r.plans = map[int][]string{}
	for _, i := range idx {
		s := all[i]
		q := lead.SellableQuery{Viewer: lead.Viewer{UserID: r.userID}, Filter: s.f.lead(), Order: s.order, Limit: pageSize + 1}
		if s.after != nil {
			q.After = &lead.Position{Time: s.after.CreatedAt, Price: s.after.PriceCredits, ID: s.after.ID}
		}
		plans, err := lead.ExplainSellable(ctx, r.bdb, q)
		if err != nil {
			plans = []string{"explain: " + err.Error()}
		}
		r.plans[i] = plans
	}
}

// lead is f as lead's filter.
func (f filter) lead() lead.Filter {
	return lead.Filter{Industries: f.Industries, Countries: f.Countries, Seniorities: f.Seniorities,
		CompanySizes: f.CompanySizes, VerificationStatuses: f.VerificationStatuses, TitleContains: f.TitleContains,
		MinPriceCredits: f.MinPriceCredits, MaxPriceCredits: f.MaxPriceCredits}
}

// do posts one GraphQL request and decodes its data into data; it returns the time from sending
// the request to having read the whole response.
func (e *env) do(ctx context.Context, query string, vars map[string]any, data any) (time.Duration, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	start := time.Now()
	res, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if err != nil {
		return d, err
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return d, fmt.Errorf("HTTP %d: %s", res.StatusCode, raw)
	}
	if len(resp.Errors) > 0 {
		return d, errors.New(resp.Errors[0].Message)
	}
	return d, json.Unmarshal(resp.Data, data)
}
