package marketplace

import (
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// cursor is the keyset position after a row. It is opaque to clients: base64url of this JSON.
type cursor struct {
	Order string    `json:"o"`
	Time  time.Time `json:"t,omitzero"`
	Price int       `json:"p,omitempty"`
	ID    string    `json:"i"`
}

// decodeCursor parses s, which must have been made for order. Errors: INVALID_INPUT.
func decodeCursor(s, order string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := apperr.New(apperr.InvalidInput, "after is not a cursor of this list")
	var c cursor
	if !db.DecodeCursor(s, &c) || c.Order != order {
		return nil, bad
	}
	if apperr.CheckID(c.ID) != nil || apperr.CheckTime("after", c.Time) != nil {
		return nil, bad
	}
	return &c, nil
}
