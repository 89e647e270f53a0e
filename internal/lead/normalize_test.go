package lead_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// dedupVectors is testdata/dedup_vectors.json, the project's copy of
// ../shared/fixtures/dedup_vectors.json (TestDedupVectorsAreTheSharedOnes keeps them equal): the
// cases the application and the database must both reproduce.
type dedupVectors struct {
	Cases []struct {
		Note  string `json:"note"`
		Input struct {
			CompanyDomain string `json:"company_domain"`
			Country       string `json:"country"`
			Email         string `json:"email"`
			Phone         string `json:"phone"`
		} `json:"input"`
		Expect struct {
			EmailNormalized         string `json:"email_normalized"`
			CompanyDomainNormalized string `json:"company_domain_normalized"`
			PhoneE164               string `json:"phone_e164"`
			HashInput               string `json:"hash_input"`
			HashKey                 string `json:"hash_key"`
		} `json:"expect"`
	} `json:"cases"`
	FreeMailDomains []string `json:"free_mail_domains"`
}

// vectorsPath is the project's copy of the vectors, relative to this package (the tests' working
// directory).
const vectorsPath = "testdata/dedup_vectors.json"

// sharedVectorsPath is where the shared fixtures sit, relative to the repository's root: beside
// the checkout, as CI and the team's machines lay them out.
const sharedVectorsPath = "../shared/fixtures/dedup_vectors.json"

// loadVectors reads the project's copy of the vectors. A missing or empty file fails the test:
// skipping would let the dedup contract go unchecked.
func loadVectors(t testing.TB) dedupVectors {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	require.NoError(t, err)
	var v dedupVectors
	require.NoError(t, json.Unmarshal(b, &v), "parse %s", vectorsPath)
	require.NotEmpty(t, v.Cases, "no cases in %s", vectorsPath)
	return v
}

// The project's copy of the vectors is the shared one, byte for byte, wherever the shared one is
// beside the checkout; a clone on its own skips this and tests with its copy.
func TestDedupVectorsAreTheSharedOnes(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", "..")) // internal/lead -> the repository's root
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "%s is not the repository's root", root)
	shared := filepath.Join(root, sharedVectorsPath)
	want, err := os.ReadFile(shared)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is not there: nothing to compare the copy with", shared)
	}
	require.NoError(t, err)
	got, err := os.ReadFile(vectorsPath)
	require.NoError(t, err)
	require.True(t, bytes.Equal(want, got), "internal/lead/%s differs from %s: copy it again (`diff` shows how)",
		vectorsPath, shared)
}

func TestNormalizeVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, tc := range v.Cases {
		t.Run(tc.Note, func(t *testing.T) {
			t.Parallel()
			got := lead.Normalize(lead.Contact{
				Email:         tc.Input.Email,
				CompanyDomain: tc.Input.CompanyDomain,
				Phone:         tc.Input.Phone,
				Country:       tc.Input.Country,
			})
			require.Equal(t, tc.Expect.EmailNormalized, got.Email, "email_normalized")
			require.Equal(t, tc.Expect.CompanyDomainNormalized, got.CompanyDomain, "company_domain_normalized")
			require.Equal(t, tc.Expect.PhoneE164, got.PhoneE164, "phone_e164")
			require.Equal(t, tc.Expect.HashInput, got.Email+"|"+got.CompanyDomain+"|"+got.PhoneE164, "hash_input")
			require.Equal(t, tc.Expect.HashKey, got.HashKey, "hash_key")
			require.Equal(t, tc.Expect.HashKey, lead.HashKey(got.Email, got.CompanyDomain, got.PhoneE164))
			require.True(t, lead.ValidEmail(got.Email), "fixture emails are valid")
		})
	}
}

func TestFreeMailDomainsMatchVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	require.NotEmpty(t, v.FreeMailDomains)
	for _, d := range v.FreeMailDomains {
		require.True(t, lead.IsFreeMailDomain(d), d)
	}
	require.False(t, lead.IsFreeMailDomain("acme.com"))
}

// insertLead inserts a lead for a new partner with n's normalised columns and a deliberately
// wrong hash_key, and returns the hash_key the database stored.
func insertLead(ctx context.Context, t *testing.T, tx bun.Tx, raw lead.Contact, n lead.Normalized) (string, error) {
	t.Helper()
	var partnerID string
	require.NoError(t, tx.NewRaw("INSERT INTO partners (name) VALUES ('p') RETURNING id").Scan(ctx, &partnerID))
	var hashKey string
	err := tx.NewRaw(`INSERT INTO leads (partner_id, email, company_domain, phone, country,
		email_normalized, company_domain_normalized, phone_e164, hash_key, price_credits)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'wrong', 1) RETURNING hash_key`,
		partnerID, raw.Email, raw.CompanyDomain, raw.Phone, raw.Country,
		n.Email, n.CompanyDomain, n.PhoneE164).Scan(ctx, &hashKey)
	return hashKey, err
}

// TestHashKeyTrigger checks that the database computes the same key as Go for every vector.
// Each case gets its own transaction because some cases share a key (the gmail ones) and would
// collide. The subtests run one after another: a parallel case holding the same uncommitted key
// would only make the other wait.
func TestHashKeyTrigger(t *testing.T) {
	ctx := context.Background()
	v := loadVectors(t)
	for _, tc := range v.Cases {
		t.Run(tc.Note, func(t *testing.T) {
			tx := dbtest.TestTx(t)
			raw := lead.Contact{
				Email:         tc.Input.Email,
				CompanyDomain: tc.Input.CompanyDomain,
				Phone:         tc.Input.Phone,
				Country:       tc.Input.Country,
			}
			n := lead.Normalize(raw)

			stored, err := insertLead(ctx, t, tx, raw, n)
			require.NoError(t, err)
			require.Equal(t, tc.Expect.HashKey, stored, "trigger-set hash_key")

			var fromFunc string
			require.NoError(t, tx.NewRaw("SELECT lead_hash_key(?, ?, ?)",
				tc.Expect.EmailNormalized, tc.Expect.CompanyDomainNormalized, tc.Expect.PhoneE164).Scan(ctx, &fromFunc))
			require.Equal(t, tc.Expect.HashKey, fromFunc, "lead_hash_key()")

			// Setting hash_key by hand is overridden as well.
			var updated string
			require.NoError(t, tx.NewRaw("UPDATE leads SET hash_key = 'wrong' WHERE hash_key = ? RETURNING hash_key",
				tc.Expect.HashKey).Scan(ctx, &updated))
			require.Equal(t, tc.Expect.HashKey, updated, "hash_key after update")
		})
	}
}

// TestHashKeyUnique inserts two vectors that normalise to the same contact (gmail with dots and
// +tag, and googlemail) and expects the unique index to refuse the second.
func TestHashKeyUnique(t *testing.T) {
	ctx := context.Background()
	tx := dbtest.TestTx(t)
	first := lead.Contact{Email: "J.o.h.n.Smith+leads@gmail.com", Phone: "415.555.2671", Country: "US"}
	second := lead.Contact{Email: "john.smith@googlemail.com", Phone: "(415) 555-2671"}
	n1, n2 := lead.Normalize(first), lead.Normalize(second)
	require.Equal(t, n1, n2)

	_, err := insertLead(ctx, t, tx, first, n1)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "SAVEPOINT dup")
	require.NoError(t, err)
	_, err = insertLead(ctx, t, tx, second, n2)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23505", pgErr.Code, "unique_violation")
	require.Equal(t, "leads_hash_key_key", pgErr.ConstraintName)
	require.True(t, db.IsUniqueViolation(err, "leads_hash_key_key"))
	_, err = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT dup")
	require.NoError(t, err)

	// The same contact with another phone is another lead.
	third := second
	third.Phone = "+1 212 555 0100"
	_, err = insertLead(ctx, t, tx, third, lead.Normalize(third))
	require.NoError(t, err)
}

func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{" \t\n ", ""},
		{"JOHN.SMITH+X@GOOGLEMAIL.COM", "johnsmith@gmail.com"},
		{"j.s+a+b@gmail.com", "js@gmail.com"},
		{"+only@gmail.com", "@gmail.com"},
		{"first.last@gmail.com.", "first.last@gmail.com."}, // not gmail.com, left for ValidEmail
		{"no-at-sign", "no-at-sign"},
		{"a@b@gmail.com", "a@b@gmail.com"}, // two "@": left for ValidEmail to reject
		{"mailto:Jane@Acme.com", "mailto:jane@acme.com"},
		{"sales+eu@contoso.io", "sales+eu@contoso.io"},
		// Invisible characters pasted along with an address (byte-order mark, zero-width space).
		{"\ufeffJane@Acme.com\u200b", "jane@acme.com"},
		{"\u2060 jane@acme.com", "jane@acme.com"},
	} {
		require.Equal(t, tc.want, lead.NormalizeEmail(tc.in), "NormalizeEmail(%q)", tc.in)
	}
}

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ domain, email, want string }{
		{"", "", ""},
		{"   ", "jane@acme.com", "acme.com"},
		{"   ", "jane@gmail.com", ""},
		{"", "no-at-sign", ""},
		{"https://user:pass@WWW.Acme.com:8443/x?y#z", "", "acme.com"},
		{"acme.com:443", "", "acme.com"},
		{"mailto:sales@acme.com", "", "acme.com"},
		{"//acme.com/", "", "acme.com"},
		{"acme.com...", "", "acme.com"},
		{"www.com", "", "www.com"},
		{"www.www.acme.com", "", "www.acme.com"},
		{"https://", "ops@widgets.co.uk", "widgets.co.uk"},
		{"?#/", "x@outlook.com", ""},
		{"gmail.com", "x@gmail.com", "gmail.com"}, // given explicitly: the rule only filters the fallback
		{"\ufeffacme.com\u200b", "", "acme.com"},
	} {
		require.Equal(t, tc.want, lead.NormalizeDomain(tc.domain, tc.email), "NormalizeDomain(%q, %q)", tc.domain, tc.email)
	}
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ phone, country, want string }{
		{"", "US", ""},
		{"   ", "", ""},
		{"(415) 555-2671", "us", "+14155552671"},
		{"(415) 555-2671", " US ", "+14155552671"},
		{"020 7946 0958", "", ""}, // read as a US number, which it cannot be
		{"+44 20 7946 0958", "", "+442079460958"},
		{"020 7946 0958", "XX", ""}, // unknown region, national number
		{"+44 20 7946 0958", "XX", "+442079460958"},
		{"tel:+1-415-555-2671", "", "+14155552671"},
		{"mailto:someone@example.com", "US", ""},
		// libphonenumber calls this German number possible, but it has 17 digits and E.164 15.
		{"030 1234567890123", "DE", ""},
		// Possible only for local dialling: without its area code it has no E.164 form.
		{"555-2671", "US", ""},
	} {
		require.Equal(t, tc.want, lead.NormalizePhone(tc.phone, tc.country), "NormalizePhone(%q, %q)", tc.phone, tc.country)
	}
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	// SHA-256 of "||", so an all-empty contact still has a well-defined key.
	require.Equal(t, "565d240f5343e625ae579a4d45a770f1f02c6368b5ed4d06da4fbe6f47c28866", lead.HashKey("", "", ""))
	require.NotEqual(t, lead.HashKey("a|b", "", ""), lead.HashKey("a", "b", ""),
		"the separator is part of the key; values never contain '|' in practice")
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"jane.doe@acme.com", true},
		{"sales+eu@contoso.io", true},
		{"ops@widgets.co.uk", true},
		{"", false},
		{"@acme.com", false},
		{"jane@", false},
		{"jane@localhost", false},
		{"jane@acme.com.", false},
		{"jane@.acme.com", false},
		{"jane@acme..com", false},
		{"a@b@acme.com", false},
		{"jane doe@acme.com", false},
		{"jane@acme.com\n", false},
		{"no-at-sign", false},
		{"\xff@acme.com", false},
	} {
		require.Equal(t, tc.want, lead.ValidEmail(tc.in), "ValidEmail(%q)", tc.in)
	}
}

var e164Pattern = regexp.MustCompile(`^\+[1-9][0-9]{5,14}$`)

// FuzzNormalize checks that Normalize never panics, that NormalizeEmail is idempotent (a stored
// normalised e-mail normalised again must not change its dedup key) and that a phone it returns
// passes the leads table's phone_e164 check.
func FuzzNormalize(f *testing.F) {
	for _, tc := range loadVectors(f).Cases {
		f.Add(tc.Input.Email, tc.Input.CompanyDomain, tc.Input.Phone, tc.Input.Country)
	}
	f.Add(" \t", " \t", " \t", " \t")
	f.Add("mailto:A.B+c@GoogleMail.com", "https://u:p@www.x.com:80/?q#f", "tel:+1-415-555-2671", "gb")
	f.Add("@", "@", "+", "ZZ")
	f.Fuzz(func(t *testing.T, email, domain, phone, country string) {
		n := lead.Normalize(lead.Contact{Email: email, CompanyDomain: domain, Phone: phone, Country: country})
		require.Equal(t, n.Email, lead.NormalizeEmail(n.Email), "NormalizeEmail not idempotent on %q", email)
		require.Equal(t, lead.HashKey(n.Email, n.CompanyDomain, n.PhoneE164), n.HashKey)
		if n.PhoneE164 != "" {
			require.Regexp(t, e164Pattern, n.PhoneE164)
		}
		_ = lead.ValidEmail(n.Email)
	})
}
