package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadmarket/leadmarket/internal/httpserver"
)

// benchFilter is the browse filter of both sides: two filters that the seed's leads match often
// (US, GB and DE are 10 of its 22 locations; DIRECTOR, VP and C_LEVEL 18 of its 48 title
// weights), so about one lead in six qualifies and the walked pages are always full.
const benchFilter = `{countries: ["US", "GB", "DE"], seniorities: [DIRECTOR, VP, C_LEVEL]}`

var (
	benchCountries   = []string{"US", "GB", "DE"}
	benchSeniorities = []string{"DIRECTOR", "VP", "C_LEVEL"}
)

// browseQuery is the measured GraphQL operation with page size first.
func browseQuery(first int) string {
	return `query Browse($after: String) { marketplaceLeads(first: ` + strconv.Itoa(first) + `, after: $after, filter: ` + benchFilter + `) {
	edges { cursor node { id firstName lastName title companyName industry country priceCredits verificationStatus
		emailPreview email purchasedByMyWorkspace partner { id name } } }
	pageInfo { hasNextPage endCursor } } }`
}

var measuredQuery = browseQuery(PageSize)

type pageInfo struct {
	HasNextPage bool    `json:"hasNextPage"`
	EndCursor   *string `json:"endCursor"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func errorOf(errs []gqlError) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = fmt.Sprintf("%s (%v)", e.Message, e.Extensions["code"])
	}
	return errors.New("graphql: " + strings.Join(msgs, "; "))
}

type gqlRequest struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
}

// post sends a GraphQL request as the workspace owner, reads the whole response into buf and
// returns the statements the server ran for it.
func (e *benchEnv) post(ctx context.Context, req gqlRequest, buf *bytes.Buffer) (int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.client.Do(hr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	statements, err := strconv.Atoi(resp.Header.Get(httpserver.StatementsHeader))
	if err != nil {
		statements = -1 // the header is missing: the server runs as production
	}
	if resp.StatusCode != http.StatusOK {
		return statements, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, buf.String())
	}
	return statements, nil
}

// graphql runs one operation and decodes its data into data; any error in the response fails it.
func (e *benchEnv) graphql(ctx context.Context, query string, vars map[string]any, data any) (int, error) {
	var buf bytes.Buffer
	statements, err := e.post(ctx, gqlRequest{Query: query, Variables: vars}, &buf)
	if err != nil {
		return statements, err
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(buf.Bytes(), &resp); err != nil {
		return statements, fmt.Errorf("decode response: %w", err)
	}
	if len(resp.Errors) > 0 {
		return statements, errorOf(resp.Errors)
	}
	if data != nil {
		if err := json.Unmarshal(resp.Data, data); err != nil {
			return statements, fmt.Errorf("decode data: %w", err)
		}
	}
	return statements, nil
}

// statementsFor returns the SQL statements of one browse request with page size first.
func (e *benchEnv) statementsFor(ctx context.Context, first int) (int, error) {
	n, err := e.graphql(ctx, browseQuery(first), nil, nil)
	if err != nil {
		return 0, fmt.Errorf("browse first %d: %w", first, err)
	}
	return n, nil
}

// step is one request of a worker; it returns the SQL statements it ran (-1: unknown).
type step func(ctx context.Context) (statements int, err error)

// walker follows end cursors for up to pages pages, then starts again from the first page.
type walker struct {
	pages, page int
}

// next reports whether to continue after this page, and counts it.
func (w *walker) next(hasNext bool) bool {
	if hasNext && w.page+1 < w.pages {
		w.page++
		return true
	}
	w.page = 0
	return false
}

// newGraphQLWorker returns a step that POSTs the measured query, walking pages. It reads each
// whole response and checks it without decoding it: HTTP 200, no "errors" entry, a full page of
// edges, and the end cursor to walk on. verify has already decoded and compared whole pages;
// decoding every response again here would charge the client's JSON parsing (a tenth of this
// process's CPU, on the cores the server shares) to the server, while the raw side's rows are
// never encoded or parsed at all.
func (e *benchEnv) newGraphQLWorker() step {
	w := walker{pages: e.o.Pages}
	var after *string
	var buf bytes.Buffer
	return func(ctx context.Context) (int, error) {
		statements, err := e.post(ctx, gqlRequest{Query: measuredQuery, Variables: map[string]any{"after": after}}, &buf)
		if err == nil {
			err = checkPage(buf.Bytes())
		}
		if err != nil {
			after, w.page = nil, 0
			return statements, err
		}
		after = nil
		if w.next(bytes.Contains(buf.Bytes(), []byte(`"hasNextPage":true`))) {
			after = endCursorOf(buf.Bytes())
		}
		return statements, nil
	}
}

// checkPage checks a measured response without decoding it: no errors, and a full page of
// edges unless it is the last page.
func checkPage(body []byte) error {
	switch edges := bytes.Count(body, []byte(`"cursor":"`)); {
	case bytes.Contains(body, []byte(`"errors":`)):
		return fmt.Errorf("graphql: %.300s", body)
	case edges == 0:
		return errors.New("empty page")
	case edges != PageSize && !bytes.Contains(body, []byte(`"hasNextPage":false`)):
		return fmt.Errorf("a page of %d edges that is not the last", edges)
	}
	return nil
}

// newHandlerWorker returns a step that calls the server's handler in process with the measured
// query: no network, no HTTP client, and only the end cursor read from the response, so that it
// shows what the server's own work costs.
func (e *benchEnv) newHandlerWorker() step {
	w := walker{pages: e.o.Pages}
	var after *string
	return func(ctx context.Context) (int, error) {
		body, err := json.Marshal(gqlRequest{Query: measuredQuery, Variables: map[string]any{"after": after}})
		if err != nil {
			return 0, err
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.token)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		statements, err := strconv.Atoi(rec.Header().Get(httpserver.StatementsHeader))
		if err != nil {
			statements = -1
		}
		out := rec.Body.Bytes()
		if rec.Code != http.StatusOK {
			err = fmt.Errorf("HTTP %d: %.300s", rec.Code, out)
		} else {
			err = checkPage(out)
		}
		if err != nil {
			after, w.page = nil, 0
			return statements, err
		}
		after = nil
		if w.next(bytes.Contains(out, []byte(`"hasNextPage":true`))) {
			after = endCursorOf(out)
		}
		return statements, nil
	}
}

// endCursorOf finds pageInfo.endCursor in a response without decoding it; cursors are base64url,
// so they hold no characters that JSON escapes.
func endCursorOf(body []byte) *string {
	const key = `"endCursor":"`
	i := bytes.LastIndex(body, []byte(key))
	if i < 0 {
		return nil
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	c := string(rest[:j])
	return &c
}

// rawLeadColumns are marketplace's lead columns with the same masking of contact data.
const rawLeadColumns = `l.id, l.partner_id, l.first_name, l.last_name, l.title, l.seniority, l.department,
	l.company_name, l.company_domain, l.company_size, l.industry, l.country, l.region, l.city, l.price_credits,
	l.max_buyers, l.buyers_count, l.verification_status, l.status, l.email_preview, l.phone_preview, l.created_at,
	b.lead_id IS NOT NULL AS contact_visible,
	CASE WHEN b.lead_id IS NOT NULL THEN l.email ELSE '' END AS email,
	CASE WHEN b.lead_id IS NOT NULL THEN l.phone_e164 ELSE '' END AS phone,
	CASE WHEN b.lead_id IS NOT NULL THEN l.linkedin_url ELSE '' END AS linkedin_url`

// rawPageSQL is the browse page as marketplace.Service.Browse builds it for a viewer without a
// workspaceId ($1 the user), with the two filters ($2 countries, $3 seniorities); rawNextPageSQL
// continues after the keyset ($4 created_at, $5 id).
const (
	rawPageFrom = `SELECT ` + rawLeadColumns + `
FROM leads AS l
LEFT JOIN LATERAL (SELECT p.lead_id FROM lead_purchases AS p WHERE p.lead_id = l.id
	AND p.workspace_id IN (SELECT m.workspace_id FROM workspace_members AS m WHERE m.user_id = $1) LIMIT 1) AS b ON true
WHERE l.status = 'ACTIVE' AND l.verification_status <> 'INVALID' AND l.buyers_count < l.max_buyers
	AND l.country = ANY($2::text[]) AND l.seniority = ANY($3::text[])`
	rawPageOrder   = ` ORDER BY l.created_at DESC, l.id DESC LIMIT 51`
	rawPageSQL     = rawPageFrom + rawPageOrder
	rawNextPageSQL = rawPageFrom + ` AND (l.created_at, l.id) < ($4::timestamptz, $5::uuid)` + rawPageOrder
	rawPartnersSQL = `SELECT id, name FROM partners WHERE id = ANY($1::uuid[])`
)

// rawLead is one row of the raw page, every column scanned as a handler would.
type rawLead struct {
	ID, PartnerID, FirstName, LastName, Title, Seniority, Department         string
	CompanyName, CompanyDomain, CompanySize, Industry, Country, Region, City string
	PriceCredits, MaxBuyers, BuyersCount                                     int32
	VerificationStatus, Status, EmailPreview, PhonePreview                   string
	CreatedAt                                                                time.Time
	ContactVisible                                                           bool
	Email, Phone, LinkedinURL                                                string
}

// rawPage is a page of the raw side with its partners' names by id.
type rawPage struct {
	leads    []rawLead
	hasNext  bool
	partners map[string]string
}

// fetchRawPage runs the page query after the keyset position of last (nil: first page), then
// the partners of the page; leads is reused for the rows.
func (e *benchEnv) fetchRawPage(ctx context.Context, last *rawLead, leads []rawLead) (rawPage, error) {
	var rows pgx.Rows
	var err error
	if last == nil {
		rows, err = e.pool.Query(ctx, rawPageSQL, e.userID, benchCountries, benchSeniorities)
	} else {
		rows, err = e.pool.Query(ctx, rawNextPageSQL, e.userID, benchCountries, benchSeniorities, last.CreatedAt, last.ID)
	}
	if err != nil {
		return rawPage{}, fmt.Errorf("page: %w", err)
	}
	for rows.Next() {
		var l rawLead
		if err := rows.Scan(&l.ID, &l.PartnerID, &l.FirstName, &l.LastName, &l.Title, &l.Seniority, &l.Department,
			&l.CompanyName, &l.CompanyDomain, &l.CompanySize, &l.Industry, &l.Country, &l.Region, &l.City, &l.PriceCredits,
			&l.MaxBuyers, &l.BuyersCount, &l.VerificationStatus, &l.Status, &l.EmailPreview, &l.PhonePreview, &l.CreatedAt,
			&l.ContactVisible, &l.Email, &l.Phone, &l.LinkedinURL); err != nil {
			rows.Close()
			return rawPage{}, fmt.Errorf("page: %w", err)
		}
		leads = append(leads, l)
	}
	if err := rows.Err(); err != nil {
		return rawPage{}, fmt.Errorf("page: %w", err)
	}
	p := rawPage{leads: leads, hasNext: len(leads) > PageSize, partners: map[string]string{}}
	if p.hasNext {
		p.leads = leads[:PageSize]
	}
	var partnerIDs []string
	for _, l := range p.leads {
		if !slices.Contains(partnerIDs, l.PartnerID) {
			partnerIDs = append(partnerIDs, l.PartnerID)
		}
	}
	if len(partnerIDs) == 0 {
		return p, nil
	}
	rows, err = e.pool.Query(ctx, rawPartnersSQL, partnerIDs)
	if err != nil {
		return rawPage{}, fmt.Errorf("partners: %w", err)
	}
	var id, name string
	if _, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error { p.partners[id] = name; return nil }); err != nil {
		return rawPage{}, fmt.Errorf("partners: %w", err)
	}
	return p, nil
}

// rawStatements is what fetchRawPage runs per page: the page and its partners.
const rawStatements = 2

// newRawWorker returns a step that fetches pages through pgx, walking them like the GraphQL side.
func (e *benchEnv) newRawWorker() step {
	w := walker{pages: e.o.Pages}
	var last *rawLead
	buf := make([]rawLead, 0, PageSize+1)
	return func(ctx context.Context) (int, error) {
		p, err := e.fetchRawPage(ctx, last, buf[:0])
		if err == nil && len(p.leads) == 0 {
			err = errors.New("empty page")
		}
		if err != nil {
			last, w.page = nil, 0
			return rawStatements, err
		}
		if w.next(p.hasNext) {
			end := p.leads[len(p.leads)-1]
			last = &end
		} else {
			last = nil
		}
		return rawStatements, nil
	}
}

// verify walks the first pages on both sides and checks that they agree and that the GraphQL
// answer is what a buyer must see: full pages, no errors, a partner on every lead, contact data
// only on the leads the workspace bought.
func (e *benchEnv) verify(ctx context.Context) error {
	type node struct {
		ID                     string  `json:"id"`
		EmailPreview           string  `json:"emailPreview"`
		Email                  *string `json:"email"`
		PurchasedByMyWorkspace bool    `json:"purchasedByMyWorkspace"`
		Partner                struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"partner"`
	}
	var after *string
	var last *rawLead
	bought, walked := 0, 0
	for page := 1; page <= e.o.Pages; page++ {
		var data struct {
			MarketplaceLeads struct {
				Edges []struct {
					Cursor string `json:"cursor"`
					Node   node   `json:"node"`
				} `json:"edges"`
				PageInfo pageInfo `json:"pageInfo"`
			} `json:"marketplaceLeads"`
		}
		if _, err := e.graphql(ctx, measuredQuery, map[string]any{"after": after}, &data); err != nil {
			return fmt.Errorf("graphql page %d: %w", page, err)
		}
		edges, pi := data.MarketplaceLeads.Edges, data.MarketplaceLeads.PageInfo
		if page == 1 && len(edges) != PageSize {
			return fmt.Errorf("graphql: the first page has %d edges, want %d", len(edges), PageSize)
		}
		raw, err := e.fetchRawPage(ctx, last, nil)
		if err != nil {
			return fmt.Errorf("raw page %d: %w", page, err)
		}
		if len(raw.leads) != len(edges) || raw.hasNext != pi.HasNextPage {
			return fmt.Errorf("page %d: graphql has %d leads, raw SQL %d", page, len(edges), len(raw.leads))
		}
		for i, edge := range edges {
			n, r := edge.Node, raw.leads[i]
			switch {
			case n.ID != r.ID:
				return fmt.Errorf("page %d, lead %d: graphql %s, raw SQL %s", page, i, n.ID, r.ID)
			case n.PurchasedByMyWorkspace != r.ContactVisible:
				return fmt.Errorf("lead %s: purchasedByMyWorkspace %t, raw SQL contact visible %t", n.ID, n.PurchasedByMyWorkspace, r.ContactVisible)
			case n.PurchasedByMyWorkspace && (n.Email == nil || *n.Email != r.Email):
				return fmt.Errorf("lead %s was bought but its e-mail is not shown", n.ID)
			case !n.PurchasedByMyWorkspace && n.Email != nil:
				return fmt.Errorf("lead %s was not bought but its e-mail is shown", n.ID)
			case !strings.Contains(n.EmailPreview, "***@"):
				return fmt.Errorf("lead %s: email preview %q is not masked", n.ID, n.EmailPreview)
			case n.Partner.ID != r.PartnerID || n.Partner.Name == "" || n.Partner.Name != raw.partners[r.PartnerID]:
				return fmt.Errorf("lead %s: partner %+v, raw SQL %s %q", n.ID, n.Partner, r.PartnerID, raw.partners[r.PartnerID])
			case edge.Cursor == "":
				return fmt.Errorf("lead %s has no cursor", n.ID)
			}
			if n.PurchasedByMyWorkspace {
				bought++
			}
		}
		walked += len(edges)
		if !pi.HasNextPage || pi.EndCursor == nil {
			break
		}
		after = pi.EndCursor
		end := raw.leads[len(raw.leads)-1]
		last = &end
	}
	fmt.Printf("verified: the first %d leads (walked as the workers walk) are identical on both sides; %d of them bought by the workspace (contact data shown), the others masked\n",
		walked, bought)
	return nil
}
