package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/page"
)

// env is an ingest service on a database of the test's own: uploads commit, and the leads'
// dedup is global, so tests do not share one.
type env struct {
	t   testing.TB
	db  *bun.DB
	svc *ingest.Service
}

func newEnv(t testing.TB, o ingest.ServiceOptions) *env {
	t.Helper()
	db := dbtest.FreshDB(t)
	q, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	return &env{t: t, db: db, svc: ingest.NewService(db, q, o)}
}

// supplier is a partner and a member of it.
type supplier struct {
	PartnerID string
	Caller    *auth.Caller
}

func (e *env) supplier() supplier {
	e.t.Helper()
	id := dbtest.CreatePartner(e.t, e.db, dbtest.PartnerOpts{})
	u := dbtest.CreateUser(e.t, e.db, dbtest.UserOpts{})
	_, err := e.db.ExecContext(context.Background(), "INSERT INTO partner_members (partner_id, user_id) VALUES (?, ?)", id, u.ID)
	require.NoError(e.t, err)
	return supplier{PartnerID: id, Caller: &auth.Caller{UserID: u.ID, Email: u.Email}}
}

// upload uploads csv for s; in's PartnerID and File are filled in.
func (e *env) upload(s supplier, csv string, in ingest.UploadInput) *ingest.Upload {
	e.t.Helper()
	in.PartnerID = s.PartnerID
	in.File = strings.NewReader(csv)
	if in.FileName == "" {
		in.FileName = "leads.csv"
	}
	u, err := e.svc.Upload(context.Background(), s.Caller, in)
	require.NoError(e.t, err)
	require.NotNil(e.t, u)
	return u
}

// process runs the upload's job to the end, as River would, and returns the upload.
func (e *env) process(s supplier, id string) *ingest.Upload {
	e.t.Helper()
	for range 1000 {
		done, err := e.svc.Process(context.Background(), id)
		require.NoError(e.t, err)
		if done {
			break
		}
	}
	return e.get(s, id)
}

func (e *env) get(s supplier, id string) *ingest.Upload {
	e.t.Helper()
	u, err := e.svc.Get(context.Background(), s.Caller, id)
	require.NoError(e.t, err)
	require.NotNil(e.t, u)
	return u
}

// rejections returns every rejection of the upload, paging through them.
func (e *env) rejections(s supplier, id string) []ingest.StoredRejection {
	e.t.Helper()
	var all []ingest.StoredRejection
	first := 3
	args := page.Args{First: &first}
	for {
		p, err := e.svc.Rejections(context.Background(), s.Caller, id, "", args)
		require.NoError(e.t, err)
		all = append(all, p.Items...)
		if !p.HasNextPage {
			return all
		}
		args.After = p.Cursors[len(p.Cursors)-1]
	}
}

// leadsOf returns the leads with the given dedup keys, by key.
func (e *env) leadsOf(keys ...string) map[string]lead.Lead {
	e.t.Helper()
	ctx := context.Background()
	found, err := lead.MatchHashKeys(ctx, e.db, "SELECT unnest(?::text[])", pgdialect.Array(keys))
	require.NoError(e.t, err)
	ids := make([]string, len(found))
	keyOf := map[string]string{}
	for i, f := range found {
		ids[i] = f.ID
		keyOf[f.ID] = f.HashKey
	}
	ls, err := lead.ByIDs(ctx, e.db, lead.Viewer{UserID: uuid.NewString()}, ids)
	require.NoError(e.t, err)
	out := map[string]lead.Lead{}
	for _, l := range ls {
		out[keyOf[l.ID]] = l
	}
	return out
}

// leadCount counts the partner's leads.
func (e *env) leadCount(partnerID string) int {
	e.t.Helper()
	n, err := lead.Count(context.Background(), e.db, lead.Scope{PartnerIDs: []string{partnerID}})
	require.NoError(e.t, err)
	return n
}

// count runs a count query of the test's own tables.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.NewRaw(query, args...).Scan(context.Background(), &n))
	return n
}

// key is the dedup key of a contact as the upload normalises it.
func key(email, domain, phone, country string) string {
	return lead.Normalize(lead.Contact{Email: email, CompanyDomain: domain, Phone: phone, Country: country}).HashKey
}

// got is a rejection as the tests compare it.
type got struct {
	Row    int
	Reason ingest.Reason
	Field  string
}

func summarize(rs []ingest.StoredRejection) []got {
	out := make([]got, len(rs))
	for i, r := range rs {
		out[i] = got{r.RowNumber, r.Reason, r.Field}
	}
	return out
}

func counts(u *ingest.Upload) [4]int {
	return [4]int{u.RowsTotal, u.AcceptedCount, u.DuplicateCount, u.InvalidCount}
}
