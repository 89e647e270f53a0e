package marketplace

import (
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/page"
)

// cursor is the keyset position after a row of a browse (or of a workspace's leads, order
// "PURCHASED"); clients see it only as page's opaque encoding.
type cursor struct {
	Order string    `json:"o"`
	Time  time.Time `json:"t,omitzero"`
	Price int       `json:"p,omitempty"`
	ID    string    `json:"i"`
}

// decodeCursor parses a's cursor, which must have been made for order. Errors: INVALID_INPUT.
func decodeCursor(a page.Args, order string) (*cursor, error) {
	return page.Cursor(a, func(c cursor) bool {
		return c.Order == order && apperr.CheckID(c.ID) == nil && apperr.CheckTime("after", c.Time) == nil
	})
}
