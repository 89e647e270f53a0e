package seed

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/page"
)

// DemoUploadFile is the name of the file DemoUploads uploads for each partner.
const DemoUploadFile = "demo-leads.csv"

// DemoUploads gives every demo partner one completed upload with some rejections, made as its
// partner member makes one: through ingest's upload and job, so the partner portal has a history,
// counts and a rejections download to show. A partner that has an upload already gets none
// (seeding again adds nothing). It returns how many uploads it made.
func DemoUploads(ctx context.Context, svc *ingest.Service, users []DemoUser) (int, error) {
	made := 0
	for _, u := range users {
		if u.Role != RolePartnerMember || u.PartnerID == "" {
			continue
		}
		c := &auth.Caller{UserID: u.UserID, Email: u.Email}
		one := 1
		existing, err := svc.List(ctx, c, u.PartnerID, page.Args{First: &one})
		if err != nil {
			return made, fmt.Errorf("seed: uploads of %s: %w", u.PartnerID, err)
		}
		if len(existing.Items) > 0 {
			continue
		}
		up, err := svc.Upload(ctx, c, ingest.UploadInput{
			PartnerID: u.PartnerID, FileName: DemoUploadFile, File: bytes.NewReader(demoUploadCSV(u.PartnerID)),
			IdempotencyKey: "seed-demo-upload-" + u.PartnerID,
		})
		if err != nil {
			return made, fmt.Errorf("seed: upload for %s: %w", u.PartnerID, err)
		}
		// The job is queued with the upload; working it here makes the upload complete now, and a
		// server that picks the job up later finds nothing left to do.
		if _, err := svc.Process(ctx, up.ID); err != nil {
			return made, fmt.Errorf("seed: process upload %s: %w", up.ID, err)
		}
		made++
	}
	return made, nil
}

// demoUploadCSV is a partner's demo file: 24 leads the demo set does not have (their addresses
// are the partner's own), two of them twice, and rows with each kind of mistake a CRM export has.
func demoUploadCSV(partnerID string) []byte {
	tag := strings.ReplaceAll(partnerID, "-", "")[:8]
	var b strings.Builder
	b.WriteString("Email,First Name,Last Name,Company,Website,Job Title,Seniority,Employees,Industry,Country,Phone\n")
	titles := []struct{ title, seniority string }{
		{"VP Sales", "VP"}, {"Head of Growth", ""}, {"Sales Director", "Director"}, {"Account Executive", "Senior"},
	}
	for i := range 24 {
		t := titles[i%len(titles)]
		fmt.Fprintf(&b, "contact%02d@upload-%s.example,%s,%s,%s %s,https://www.upload-%s.example,%s,%s,%s,%s,%s,+1 415 555 %04d\n",
			i, tag, firstNames[i%len(firstNames)], lastNames[i%len(lastNames)], companyPrefixes[i%len(companyPrefixes)],
			companySuffixes[i%len(companySuffixes)].name, tag, t.title, t.seniority, []string{"11-50", "51-200", "201-500"}[i%3],
			companySuffixes[i%len(companySuffixes)].industry, []string{"US", "United Kingdom", "DE"}[i%3], 1000+i)
	}
	// The same people again, written as another export would: duplicates within the file.
	fmt.Fprintf(&b, " Contact00@Upload-%s.example ,%s,%s,Apex Software,upload-%s.example,VP Sales,VP,11-50,Software,US,+1 415 555 1000\n",
		tag, firstNames[0], lastNames[0], tag)
	fmt.Fprintf(&b, "contact01@upload-%s.example,%s,%s,Blue Systems,upload-%s.example,Head of Growth,,51-200,Software,GB,+1 415 555 1001\n",
		tag, firstNames[1], lastNames[1], tag)
	// Mistakes: a broken address, a missing name, a seniority we cannot read, a country we do
	// not know.
	fmt.Fprintf(&b, "not-an-address,Ann,Lee,Cedar Care,,Nurse,,,Healthcare,US,\n")
	fmt.Fprintf(&b, "nolastname@upload-%s.example,Bo,,Cobalt Pay,,CFO,C-Level,,Fintech,US,\n", tag)
	fmt.Fprintf(&b, "intern@upload-%s.example,Cy,Ray,Delta Media,,Intern,Grand Wizard,,Media,US,\n", tag)
	fmt.Fprintf(&b, "far@upload-%s.example,Di,Sun,Falcon Energy,,Engineer,,,Energy,Atlantis,\n", tag)
	return []byte(b.String())
}
