package pipeline

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// The pipeline's moves (DESIGN §7): forward one step at a time, NEW → CONTACTED → QUALIFIED →
// WON; from any open status (NEW, CONTACTED, QUALIFIED) to LOST; WON and LOST are final, except
// that a workspace's owners and admins may reopen them to NEW. A move to the status a lead has is
// no move (UNCHANGED); every other move is refused (INVALID_TRANSITION).

// openStatuses are the statuses a lead may still leave for the next one or LOST.
var openStatuses = []string{StatusNew, StatusContacted, StatusQualified}

// AllowedFrom returns the statuses a lead may move to status from; canReopen says whether the
// caller may reopen final statuses (a workspace OWNER or ADMIN). The bulk statement changes only
// leads whose status is among them.
func AllowedFrom(status string, canReopen bool) []string {
	switch status {
	case StatusContacted:
		return []string{StatusNew}
	case StatusQualified:
		return []string{StatusContacted}
	case StatusWon:
		return []string{StatusQualified}
	case StatusLost:
		return slices.Clone(openStatuses)
	case StatusNew:
		if canReopen {
			return []string{StatusWon, StatusLost}
		}
	}
	return []string{}
}

// CanMove reports whether a lead with status from may move to status to: AllowedFrom as a
// question, for one lead.
func CanMove(from, to string, canReopen bool) bool {
	return slices.Contains(AllowedFrom(to, canReopen), from)
}

// validStatus refuses a status that is not a pipeline status. Errors: INVALID_INPUT.
func validStatus(s string) error {
	if !slices.Contains(Statuses, s) {
		return apperr.New(apperr.InvalidInput, "unknown pipeline status %q", s)
	}
	return nil
}

// Tag limits: each tag has 1 to MaxTagLength characters once trimmed, a lead has at most MaxTags.
const (
	MaxTagLength = 40
	MaxTags      = 20
)

// NormalizeTags returns tags trimmed, lower-cased, distinct and sorted, the form they are stored
// and matched in. Errors: INVALID_INPUT for an empty list, a tag that is blank, longer than
// MaxTagLength or holds control characters, or more than MaxTags distinct tags (no lead could hold
// them all).
func NormalizeTags(tags []string) ([]string, error) {
	if len(tags) == 0 {
		return nil, apperr.New(apperr.InvalidInput, "give at least one tag")
	}
	out := make([]string, 0, len(tags))
	for _, raw := range tags {
		t := strings.ToLower(strings.TrimSpace(raw))
		if t == "" || utf8.RuneCountInString(t) > MaxTagLength || !utf8.ValidString(t) ||
			strings.ContainsFunc(t, unicode.IsControl) {
			return nil, apperr.New(apperr.InvalidInput, "a tag has 1 to %d characters and no control characters: %q",
				MaxTagLength, raw).With("tag", raw)
		}
		out = append(out, t)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxTags {
		return nil, apperr.New(apperr.InvalidInput, "a lead holds at most %d tags; %d given", MaxTags, len(out))
	}
	return out, nil
}
