package ingest_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/lead"
)

func TestParseSeniority(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string // "" = refused
	}{
		{"", "UNKNOWN"}, {"  ", "UNKNOWN"}, {"-", "UNKNOWN"}, {"n/a", "UNKNOWN"}, {"Unknown", "UNKNOWN"},
		{"ENTRY", "ENTRY"}, {"senior", "SENIOR"}, {"Manager", "MANAGER"}, {"director", "DIRECTOR"},
		{"vp", "VP"}, {"C_LEVEL", "C_LEVEL"}, {"c_level", "C_LEVEL"}, {"owner", "OWNER"},
		{"VP Sales", "VP"}, {"Vice President", "VP"}, {"Vice-President, Marketing", "VP"}, {"SVP Engineering", "VP"},
		{"Senior Vice President", "VP"}, {"Executive Vice President", "VP"}, {"V.P. Operations", "VP"},
		{"Director of Marketing", "DIRECTOR"}, {"Sr. Director", "DIRECTOR"}, {"Associate Director", "DIRECTOR"},
		{"C-level", "C_LEVEL"}, {"C-Suite", "C_LEVEL"}, {"CXO", "C_LEVEL"}, {"CEO", "C_LEVEL"}, {"cto", "C_LEVEL"},
		{"Chief Revenue Officer", "C_LEVEL"}, {"President", "C_LEVEL"}, {"President & CEO", "C_LEVEL"},
		{"Founder", "OWNER"}, {"Co-Founder", "OWNER"}, {"Founder & CEO", "OWNER"}, {"Owner/President", "OWNER"},
		{"Owner & Managing Director", "OWNER"},
		{"Sales Manager", "MANAGER"}, {"Senior Manager", "MANAGER"}, {"Supervisor", "MANAGER"},
		{"Senior Software Engineer", "SENIOR"}, {"Sr Engineer", "SENIOR"},
		{"Junior Analyst", "ENTRY"}, {"Intern", "ENTRY"}, {"Entry Level", "ENTRY"}, {"Trainee", "ENTRY"},

		{"Wizard", ""}, {"Software Engineer", ""}, {"Head of Sales", ""}, {"Team Lead", ""}, {"Executive", ""},
		{"Partner", ""}, {"Managing Director", ""}, {"Executive Director", ""}, {"Product Owner", ""},
		{"Director, VP", ""}, {"Manager / Director", ""}, {"Senior Junior", ""}, {"VP or CEO", ""},
	}
	for _, c := range cases {
		got, ok := ingest.ParseSeniority(c.in)
		if c.want == "" {
			require.False(t, ok, "%q read as %q", c.in, got)
			continue
		}
		require.True(t, ok, "%q refused", c.in)
		require.Equal(t, c.want, got, c.in)
	}
}

func TestParseCompanySize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string // "" = refused
	}{
		{"", "UNKNOWN"}, {"unknown", "UNKNOWN"}, {"N/A", "UNKNOWN"},
		{"SIZE_51_200", "SIZE_51_200"}, {"size_5001_plus", "SIZE_5001_PLUS"},
		{"51-200", "SIZE_51_200"}, {"51 - 200", "SIZE_51_200"}, {"51 to 200", "SIZE_51_200"},
		{"201–500", "SIZE_201_500"}, {"201—500", "SIZE_201_500"}, {"51-200 employees", "SIZE_51_200"},
		{"1-10", "SIZE_1_10"}, {"0-10", "SIZE_1_10"}, {"2-10", "SIZE_1_10"}, {"1-9", "SIZE_1_10"},
		{"11-50", "SIZE_11_50"}, {"10-50", "SIZE_11_50"}, {"10-49", "SIZE_11_50"},
		{"501-1000", "SIZE_501_1000"}, {"501-1,000", "SIZE_501_1000"},
		{"1,001-5,000", "SIZE_1001_5000"}, {"1000-5000", "SIZE_1001_5000"}, {"1.001-5.000", "SIZE_1001_5000"},
		{"1000-4999", "SIZE_1001_5000"}, {"2.5k", "SIZE_1001_5000"}, {"1.5k-5k", "SIZE_1001_5000"},
		{"5000+", "SIZE_5001_PLUS"}, {"5,000+", "SIZE_5001_PLUS"}, {"5001+", "SIZE_5001_PLUS"},
		{"10001", "SIZE_5001_PLUS"}, {"10,001+", "SIZE_5001_PLUS"}, {"10k+", "SIZE_5001_PLUS"},
		{"more than 5000", "SIZE_5001_PLUS"}, {"> 5000", "SIZE_5001_PLUS"}, {"over 10000 employees", "SIZE_5001_PLUS"},
		{"5000 or more", "SIZE_5001_PLUS"}, {"under 10", "SIZE_1_10"}, {"less than 11", "SIZE_1_10"}, {"<= 10", "SIZE_1_10"},
		{"7", "SIZE_1_10"}, {"42", "SIZE_11_50"}, {"200", "SIZE_51_200"}, {"201", "SIZE_201_500"}, {"1,500", "SIZE_1001_5000"},
		{"2.3k", "SIZE_1001_5000"},

		{"0", ""}, {"-5", ""}, {"50-249", ""}, {"1000+", ""}, {"1-100", ""}, {"more than 10", ""}, {"200-100", ""},
		{"big", ""}, {"a lot", ""}, {"1,00", ""}, {"12,3456", ""}, {"1.5", ""}, {"999999999999", ""}, {"k", ""},
		{"under 1", ""}, {"1.2345k", ""},
	}
	for _, c := range cases {
		got, ok := ingest.ParseCompanySize(c.in)
		if c.want == "" {
			require.False(t, ok, "%q read as %q", c.in, got)
			continue
		}
		require.True(t, ok, "%q refused", c.in)
		require.Equal(t, c.want, got, c.in)
	}
}

func TestParseCountry(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"US", "US"}, {"us", "US"}, {" de ", "DE"}, {"USA", "US"}, {"deu", "DE"}, {"GBR", "GB"},
		{"United States", "US"}, {"United States of America", "US"}, {"U.S.A.", "US"}, {"united states", "US"},
		{"Germany", "DE"}, {"GERMANY", "DE"}, {"UK", "GB"}, {"United Kingdom", "GB"}, {"Great Britain", "GB"},
		{"England", "GB"}, {"France", "FR"}, {"The Netherlands", "NL"}, {"Netherlands (the)", "NL"}, {"Holland", "NL"},
		{"Côte d'Ivoire", "CI"}, {"Cote d’Ivoire", "CI"}, {"Ivory Coast", "CI"}, {"Curaçao", "CW"}, {"Curacao", "CW"},
		{"Réunion", "RE"}, {"Türkiye", "TR"}, {"Turkey", "TR"}, {"South Korea", "KR"}, {"Korea, Republic of", "KR"},
		{"North Korea", "KP"}, {"Russia", "RU"}, {"Russian Federation", "RU"}, {"Viet Nam", "VN"}, {"Vietnam", "VN"},
		{"Bosnia & Herzegovina", "BA"}, {"Bosnia and Herzegovina", "BA"}, {"St. Lucia", "LC"}, {"Saint Lucia", "LC"},
		{"St Kitts & Nevis", "KN"}, {"Czech Republic", "CZ"}, {"Czechia", "CZ"}, {"UAE", "AE"},
		{"Democratic Republic of the Congo", "CD"}, {"Congo", "CG"}, {"Taiwan", "TW"}, {"Hong Kong", "HK"},
		{"Kosovo", "XK"}, {"XK", "XK"}, {"Åland Islands", "AX"}, {"Aland Islands", "AX"},

		{"", ""}, {"EU", ""}, {"Europe", ""}, {"California", ""}, {"Atlantis", ""}, {"ZZ", ""}, {"XXX", ""},
		{"Korea", ""}, {"Deutschland", ""},
	}
	for _, c := range cases {
		got, ok := ingest.ParseCountry(c.in)
		if c.want == "" {
			require.False(t, ok, "%q read as %q", c.in, got)
			continue
		}
		require.True(t, ok, "%q refused", c.in)
		require.Equal(t, c.want, got, c.in)
	}
}

func TestParsePriceCredits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int // 0 = refused
	}{
		{"1", 1}, {"5", 5}, {" 12 ", 12}, {"007", 7}, {"5.0", 5}, {"5.00", 5}, {"2147483647", 2147483647},
		{"0", 0}, {"-3", 0}, {"+5", 0}, {"abc", 0}, {"5.5", 0}, {"5.", 0}, {".5", 0}, {"1,000", 0}, {"1.000", 0},
		{"2147483648", 0}, {"99999999999999999999", 0}, {"", 0}, {"5 credits", 0}, {"٥", 0},
	}
	for _, c := range cases {
		got, ok := ingest.ParsePriceCredits(c.in)
		if c.want == 0 {
			require.False(t, ok, "%q read as %d", c.in, got)
			continue
		}
		require.True(t, ok, "%q refused", c.in)
		require.Equal(t, c.want, got, c.in)
	}
}

func TestNewDefaults(t *testing.T) {
	t.Parallel()
	ptr := func(i int) *int { return &i }
	str := func(s string) *string { return &s }

	d, err := ingest.NewDefaults(nil, nil)
	require.NoError(t, err)
	require.Equal(t, ingest.Defaults{PriceCredits: 5}, d)

	d, err = ingest.NewDefaults(ptr(20), str("gb"))
	require.NoError(t, err)
	require.Equal(t, ingest.Defaults{PriceCredits: 20, Country: "GB"}, d)

	d, err = ingest.NewDefaults(nil, str("  "))
	require.NoError(t, err)
	require.Equal(t, ingest.Defaults{PriceCredits: 5}, d, "a blank country is no country")

	for _, bad := range []struct {
		price   *int
		country *string
		field   string
	}{
		{ptr(0), nil, "defaultPriceCredits"},
		{ptr(-1), nil, "defaultPriceCredits"},
		{nil, str("Atlantis"), "defaultCountry"},
	} {
		_, err := ingest.NewDefaults(bad.price, bad.country)
		require.True(t, apperr.Is(err, apperr.InvalidInput), "%v", err)
		var e *apperr.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, bad.field, e.Details["field"])
	}
}

// TestValidateFromStagedValues is the job's path: the header is rebuilt from the stored names
// and each staged row validated, with the same outcome as reading the file.
func TestValidateFromStagedValues(t *testing.T) {
	t.Parallel()
	h, err := ingest.NewHeader([]string{" Email ", "First Name", "Last Name", "Company", "Seniority", "Notes"})
	require.NoError(t, err)
	require.Equal(t, []string{"Email", "First Name", "Last Name", "Company", "Seniority", "Notes"}, h.Names)

	s, rej := ingest.Validate(h, ingest.Row{Number: 9, FieldCount: 6,
		Values: []string{" Jane@Acme.com ", " Jane ", "Doe", "Acme", "CEO", "x"}}, ingest.Defaults{})
	require.Nil(t, rej)
	require.Equal(t, 9, s.RowNumber)
	require.Equal(t, "Jane@Acme.com", s.Email)
	require.Equal(t, "Jane", s.FirstName)
	require.Equal(t, "C_LEVEL", s.Seniority)
	require.Equal(t, "UNKNOWN", s.CompanySize)
	require.Equal(t, 5, s.PriceCredits)
	require.Equal(t, lead.Normalize(lead.Contact{Email: "Jane@Acme.com"}), s.Normalized,
		"normalisation is lead.Normalize's")

	_, rej = ingest.Validate(h, ingest.Row{Number: 10, FieldCount: 6,
		Values: []string{"jane@acme.com", "\u200b", "Doe", " ", "", ""}}, ingest.Defaults{})
	require.Equal(t, &ingest.Rejection{RowNumber: 10, Reason: ingest.ReasonMissingFields, Field: "first_name",
		Detail: "missing first_name, company_name", Raw: []string{"jane@acme.com", "\u200b", "Doe", " ", "", ""}}, rej,
		"a zero-width space is not a name")

	_, rej = ingest.Validate(h, ingest.Row{Number: 11, FieldCount: 6, Malformed: "a quote",
		Values: []string{"jane@acme.com"}}, ingest.Defaults{})
	require.Equal(t, ingest.ReasonMalformedRow, rej.Reason)
	require.Equal(t, "", rej.Field)
	require.Contains(t, rej.Detail, "a quote")

	_, rej = ingest.Validate(h, ingest.Row{Number: 12, FieldCount: 6,
		Values: []string{"jane@@acme.com", "Jane", "Doe", "Acme", "", ""}}, ingest.Defaults{})
	require.Equal(t, ingest.ReasonInvalidEmail, rej.Reason)
	require.Equal(t, `"jane@@acme.com" is not a valid e-mail address`, rej.Detail)
}

func TestSeniorityFromTitle(t *testing.T) {
	t.Parallel()
	h, err := ingest.NewHeader([]string{"email", "first_name", "last_name", "company_name", "title", "seniority"})
	require.NoError(t, err)
	for _, c := range []struct{ title, seniority, want string }{
		{"VP Sales", "", "VP"},
		{"Chief Executive Officer", "", "C_LEVEL"},
		{"Head of Sales", "", "UNKNOWN"},
		{"Director, VP", "", "UNKNOWN"},
		{"VP Sales", "Director", "DIRECTOR"},
		{"", "", "UNKNOWN"},
	} {
		s, rej := ingest.Validate(h, ingest.Row{Number: 2, FieldCount: 6,
			Values: []string{"a@acme.com", "A", "A", "Acme", c.title, c.seniority}}, ingest.Defaults{})
		require.Nil(t, rej, "%+v", c)
		require.Equal(t, c.want, s.Seniority, "%+v", c)
	}
}

func TestNewHeader(t *testing.T) {
	t.Parallel()
	h, err := ingest.NewHeader([]string{"EMAIL", "first-name", "LAST NAME", "company_name", "Phone Number", "Job-Title"})
	require.NoError(t, err)
	require.Equal(t, 0, h.Index(ingest.ColumnEmail))
	require.Equal(t, 4, h.Index(ingest.ColumnPhone))
	require.Equal(t, 5, h.Index(ingest.ColumnTitle))
	require.Equal(t, -1, h.Index(ingest.ColumnCity))
	require.False(t, h.Has(ingest.ColumnCity))

	raw := h.RawMap([]string{"a", "b", "c", "d", "e", "f", "extra1", "extra2"})
	require.Equal(t, "extra1", raw["column_7"], "values beyond the header keep their position")
	require.Equal(t, "extra2", raw["column_8"])
	require.Equal(t, map[string]string{"EMAIL": "a"}, h.RawMap([]string{"a"}))

	_, err = ingest.NewHeader(make([]string, ingest.MaxColumns+1))
	fe, ok := ingest.AsFileError(err)
	require.True(t, ok)
	require.Equal(t, ingest.CodeTooManyColumns, fe.Code)
}

func TestColumns(t *testing.T) {
	t.Parallel()
	var names []string
	for _, c := range ingest.Columns() {
		names = append(names, c.String())
		for _, a := range c.Aliases() {
			got, ok := ingest.ColumnOf(a)
			require.True(t, ok, a)
			require.Equal(t, c, got, a)
		}
	}
	require.Equal(t, []string{"email", "first_name", "last_name", "company_name", "company_domain", "phone",
		"linkedin_url", "title", "seniority", "department", "company_size", "industry", "country", "region", "city",
		"price_credits"}, names)
	for alias, want := range map[string]ingest.Column{
		"e-mail": ingest.ColumnEmail, "Email Address": ingest.ColumnEmail, "E_MAIL_ADDRESS": ingest.ColumnEmail,
		"firstname": ingest.ColumnFirstName, "First Name": ingest.ColumnFirstName, "surname": ingest.ColumnLastName,
		"Organization": ingest.ColumnCompanyName, "company": ingest.ColumnCompanyName, "Website": ingest.ColumnCompanyDomain,
		"domain": ingest.ColumnCompanyDomain, "Mobile": ingest.ColumnPhone, "Phone Number": ingest.ColumnPhone,
		"LinkedIn": ingest.ColumnLinkedinURL, "LinkedIn URL": ingest.ColumnLinkedinURL, "Job Title": ingest.ColumnTitle,
		"Employees": ingest.ColumnCompanySize, "State": ingest.ColumnRegion, "Price Credits": ingest.ColumnPriceCredits,
	} {
		got, ok := ingest.ColumnOf(alias)
		require.True(t, ok, alias)
		require.Equal(t, want, got, alias)
	}
	_, ok := ingest.ColumnOf("Favourite Colour")
	require.False(t, ok)
}
