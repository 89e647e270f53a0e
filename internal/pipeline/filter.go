package pipeline

import (
	"strings"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/lead"
)

// Filter narrows a workspace's leads; every field that is set must match. It is also what an
// audit entry records of a bulk operation on "everything the filter matches", and what an export
// keeps of its request, hence the JSON names.
type Filter struct {
	// Statuses: the lead's status is one of them.
	Statuses []string `json:"statuses,omitempty"`
	// AssigneeIDs: the lead is assigned to one of them (or, with Unassigned true, to nobody).
	AssigneeIDs []string `json:"assigneeIds,omitempty"`
	// Unassigned true: nobody is assigned (or one of AssigneeIDs is); false: somebody is.
	Unassigned *bool `json:"unassigned,omitempty"`
	// TagsAny: the lead has at least one of them; TagsAll: all of them. Matched in the stored
	// form (NormalizeTags).
	TagsAny []string `json:"tagsAny,omitempty"`
	TagsAll []string `json:"tagsAll,omitempty"`
	// PurchasedAfter and PurchasedBefore bound the purchase's time (exclusive).
	PurchasedAfter  *time.Time `json:"purchasedAfter,omitempty"`
	PurchasedBefore *time.Time `json:"purchasedBefore,omitempty"`
	// Search is text the lead's name, company name or e-mail contains (lead.SearchCondition).
	Search string `json:"search,omitempty"`
	// IncludeDeleted also matches leads deleted from the list; by default they are left out.
	IncludeDeleted bool `json:"includeDeleted,omitempty"`
}

// MaxIDs is the most ids one bulk operation or export may name.
const MaxIDs = 10_000

// Selection is which of a workspace's leads an operation is about: those with IDs, or every lead
// Filter matches. A bulk operation needs exactly one of the two; an export with neither takes the
// whole list.
type Selection struct {
	IDs    []string `json:"ids,omitempty"`
	Filter *Filter  `json:"filter,omitempty"`
}

// check validates s and returns it with its ids distinct and canonical, and its filter's tags in
// their stored form. required says whether one of the two must be given (a bulk operation) or
// neither may (an export of the whole list). Errors: INVALID_INPUT.
func (s Selection) check(required bool) (Selection, error) {
	switch {
	case s.IDs != nil && s.Filter != nil:
		return s, apperr.New(apperr.InvalidInput, "give either ids or a filter, not both")
	case s.IDs == nil && s.Filter == nil && required:
		return s, apperr.New(apperr.InvalidInput, "give either ids (at most %d) or a filter", MaxIDs)
	case s.IDs != nil:
		if len(s.IDs) == 0 || len(s.IDs) > MaxIDs {
			return s, apperr.New(apperr.InvalidInput, "give 1 to %d ids", MaxIDs)
		}
		ids := make([]string, 0, len(s.IDs))
		seen := make(map[string]bool, len(s.IDs))
		for _, id := range s.IDs {
			id = strings.ToLower(strings.TrimSpace(id))
			if err := apperr.CheckID(id); err != nil {
				return s, err
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		s.IDs = ids
	case s.Filter != nil:
		f, err := s.Filter.check()
		if err != nil {
			return s, err
		}
		s.Filter = &f
	}
	return s, nil
}

// check validates f and returns it with its tags in their stored form. Errors: INVALID_INPUT.
func (f Filter) check() (Filter, error) {
	for _, st := range f.Statuses {
		if err := validStatus(st); err != nil {
			return f, err
		}
	}
	for _, id := range f.AssigneeIDs {
		if err := apperr.CheckID(id); err != nil {
			return f, err
		}
	}
	for _, tags := range []*[]string{&f.TagsAny, &f.TagsAll} {
		if len(*tags) == 0 {
			continue
		}
		t, err := NormalizeTags(*tags)
		if err != nil {
			return f, err
		}
		*tags = t
	}
	for _, t := range []struct {
		name string
		at   *time.Time
	}{{"purchasedAfter", f.PurchasedAfter}, {"purchasedBefore", f.PurchasedBefore}} {
		if t.at != nil {
			if err := apperr.CheckTime(t.name, *t.at); err != nil {
				return f, err
			}
		}
	}
	f.Search = strings.TrimSpace(f.Search)
	if f.Search != "" {
		if _, err := lead.SearchCondition("x", f.Search, func(any) string { return "?" }); err != nil {
			return f, err
		}
	}
	return f, nil
}

// where is f as one SQL condition on the workspace_leads alias w, with its arguments.
func (f Filter) where() schema.QueryWithArgs {
	var conds []string
	var args []any
	add := func(cond string, vals ...any) {
		conds = append(conds, cond)
		args = append(args, vals...)
	}
	if !f.IncludeDeleted {
		add("w.deleted_at IS NULL")
	}
	if len(f.Statuses) > 0 {
		add("w.status = ANY(?::text[])", pgdialect.Array(f.Statuses))
	}
	switch {
	case len(f.AssigneeIDs) > 0 && f.Unassigned != nil && *f.Unassigned:
		add("(w.assignee_user_id = ANY(?::uuid[]) OR w.assignee_user_id IS NULL)", pgdialect.Array(f.AssigneeIDs))
	case len(f.AssigneeIDs) > 0:
		add("w.assignee_user_id = ANY(?::uuid[])", pgdialect.Array(f.AssigneeIDs))
	case f.Unassigned != nil && *f.Unassigned:
		add("w.assignee_user_id IS NULL")
	case f.Unassigned != nil:
		add("w.assignee_user_id IS NOT NULL")
	}
	if len(f.TagsAny) > 0 {
		add("w.tags && ?::text[]", pgdialect.Array(f.TagsAny))
	}
	if len(f.TagsAll) > 0 {
		add("w.tags @> ?::text[]", pgdialect.Array(f.TagsAll))
	}
	if f.PurchasedAfter != nil {
		add("w.purchased_at > ?::timestamptz", *f.PurchasedAfter)
	}
	if f.PurchasedBefore != nil {
		add("w.purchased_at < ?::timestamptz", *f.PurchasedBefore)
	}
	if f.Search != "" {
		var searchArgs []any
		// check validated the text, so SearchCondition does not fail here.
		cond, _ := lead.SearchCondition("w.lead_id", f.Search, func(v any) string {
			searchArgs = append(searchArgs, v)
			return "?"
		})
		add(cond, searchArgs...)
	}
	if len(conds) == 0 {
		return bun.SafeQuery("true")
	}
	return bun.SafeQuery(strings.Join(conds, " AND "), args...)
}

// where is s as one SQL condition on the workspace_leads alias w (s checked), for reads (a list,
// an export): the leads of its ids that are on the list, those its filter matches, or (neither)
// every lead on the list.
func (s Selection) where() schema.QueryWithArgs {
	switch {
	case s.IDs != nil:
		return bun.SafeQuery("w.id = ANY(?::uuid[]) AND w.deleted_at IS NULL", pgdialect.Array(s.IDs))
	case s.Filter != nil:
		return s.Filter.where()
	default:
		return Filter{}.where()
	}
}
