// Package page is the one way lists are paged: the page arguments a client sends (first, after),
// bounded per list by the domain that owns it, opaque keyset cursors, and the page a list returns.
// Lists never use OFFSET: a cursor is the keyset position of the row a page starts after.
package page

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Args are a client's page arguments.
type Args struct {
	// First is how many rows the client asks for; nil takes the list's default.
	First *int
	// After is the cursor of the row the page starts after; empty starts at the beginning.
	After string
}

// Bounds are one list's page sizes, decided by the domain that owns the list.
type Bounds struct {
	// Default is the page size when the client does not say.
	Default int
	// Max is the largest page served; a larger First is cut down to it.
	Max int
}

// Limit returns the page size a asks for within b. Errors: INVALID_INPUT for First below 1.
func (a Args) Limit(b Bounds) (int, error) {
	if a.First == nil {
		return b.Default, nil
	}
	if *a.First < 1 {
		return 0, apperr.New(apperr.InvalidInput, "first must be at least 1")
	}
	return min(*a.First, b.Max), nil
}

// Of returns Args for a page of first rows (the form a resolver holds after gqlgen applied the
// schema's default) after the cursor after (nil: from the beginning).
func Of(first *int, after *string) Args {
	a := Args{First: first}
	if after != nil {
		a.After = *after
	}
	return a
}

// Cursor decodes a.After into a position of type P; nil when After is empty. valid checks what
// the position holds (ids that are UUIDs, times PostgreSQL can store, the list's order), so a
// cursor of another list or a forged one is refused before it reaches SQL.
// Errors: INVALID_INPUT.
func Cursor[P any](a Args, valid func(P) bool) (*P, error) {
	if a.After == "" {
		return nil, nil
	}
	var p P
	b, err := base64.RawURLEncoding.DecodeString(a.After)
	if err != nil || json.Unmarshal(b, &p) != nil || !valid(p) {
		return nil, apperr.New(apperr.InvalidInput, "after is not a cursor of this list")
	}
	return &p, nil
}

// Open starts a page of a list with bounds b: the page size a asks for and its decoded cursor
// (nil for the first page), as Limit and Cursor give them. Errors: INVALID_INPUT.
func Open[P any](a Args, b Bounds, valid func(P) bool) (limit int, after *P, err error) {
	if limit, err = a.Limit(b); err != nil {
		return 0, nil, err
	}
	after, err = Cursor(a, valid)
	return limit, after, err
}

// Serial is the keyset position of a list ordered by a serial id, newest first (a ledger).
type Serial struct {
	ID int64 `json:"i"`
}

// Valid reports whether p can be a serial id.
func (p Serial) Valid() bool { return p.ID > 0 }

// Encode turns a keyset position (a small struct) into the opaque string clients pass back as
// after: base64url of its JSON.
func Encode(position any) string {
	b, _ := json.Marshal(position)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Page is one page of a list: its rows, the cursor after each, and whether more follow.
type Page[T any] struct {
	Items       []T
	Cursors     []string
	HasNextPage bool
}

// New finishes a keyset page fetched with LIMIT limit+1: it drops the extra row (whose presence
// means another page follows) and encodes each remaining row's position as its cursor.
func New[T any](rows []T, limit int, position func(T) any) Page[T] {
	p := Page[T]{HasNextPage: len(rows) > limit}
	if p.HasNextPage {
		rows = rows[:limit]
	}
	p.Items, p.Cursors = rows, make([]string, len(rows))
	for i, r := range rows {
		p.Cursors[i] = Encode(position(r))
	}
	return p
}

// TimeID is the keyset position of a list ordered by a time and then an id, newest first (audit
// entries, Stripe events, purchases).
type TimeID struct {
	T time.Time `json:"t"`
	I string    `json:"i"`
}

// ValidTime reports whether p's time can be stored by PostgreSQL; a list checks the id's form
// itself (a UUID, a Stripe id).
func (p TimeID) ValidTime() bool { return apperr.CheckTime("after", p.T) == nil }
