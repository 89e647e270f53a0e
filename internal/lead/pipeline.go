package lead

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// The reads a workspace's pipeline (internal/pipeline) makes of the leads it bought: the leads of
// a page (or of an export's chunk) in one statement, and the contact search its filters use inside
// its own statements.

// PurchasedByIDs returns the leads of ids that workspaceID bought, with full contact data and
// PurchasedAt and PurchaseID set; ids the workspace did not buy are left out. It is one prepared
// statement whatever the number of ids (a page, or an export's chunk of thousands). Errors:
// INVALID_INPUT for a malformed id.
func PurchasedByIDs(ctx context.Context, bdb *bun.DB, workspaceID string, ids []string) ([]Lead, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := apperr.CheckID(workspaceID); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := apperr.CheckID(id); err != nil {
			return nil, err
		}
	}
	q := purchasedLeads(workspaceID)
	q.and("l.id = ANY(?::uuid[])", ids)
	leads, err := q.run(ctx, bdb, "", 0, make([]Lead, 0, len(ids)))
	if err != nil {
		return nil, fmt.Errorf("leads of workspace %s by ids: %w", workspaceID, err)
	}
	return leads, nil
}

// MaxSearchLength is the longest text SearchCondition looks for, in characters.
const MaxSearchLength = 100

// SearchCondition returns a SQL condition that holds when the lead whose id is the SQL expression
// leadID (such as "w.lead_id") has text, case-insensitively, in its name ("first last"), its
// company name or its e-mail address. arg adds a parameter to the caller's statement and returns
// its placeholder ("?" for bun, "$n" for pgx), so the condition fits in any statement on any
// table that refers to leads by id. Errors: INVALID_INPUT for blank text or text longer than
// MaxSearchLength.
func SearchCondition(leadID, text string, arg func(any) string) (string, error) {
	text = strings.TrimSpace(text)
	if text == "" || utf8.RuneCountInString(text) > MaxSearchLength {
		return "", apperr.New(apperr.InvalidInput, "search has 1 to %d characters", MaxSearchLength)
	}
	pattern := "%" + likeEscaper.Replace(text) + "%"
	return "EXISTS (SELECT 1 FROM leads AS sl WHERE sl.id = " + leadID + " AND (" +
		"(sl.first_name || ' ' || sl.last_name) ILIKE " + arg(pattern) + "::text" +
		" OR sl.company_name ILIKE " + arg(pattern) + "::text" +
		" OR sl.email ILIKE " + arg(pattern) + "::text))", nil
}
