package gqlhttp

import (
	"fmt"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// Decoding JSON into Go values costs per value: a 2 MiB body of 300,000 short strings takes
// encoding/json the better part of a second, before any GraphQL rule could refuse the list they
// are in. cutLongLists runs first, over the raw bytes, in one pass that allocates nothing unless it
// cuts.

// cutLongLists returns the JSON text b with every array of more than max elements cut to its
// first max+1 (so that the InputRules, whose largest bound is max, refuse it and name its
// argument, at the cost of decoding max+1 values), and whether it cut any. An object of more than
// max members is refused instead (no input object has nearly as many fields; cutting one could
// hide a member validation would refuse). Text that is not JSON is returned as it is, for the
// decoder to refuse.
func cutLongLists(b []byte, max int) ([]byte, bool, *gqlerror.Error) {
	type frame struct {
		array   bool
		commas  int
		cutFrom int // the comma before element max+2; 0 while nothing is cut
	}
	var stack []frame
	var out []byte
	last, cutting := 0, false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			stack = append(stack, frame{array: b[i] == '['})
		case ',':
			if len(stack) == 0 {
				return b, false, nil
			}
			f := &stack[len(stack)-1]
			f.commas++
			switch {
			case !f.array && f.commas == max: // member max+1 follows
				return b, false, &gqlerror.Error{
					Message:    fmt.Sprintf("a JSON object in the request holds more than %d members", max),
					Extensions: map[string]any{"code": string(apperr.InvalidInput), "limit": max},
				}
			case f.array && f.commas == max+1 && !cutting: // element max+2 follows; within a part being cut, nothing more is
				f.cutFrom, cutting = i, true
			}
		case ']', '}':
			if len(stack) == 0 {
				return b, false, nil
			}
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if f.cutFrom > 0 {
				out = append(out, b[last:f.cutFrom]...)
				last, cutting = i, false
			}
		}
	}
	if out == nil {
		return b, false, nil
	}
	return append(out, b[last:]...), true, nil
}
