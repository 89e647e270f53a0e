package marketplace

import (
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// cursor is the keyset position after a row of a browse (or of a workspace's leads, order
// "PURCHASED"); clients see it only as page's opaque encoding.
type cursor struct {
	Order string    `json:"o"`
	Time  time.Time `json:"t,omitzero"`
	Price int       `json:"p,omitempty"`
	ID    string    `json:"i"`
}

// cursorOf returns the check of a cursor made for order (page.Open refuses any other).
func cursorOf(order string) func(cursor) bool {
	return func(c cursor) bool {
		return c.Order == order && apperr.CheckID(c.ID) == nil && apperr.CheckTime("after", c.Time) == nil
	}
}
