package pipeline

import (
	"strconv"
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

// sqlArgs collects the arguments of a statement under construction, in one placeholder style:
// bun's "?" (arrays wrapped for its formatter) or pgx's "$n".
type sqlArgs struct {
	args   []any
	dollar bool
}

// add adds v and returns its placeholder.
func (a *sqlArgs) add(v any) string {
	if a.dollar {
		a.args = append(a.args, v)
		return "$" + strconv.Itoa(len(a.args))
	}
	if ss, ok := v.([]string); ok {
		v = pgdialect.Array(ss)
	}
	a.args = append(a.args, v)
	return "?"
}

// cond is f as one SQL condition on the workspace_leads alias w, its arguments added to a.
func (f Filter) cond(a *sqlArgs) string {
	var conds []string
	if !f.IncludeDeleted {
		conds = append(conds, "w.deleted_at IS NULL")
	}
	if len(f.Statuses) > 0 {
		conds = append(conds, "w.status = ANY("+a.add(f.Statuses)+"::text[])")
	}
	switch {
	case len(f.AssigneeIDs) > 0 && f.Unassigned != nil && *f.Unassigned:
		conds = append(conds, "(w.assignee_user_id = ANY("+a.add(f.AssigneeIDs)+"::uuid[]) OR w.assignee_user_id IS NULL)")
	case len(f.AssigneeIDs) > 0:
		conds = append(conds, "w.assignee_user_id = ANY("+a.add(f.AssigneeIDs)+"::uuid[])")
	case f.Unassigned != nil && *f.Unassigned:
		conds = append(conds, "w.assignee_user_id IS NULL")
	case f.Unassigned != nil:
		conds = append(conds, "w.assignee_user_id IS NOT NULL")
	}
	if len(f.TagsAny) > 0 {
		conds = append(conds, "w.tags && "+a.add(f.TagsAny)+"::text[]")
	}
	if len(f.TagsAll) > 0 {
		conds = append(conds, "w.tags @> "+a.add(f.TagsAll)+"::text[]")
	}
	if f.PurchasedAfter != nil {
		conds = append(conds, "w.purchased_at > "+a.add(*f.PurchasedAfter)+"::timestamptz")
	}
	if f.PurchasedBefore != nil {
		conds = append(conds, "w.purchased_at < "+a.add(*f.PurchasedBefore)+"::timestamptz")
	}
	if f.Search != "" {
		// check validated the text, so SearchCondition does not fail here.
		c, _ := lead.SearchCondition("w.lead_id", f.Search, a.add)
		conds = append(conds, c)
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}

// where is f as one condition for bun.
func (f Filter) where() schema.QueryWithArgs {
	var a sqlArgs
	c := f.cond(&a)
	return bun.SafeQuery(c, a.args...)
}

// cond is s as one SQL condition on the workspace_leads alias w (s checked), for reads (a list, an
// export): the leads of its ids that are on the list, those its filter matches, or (neither) every
// lead on the list.
func (s Selection) cond(a *sqlArgs) string {
	switch {
	case s.IDs != nil:
		return "w.id = ANY(" + a.add(s.IDs) + "::uuid[]) AND w.deleted_at IS NULL"
	case s.Filter != nil:
		return s.Filter.cond(a)
	default:
		return Filter{}.cond(a)
	}
}

// where is s as one condition for bun.
func (s Selection) where() schema.QueryWithArgs {
	var a sqlArgs
	c := s.cond(&a)
	return bun.SafeQuery(c, a.args...)
}
