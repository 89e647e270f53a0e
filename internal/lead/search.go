package lead

import (
	"strings"
	"unicode/utf8"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// The contact search a workspace's pipeline (internal/pipeline) uses inside its own statements;
// JoinPurchased (query.go) reads the leads it bought beside its rows.

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
