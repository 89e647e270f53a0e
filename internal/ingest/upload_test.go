package ingest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/ingest"
)

const header = "email,first_name,last_name,company_name,company_domain,phone,country\n"

// One file per rule of the upload, each with the counts and rejections it must give: worked in
// batches of two rows, so every file spans several batches and dedup within it crosses them.
func TestUploadRules(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", ingest.MaxFieldChars+1)
	cases := []struct {
		name string
		csv  string
		// rows, accepted, duplicates, invalid
		want       [4]int
		rejections []got
	}{
		{
			name: "valid rows are accepted",
			csv: header +
				"ana@alpha.example,Ana,Alvarez,Alpha,alpha.example,+1 415 555 0101,US\n" +
				"ben@beta.example,Ben,Brown,Beta,,,\n" +
				"cy@gamma.example,Cy,Chen,Gamma,https://www.gamma.example/about,020 7946 0958,GB\n",
			want: [4]int{3, 3, 0, 0},
		},
		{
			name: "email, first name, last name and company are required",
			csv: header +
				",Ana,Alvarez,Alpha,,,\n" +
				"ben@beta.example,,Brown,Beta,,,\n" +
				"cy@gamma.example,Cy,,Gamma,,,\n" +
				"dee@delta.example,Dee,Diaz,,,,\n" +
				"eve@epsilon.example,Eve,Evans,Epsilon,,,\n",
			want: [4]int{5, 1, 0, 4},
			rejections: []got{{2, ingest.ReasonMissingFields, "email"}, {3, ingest.ReasonMissingFields, "first_name"},
				{4, ingest.ReasonMissingFields, "last_name"}, {5, ingest.ReasonMissingFields, "company_name"}},
		},
		{
			name: "an e-mail must be one",
			csv: header +
				"not-an-email,Ana,Alvarez,Alpha,,,\n" +
				"ben@nodot,Ben,Brown,Beta,,,\n" +
				"cy@gamma.example,Cy,Chen,Gamma,,,\n",
			want:       [4]int{3, 1, 0, 2},
			rejections: []got{{2, ingest.ReasonInvalidEmail, "email"}, {3, ingest.ReasonInvalidEmail, "email"}},
		},
		{
			name: "values outside what the schema accepts",
			csv: "email,first_name,last_name,company_name,seniority,company_size,country,price_credits,title\n" +
				"a@alpha.example,Ana,Alvarez,Alpha,Wizard,,,,\n" +
				"b@beta.example,Ben,Brown,Beta,,lots,,,\n" +
				"c@gamma.example,Cy,Chen,Gamma,,,Atlantis,,\n" +
				"d@delta.example,Dee,Diaz,Delta,,,,0,\n" +
				"e@epsilon.example,Eve,Evans,Epsilon,,,,1.5,\n" +
				"f@zeta.example,Fay,Fox,Zeta,,,,," + long + "\n" +
				"g@eta.example,Gus,Gray,Eta,VP Sales,51-200,Germany,7,\n",
			want: [4]int{7, 1, 0, 6},
			rejections: []got{{2, ingest.ReasonInvalidValue, "seniority"}, {3, ingest.ReasonInvalidValue, "company_size"},
				{4, ingest.ReasonInvalidValue, "country"}, {5, ingest.ReasonInvalidValue, "price_credits"},
				{6, ingest.ReasonInvalidValue, "price_credits"}, {7, ingest.ReasonInvalidValue, "title"}},
		},
		{
			name: "rows that are not CSV, or not the header's shape",
			csv: header +
				"a@alpha.example,Ana,Alvarez,Alpha,,,,extra\n" +
				"b@beta.example,Ben,Brown\n" +
				"c@gamma.example,C\"y,Chen,Gamma,,,\n" +
				"d@delta.example,Dee,Diaz,Delta,,,\n",
			want: [4]int{4, 1, 0, 3},
			rejections: []got{{2, ingest.ReasonMalformedRow, ""}, {3, ingest.ReasonMalformedRow, ""},
				{4, ingest.ReasonMalformedRow, ""}},
		},
		{
			name: "a lead repeated in the file, written differently, is accepted once",
			csv: header +
				"Jane.Doe@Acme.example,Jane,Doe,Acme,https://www.acme.example/,+1 (415) 555-2671,US\n" +
				"x@other.example,Xi,Xu,Other,,,\n" +
				" jane.doe@ACME.example ,Janet,Doe,Acme Inc,acme.example,415.555.2671,US\n" +
				"jane.doe@acme.example,Jane,Doe,Acme,www.acme.example,(415) 555 2671,\n",
			want:       [4]int{4, 2, 2, 0},
			rejections: []got{{4, ingest.ReasonDuplicateInFile, ""}, {5, ingest.ReasonDuplicateInFile, ""}},
		},
		{
			name: "row numbers are the spreadsheet's: a quoted line break stays in its row, blank rows count",
			csv: header +
				"a@alpha.example,Ana,Alvarez,\"Alpha\nand Sons\",,,\n" +
				"\n" +
				"b@beta.example,Ben,,Beta,,,\n",
			want:       [4]int{2, 1, 0, 1},
			rejections: []got{{4, ingest.ReasonMissingFields, "last_name"}},
		},
		{
			name: "CRM headers, semicolons and a byte-order mark",
			csv: "\uFEFFE-Mail Address;First Name;Surname;Organisation;Website;Mobile;Job Title;Employees;Country;Notes\n" +
				"ana@alpha.example;Ana;Alvarez;Alpha;alpha.example;+4930123456;VP Sales;51-200;Germany;=1+2\n" +
				"bad;Ben;Brown;Beta;;;;;;\n",
			want:       [4]int{2, 1, 0, 1},
			rejections: []got{{3, ingest.ReasonInvalidEmail, "email"}},
		},
	}
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 2})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := e.supplier()
			u := e.upload(s, tc.csv, ingest.UploadInput{})
			require.Equal(t, ingest.StatusQueued, u.Status)
			require.Equal(t, tc.want[0], u.RowsTotal)
			u = e.process(s, u.ID)
			require.Equal(t, ingest.StatusCompleted, u.Status)
			require.Equal(t, tc.want, counts(u))
			require.Equal(t, u.RowsTotal, u.RowsProcessed)
			rs := e.rejections(s, u.ID)
			if tc.rejections == nil {
				tc.rejections = []got{}
			}
			require.Equal(t, tc.rejections, summarize(rs))
			require.Equal(t, tc.want[1], e.leadCount(s.PartnerID))
			for _, r := range rs {
				require.NotEmpty(t, r.Detail)
				require.NotEmpty(t, r.Raw, "row %d keeps its raw values", r.RowNumber)
				require.Nil(t, r.DuplicateOfLeadID)
			}
			require.Zero(t, e.count("SELECT count(*) FROM lead_upload_rows WHERE upload_id = ?", u.ID), "staged rows are gone")
			require.Zero(t, e.count("SELECT count(*) FROM lead_upload_keys WHERE upload_id = ?", u.ID), "and the keys")
		})
	}
}

// Defaults apply where a row has no price or country; values the row has win; free text maps
// to the enums; the lead is stored normalised.
func TestUploadDefaultsAndMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{})
	s := e.supplier()
	price, country := 9, "France"
	u := e.upload(s, "Email;First Name;Surname;Company;Website;Phone Number;Job Title;Employees;Country;price_credits\n"+
		"Ana.Lopez@Alpha.example;Ana;Lopez;Alpha;https://www.alpha.example/team;030 1234567;VP Sales;51-200;Germany;7\n"+
		"ben@beta.example;Ben;Brown;Beta;;01 23 45 67 89;Founder & CEO;3;;\n",
		ingest.UploadInput{DefaultPriceCredits: &price, DefaultCountry: &country})
	u = e.process(s, u.ID)
	require.Equal(t, [4]int{2, 2, 0, 0}, counts(u))

	ana := key("Ana.Lopez@Alpha.example", "https://www.alpha.example/team", "030 1234567", "DE")
	ben := key("ben@beta.example", "", "01 23 45 67 89", "FR")
	ls := e.leadsOf(ana, ben)
	require.Len(t, ls, 2)
	require.Equal(t, "DE", ls[ana].Country)
	require.Equal(t, 7, ls[ana].PriceCredits)
	require.Equal(t, "VP", ls[ana].Seniority)
	require.Equal(t, "SIZE_51_200", ls[ana].CompanySize)
	require.Equal(t, "a***@alpha.example", ls[ana].EmailPreview)
	require.Equal(t, "********67", ls[ana].PhonePreview, "the phone is read in the row's country")
	require.Equal(t, "FR", ls[ben].Country, "defaultCountry where the row has none")
	require.Equal(t, 9, ls[ben].PriceCredits, "defaultPriceCredits where the row has none")
	require.Equal(t, "OWNER", ls[ben].Seniority)
	require.Equal(t, "SIZE_1_10", ls[ben].CompanySize)
	require.Equal(t, "********89", ls[ben].PhonePreview, "a national number read in the default country")
	require.Equal(t, "PENDING", ls[ben].VerificationStatus)
	require.Equal(t, "ACTIVE", ls[ben].Status)

	_, err := e.svc.Upload(context.Background(), s.Caller, ingest.UploadInput{PartnerID: s.PartnerID,
		File: strings.NewReader(header), DefaultCountry: new("Atlantis")})
	require.ErrorContains(t, err, "defaultCountry")
}
