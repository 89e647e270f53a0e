package app_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/ingest/ingesttest"
	"github.com/leadmarket/leadmarket/internal/jobs"
)

// newUploadAPI is the real server on a database of the test's own with its background workers
// running, as `leadmarket serve` runs them: uploads are worked by River.
func newUploadAPI(t *testing.T, env map[string]string) *apiServer {
	t.Helper()
	vars := map[string]string{"ENV": "test", "JWT_SECRET": testSecret, "ADMIN_REQUIRE_MFA": "true"}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Build(cfg, db, logger)
	require.NoError(t, err)
	r, err := jobs.NewRunner(ctx, dbtest.URL(dbtest.NameOf(ctx, db)), a.Workers(), jobs.RunnerOptions{
		Concurrency: 2, FetchPollInterval: 100 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	srv := httptest.NewServer(a.Server.Handler())
	t.Cleanup(srv.Close)
	return &apiServer{t: t, db: db, url: srv.URL, tokens: auth.NewTokens(cfg.JWTSecret)}
}

// partnerMember makes a partner with a member and returns the partner's id and the member.
func partnerMember(t *testing.T, s *apiServer) (string, dbtest.User) {
	t.Helper()
	id := dbtest.CreatePartner(t, s.db, dbtest.PartnerOpts{})
	u := dbtest.CreateUser(t, s.db, dbtest.UserOpts{})
	_, err := s.db.ExecContext(context.Background(), "INSERT INTO partner_members (partner_id, user_id) VALUES (?, ?)", id, u.ID)
	require.NoError(t, err)
	return id, u
}

const uploadMutation = `mutation($in: UploadLeadsInput!) { uploadLeads(input: $in) {
	id status fileName fileSha256 dryRun rowsTotal errorCode errorMessage partner { id name } } }`

// multipartUpload builds a GraphQL multipart request (operations, map, then the file part) as
// the GraphQL multipart request specification says.
func multipartUpload(t *testing.T, query string, in map[string]any, fileName string, file []byte) (*bytes.Buffer, string) {
	t.Helper()
	in["file"] = nil
	ops, err := json.Marshal(map[string]any{"query": query, "variables": map[string]any{"in": in}})
	require.NoError(t, err)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	require.NoError(t, w.WriteField("operations", string(ops)))
	require.NoError(t, w.WriteField("map", `{"0": ["variables.in.file"]}`))
	part, err := w.CreateFormFile("0", fileName)
	require.NoError(t, err)
	_, err = part.Write(file)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return &body, w.FormDataContentType()
}

// upload posts file to uploadLeads for partnerID over HTTP; in holds the other input.
func (s *apiServer) upload(token, partnerID string, in map[string]any, fileName string, file []byte) gqlResponse {
	s.t.Helper()
	if in == nil {
		in = map[string]any{}
	}
	in["partnerId"] = partnerID
	body, contentType := multipartUpload(s.t, uploadMutation, in, fileName, file)
	return s.postMultipart(token, body, contentType, int64(body.Len()))
}

// postMultipart posts body; a negative length sends it chunked.
func (s *apiServer) postMultipart(token string, body io.Reader, contentType string, length int64) gqlResponse {
	s.t.Helper()
	if length < 0 {
		body = io.MultiReader(body) // hides the length: the client sends it chunked
	}
	req, err := http.NewRequest(http.MethodPost, s.url+"/graphql", body)
	require.NoError(s.t, err)
	req.ContentLength = length
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("GraphQL-Preflight", "1")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var out gqlResponse
	require.NoError(s.t, json.Unmarshal(b, &out), "status %d, body: %s", res.StatusCode, b)
	out.Status = res.StatusCode
	return out
}

// download GETs path with token and returns the status, the content type and the body.
func (s *apiServer) download(token, path string) (int, string, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	return res.StatusCode, res.Header.Get("Content-Type"), b
}

type uploadView struct {
	ID, Status, FileName, FileSha256 string
	DryRun                           bool
	RowsTotal, RowsProcessed         int
	AcceptedCount, DuplicateCount    int
	InvalidCount                     int
	ErrorCode, ErrorMessage          *string
	RejectionsCsvURL                 *string `json:"rejectionsCsvUrl"`
	Partner                          struct{ ID, Name string }
}

// waitFor polls leadUpload until the upload leaves QUEUED and PROCESSING, as a client would.
func (s *apiServer) waitFor(token, id string) uploadView {
	s.t.Helper()
	var out struct{ LeadUpload uploadView }
	deadline := time.Now().Add(60 * time.Second)
	for {
		s.do(token, `query($id: ID!) { leadUpload(id: $id) { id status fileName rowsTotal rowsProcessed acceptedCount
			duplicateCount invalidCount errorCode rejectionsCsvUrl partner { id name } } }`, map[string]any{"id": id}).decode(s.t, &out)
		if st := out.LeadUpload.Status; st != ingest.StatusQueued && st != ingest.StatusProcessing {
			return out.LeadUpload
		}
		require.True(s.t, time.Now().Before(deadline), "upload %s still %s", id, out.LeadUpload.Status)
		// Under RATE_LIMIT_STANDARD (100 a minute) however long the job takes on a busy machine.
		time.Sleep(700 * time.Millisecond)
	}
}

// A partner uploads a generated file through the real HTTP handler (a multipart request larger
// than the transport's in-memory limit), polls leadUpload while River works it, reads its
// rejections page by page, and downloads them as CSV with formula cells escaped. The same
// idempotency key with the same file then returns the same upload.
func TestUploadLeadsEndToEnd(t *testing.T) {
	t.Parallel()
	api := newUploadAPI(t, nil)
	partnerID, member := partnerMember(t, api)
	tok := api.token(member, false)

	var file bytes.Buffer
	const rows = 20_000
	gen, err := ingesttest.Generate(&file, ingesttest.Options{Rows: rows, Seed: 42, DuplicateFraction: 0.1, InvalidFraction: 0.03})
	require.NoError(t, err)
	// One more invalid row whose cells a spreadsheet would run as formulas.
	formulas := make([]string, len(ingesttest.Header))
	formulas[0], formulas[1], formulas[2], formulas[3], formulas[6] = "=cmd|' /C calc'!A0", "+Ann", "-Lee", "@Acme", "Acme"
	formulas[len(formulas)-1] = "=1+2"
	file.WriteString(strings.Join(formulas, ",") + "\n")
	require.Greater(t, file.Len(), 1<<20, "big enough to go to a temporary file, not memory")
	invalid := 1
	for _, n := range gen.Invalid {
		invalid += n
	}

	// The CSRF rule: a multipart request needs the preflight header.
	body, contentType := multipartUpload(t, uploadMutation, map[string]any{"partnerId": partnerID}, "x.csv", []byte("email\n"))
	req, err := http.NewRequest(http.MethodPost, api.url+"/graphql", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)

	start := time.Now()
	res1 := api.upload(tok, partnerID, map[string]any{"idempotencyKey": "e2e-1", "defaultCountry": "US"}, "crm export.csv", file.Bytes())
	require.Equal(t, http.StatusOK, res1.Status)
	var up struct{ UploadLeads uploadView }
	res1.decode(t, &up)
	staged := time.Since(start)
	require.Equal(t, ingest.StatusQueued, up.UploadLeads.Status)
	require.Equal(t, rows+1, up.UploadLeads.RowsTotal)
	require.Equal(t, "crm export.csv", up.UploadLeads.FileName)
	require.Len(t, up.UploadLeads.FileSha256, 64)
	require.Equal(t, partnerID, up.UploadLeads.Partner.ID)
	require.NotEmpty(t, up.UploadLeads.Partner.Name)

	done := api.waitFor(tok, up.UploadLeads.ID)
	t.Logf("%d rows (%d bytes): staged in %v, completed %v after the upload", rows+1, file.Len(), staged, time.Since(start))
	require.Equal(t, ingest.StatusCompleted, done.Status)
	require.Equal(t, rows+1, done.RowsProcessed)
	require.Equal(t, gen.Duplicates, done.DuplicateCount)
	require.Equal(t, invalid, done.InvalidCount)
	require.Equal(t, rows+1-gen.Duplicates-invalid, done.AcceptedCount)
	require.NotNil(t, done.RejectionsCsvURL)

	// The same key and file: the same upload, nothing staged again.
	var again struct{ UploadLeads uploadView }
	api.upload(tok, partnerID, map[string]any{"idempotencyKey": "e2e-1", "defaultCountry": "US"}, "again.csv", file.Bytes()).decode(t, &again)
	require.Equal(t, up.UploadLeads.ID, again.UploadLeads.ID)
	require.Equal(t, ingest.StatusCompleted, again.UploadLeads.Status)
	reused := api.upload(tok, partnerID, map[string]any{"idempotencyKey": "e2e-1", "defaultCountry": "US"}, "other.csv", []byte(header2))
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", reused.code())

	// Rejections, by reason and page by page.
	var rej struct {
		LeadUpload struct {
			Rejections struct {
				Edges []struct {
					Node struct {
						RowNumber         int
						Reason            string
						Field             *string
						Detail            string
						Raw               map[string]string
						DuplicateOfLeadID *string
					}
				}
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
	}
	q := `query($id: ID!, $after: String, $reason: RejectionReason) { leadUpload(id: $id) {
		rejections(first: 100, after: $after, reason: $reason) { edges { node { rowNumber reason field detail raw duplicateOfLeadId } }
		pageInfo { hasNextPage endCursor } } } }`
	seen, pages, last := 0, 0, 0
	var after any
	for {
		api.do(tok, q, map[string]any{"id": done.ID, "after": after, "reason": "DUPLICATE_IN_FILE"}).decode(t, &rej)
		for _, e := range rej.LeadUpload.Rejections.Edges {
			require.Equal(t, "DUPLICATE_IN_FILE", e.Node.Reason)
			require.Greater(t, e.Node.RowNumber, last, "row order")
			last = e.Node.RowNumber
			require.NotEmpty(t, e.Node.Raw["email"])
			require.Nil(t, e.Node.Field)
			seen++
		}
		pages++
		if !rej.LeadUpload.Rejections.PageInfo.HasNextPage {
			break
		}
		after = *rej.LeadUpload.Rejections.PageInfo.EndCursor
	}
	require.Equal(t, gen.Duplicates, seen)
	require.Greater(t, pages, 1)

	// The download: every rejection, the file's columns, formula cells neutralised.
	status, ctype, csvBody := api.download(tok, *done.RejectionsCsvURL)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "text/csv; charset=utf-8", ctype)
	require.True(t, bytes.HasPrefix(csvBody, []byte("\uFEFF")), "a byte-order mark for Excel")
	cr := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(csvBody, []byte("\uFEFF"))))
	cr.FieldsPerRecord = -1 // a malformed row keeps the fields it had
	records, err := cr.ReadAll()
	require.NoError(t, err)
	require.Equal(t, append([]string{"row_number", "reason", "field", "detail"}, ingesttest.Header...), records[0])
	require.Len(t, records, 1+done.DuplicateCount+done.InvalidCount)
	lastRecord := records[len(records)-1]
	require.Equal(t, fmt.Sprint(rows+2), lastRecord[0])
	require.Equal(t, "INVALID_EMAIL", lastRecord[1])
	require.Equal(t, "'=cmd|' /C calc'!A0", lastRecord[4], "a formula is text")
	require.Equal(t, []string{"'+Ann", "'-Lee", "'@Acme"}, lastRecord[5:8])
	require.Equal(t, "'=1+2", lastRecord[len(lastRecord)-1])
	for _, r := range records[1:] {
		for _, cell := range r {
			if cell != "" {
				require.NotContains(t, "=+-@\t\r", cell[:1], "row %s: %q", r[0], cell)
			}
		}
	}

	var list struct {
		LeadUploads struct {
			Edges []struct{ Node uploadView }
		}
	}
	api.do(tok, `query($p: ID!) { leadUploads(partnerId: $p) { edges { node { id status } } } }`,
		map[string]any{"p": partnerID}).decode(t, &list)
	require.Len(t, list.LeadUploads.Edges, 1)
	var stats struct {
		PartnerStats struct {
			LeadsTotal, Uploads, RowsRejected int
			RejectionsByReason                []struct {
				Reason string
				Count  int
			}
			VerificationPassRate *float64
		}
	}
	api.do(tok, `query($p: ID!) { partnerStats(partnerId: $p) { leadsTotal uploads rowsRejected
		rejectionsByReason { reason count } verificationPassRate } }`, map[string]any{"p": partnerID}).decode(t, &stats)
	require.Equal(t, done.AcceptedCount, stats.PartnerStats.LeadsTotal)
	require.Equal(t, 1, stats.PartnerStats.Uploads)
	require.Equal(t, done.DuplicateCount+done.InvalidCount, stats.PartnerStats.RowsRejected)
	require.Len(t, stats.PartnerStats.RejectionsByReason, 7)
	require.Nil(t, stats.PartnerStats.VerificationPassRate)
}

const header2 = "email,first_name,last_name,company_name\n"

// Over MAX_UPLOAD_BYTES a multipart request gets 413, announced (Content-Length) or not
// (chunked); below it, the same request goes through.
func TestUploadTooLarge(t *testing.T) {
	t.Parallel()
	api := newAPI(t, map[string]string{"MAX_UPLOAD_BYTES": "65536"})
	partnerID, member := partnerMember(t, api)
	tok := api.token(member, false)
	big := []byte(header2 + strings.Repeat("someone@example.com,Ann,Lee,Acme\n", 3000))

	for name, length := range map[string]int64{"announced": -2, "chunked": -1} {
		body, ct := multipartUpload(t, uploadMutation, map[string]any{"partnerId": partnerID}, "big.csv", big)
		if length == -2 {
			length = int64(body.Len())
		}
		res := api.postMultipart(tok, body, ct, length)
		require.Equal(t, http.StatusRequestEntityTooLarge, res.Status, name)
		require.Equal(t, "REQUEST_TOO_LARGE", res.code(), name)
	}
	small := api.upload(tok, partnerID, nil, "small.csv", []byte(header2+"someone@example.com,Ann,Lee,Acme\n"))
	require.Equal(t, http.StatusOK, small.Status)
	require.Empty(t, small.Errors)
	// A JSON request keeps its own, smaller limit.
	res := api.do(tok, `{ me { id } }`+strings.Repeat(" ", 3<<20), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status)
}

// Files that are not an upload come back as FAILED uploads with a code, rows that are bad as
// rejections: never an error or a 500, and the server goes on serving.
func TestUploadBadFilesOverHTTP(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	partnerID, member := partnerMember(t, api)
	tok := api.token(member, false)
	for name, tc := range map[string]struct {
		file []byte
		code string // "" = QUEUED
	}{
		"empty body":         {nil, "EMPTY_FILE"},
		"header only":        {[]byte(header2), "EMPTY_FILE"},
		"binary data":        {[]byte{0x00, 0x01, 0xFF, 0xFE, 0x00, 0x7F}, "NOT_CSV"},
		"invalid UTF-8":      {[]byte(header2 + "caf\xe9@example.com,Ann,Lee,Acme\n"), "NOT_CSV"},
		"10,000 columns":     {[]byte(strings.TrimSuffix(header2, "\n") + strings.Repeat(",c", 10_000) + "\n"), "TOO_MANY_COLUMNS"},
		"a 1 MB field":       {[]byte(header2 + "someone@example.com,Ann,Lee," + strings.Repeat("A", 1<<20) + "\n"), ""},
		"a 10,000-field row": {[]byte(header2 + "someone@example.com,Ann,Lee,Acme" + strings.Repeat(",x", 10_000) + "\n"), ""},
	} {
		res := api.upload(tok, partnerID, nil, name+".csv", tc.file)
		require.Equal(t, http.StatusOK, res.Status, name)
		var up struct{ UploadLeads uploadView }
		res.decode(t, &up)
		if tc.code == "" {
			require.Equal(t, ingest.StatusQueued, up.UploadLeads.Status, name)
			continue
		}
		require.Equal(t, ingest.StatusFailed, up.UploadLeads.Status, name)
		require.Equal(t, tc.code, *up.UploadLeads.ErrorCode, name)
		require.NotEmpty(t, *up.UploadLeads.ErrorMessage, name)
	}
	status, _ := get(t, api.url+"/healthz", nil)
	require.Equal(t, http.StatusOK, status)
}

// A partner cannot read, list, download or upload for another partner; a buyer cannot upload;
// an upload's existence is never disclosed (null, 404).
func TestUploadAccessOverHTTP(t *testing.T) {
	t.Parallel()
	api := newAPI(t, nil)
	partnerID, member := partnerMember(t, api)
	_, outsider := partnerMember(t, api)
	_, buyer := dbtest.CreateWorkspace(t, api.db, dbtest.WorkspaceOpts{})
	tok, otherTok, buyerTok := api.token(member, false), api.token(outsider, false), api.token(buyer, false)
	file := []byte(header2 + "someone@access.example,Ann,Lee,Acme\nbad,Bo,Li,Acme\n")

	var up struct{ UploadLeads uploadView }
	api.upload(tok, partnerID, nil, "mine.csv", file).decode(t, &up)
	id := up.UploadLeads.ID
	path := "/partners/uploads/" + id + "/rejections.csv"

	for name, who := range map[string]string{"another partner": otherTok, "a buyer": buyerTok} {
		res := api.upload(who, partnerID, nil, "theirs.csv", file)
		require.Equal(t, "FORBIDDEN", res.code(), name)
		require.JSONEq(t, "null", string(res.Data), name)

		var got struct{ LeadUpload *uploadView }
		api.do(who, `query($id: ID!) { leadUpload(id: $id) { id } }`, map[string]any{"id": id}).decode(t, &got)
		require.Nil(t, got.LeadUpload, name)
		for field, q := range map[string]string{
			"leadUploads":  `query($p: ID!) { leadUploads(partnerId: $p) { edges { node { id } } } }`,
			"partnerStats": `query($p: ID!) { partnerStats(partnerId: $p) { leadsTotal } }`,
		} {
			require.Equal(t, "FORBIDDEN", api.do(who, q, map[string]any{"p": partnerID}).code(), name+" "+field)
		}
		status, _, _ := api.download(who, path)
		require.Equal(t, http.StatusNotFound, status, name)
	}
	status, _, _ := api.download("", path)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = api.download(tok, "/partners/uploads/not-an-id/rejections.csv")
	require.Equal(t, http.StatusNotFound, status)
	status, _, _ = api.download(tok, "/partners/uploads/6f1f7c3e-0000-4000-8000-000000000000/rejections.csv")
	require.Equal(t, http.StatusNotFound, status, "a missing upload looks like a hidden one")
	status, _, body := api.download(tok, path)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, 1, bytes.Count(body, []byte("\n")), "the header alone until the job has run")

	var denials int
	require.NoError(t, api.db.NewRaw(`SELECT count(*) FROM security_events WHERE user_id = ? AND kind = 'access_denied'`,
		outsider.ID).Scan(context.Background(), &denials))
	require.Equal(t, 5, denials, "upload, leadUpload, leadUploads, partnerStats, download")
}
