package export

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/pipeline"
)

// leadRow is one workspace lead as an export writes it, with what its columns look up.
type leadRow struct {
	w             *pipeline.WorkspaceLead
	assigneeEmail string
	partnerName   string
}

// leadColumn is a column of a workspace leads export: its ExportColumn name, its CSV header and
// its value.
type leadColumn struct {
	name, header string
	value        func(r leadRow) string
}

func csvTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// leadColumns are the columns a workspace leads export may have, in their default order: every
// lead field with full contact data, then the pipeline's status, assignee, tags and purchase time
// (DefaultLeadColumns), then the columns only asked for by name.
var leadColumns = []leadColumn{
	{"LEAD_ID", "lead_id", func(r leadRow) string { return r.w.LeadID }},
	{"FIRST_NAME", "first_name", func(r leadRow) string { return r.w.Lead.FirstName }},
	{"LAST_NAME", "last_name", func(r leadRow) string { return r.w.Lead.LastName }},
	{"EMAIL", "email", func(r leadRow) string { return r.w.Lead.Email }},
	{"PHONE", "phone", func(r leadRow) string { return r.w.Lead.Phone }},
	{"LINKEDIN_URL", "linkedin_url", func(r leadRow) string { return r.w.Lead.LinkedinURL }},
	{"TITLE", "title", func(r leadRow) string { return r.w.Lead.Title }},
	{"SENIORITY", "seniority", func(r leadRow) string { return r.w.Lead.Seniority }},
	{"DEPARTMENT", "department", func(r leadRow) string { return r.w.Lead.Department }},
	{"COMPANY_NAME", "company_name", func(r leadRow) string { return r.w.Lead.CompanyName }},
	{"COMPANY_DOMAIN", "company_domain", func(r leadRow) string { return r.w.Lead.CompanyDomain }},
	{"COMPANY_SIZE", "company_size", func(r leadRow) string { return r.w.Lead.CompanySize }},
	{"INDUSTRY", "industry", func(r leadRow) string { return r.w.Lead.Industry }},
	{"COUNTRY", "country", func(r leadRow) string { return r.w.Lead.Country }},
	{"REGION", "region", func(r leadRow) string { return r.w.Lead.Region }},
	{"CITY", "city", func(r leadRow) string { return r.w.Lead.City }},
	{"VERIFICATION_STATUS", "verification_status", func(r leadRow) string { return r.w.Lead.VerificationStatus }},
	{"PRICE_CREDITS", "price_credits", func(r leadRow) string { return strconv.Itoa(r.w.Lead.PriceCredits) }},
	{"MAX_BUYERS", "max_buyers", func(r leadRow) string { return strconv.Itoa(r.w.Lead.MaxBuyers) }},
	{"BUYERS_COUNT", "buyers_count", func(r leadRow) string { return strconv.Itoa(r.w.Lead.BuyersCount) }},
	{"PARTNER", "partner", func(r leadRow) string { return r.partnerName }},
	{"LEAD_CREATED_AT", "lead_created_at", func(r leadRow) string { return csvTime(r.w.Lead.CreatedAt) }},
	{"STATUS", "status", func(r leadRow) string { return r.w.Status }},
	{"ASSIGNEE_EMAIL", "assignee_email", func(r leadRow) string { return r.assigneeEmail }},
	{"TAGS", "tags", func(r leadRow) string { return strings.Join(r.w.Tags, ", ") }},
	{"PURCHASED_AT", "purchased_at", func(r leadRow) string { return csvTime(r.w.PurchasedAt) }},
	// Only when asked for:
	{"ID", "id", func(r leadRow) string { return r.w.ID }},
	{"CREDITS_SPENT", "credits_spent", func(r leadRow) string { return strconv.Itoa(r.w.CreditsSpent) }},
	{"UPDATED_AT", "updated_at", func(r leadRow) string { return csvTime(r.w.UpdatedAt) }},
}

// DefaultLeadColumns are the columns of a workspace leads export that names none.
var DefaultLeadColumns = func() []string {
	var names []string
	for _, c := range leadColumns {
		if c.name == "ID" {
			break
		}
		names = append(names, c.name)
	}
	return names
}()

// LeadColumnNames are every column a workspace leads export may have (ExportColumn).
func LeadColumnNames() []string {
	names := make([]string, len(leadColumns))
	for i, c := range leadColumns {
		names[i] = c.name
	}
	return names
}

// checkColumns returns names as known columns, repeats dropped, DefaultLeadColumns when empty.
// Errors: INVALID_INPUT for an unknown column.
func checkColumns(names []string) ([]string, error) {
	if len(names) == 0 {
		return DefaultLeadColumns, nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.ContainsFunc(leadColumns, func(c leadColumn) bool { return c.name == n }) {
			return nil, apperr.New(apperr.InvalidInput, "unknown export column %q", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// columnsOf returns the columns named (checked by checkColumns).
func columnsOf(names []string) []leadColumn {
	out := make([]leadColumn, 0, len(names))
	for _, n := range names {
		for _, c := range leadColumns {
			if c.name == n {
				out = append(out, c)
			}
		}
	}
	return out
}

// auditHeader is the header of an audit log export; auditRecord writes an entry under it.
var auditHeader = []string{"id", "occurred_at", "actor_user_id", "actor_type", "workspace_id", "action",
	"resource_type", "resource_id", "old_values", "new_values", "metadata", "severity", "ip", "user_agent",
	"request_id", "operation"}

func auditRecord(l audit.Log, buf []string) []string {
	js := func(b json.RawMessage) string {
		if len(b) == 0 {
			return ""
		}
		return string(b)
	}
	return append(buf[:0], l.ID, l.OccurredAt.UTC().Format(time.RFC3339Nano), l.ActorUserID, l.ActorType, l.WorkspaceID,
		l.Action, l.ResourceType, l.ResourceID, js(l.OldValues), js(l.NewValues), js(l.Metadata), l.Severity, l.IP,
		l.UserAgent, l.RequestID, l.Operation)
}
