package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/events"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

// BulkInput names the leads a bulk operation changes: the workspace, and either IDs (at most
// MaxIDs, repeats counted once) or a Filter (everything it matches).
type BulkInput struct {
	WorkspaceID string
	Selection
}

// BulkResult is what a bulk operation did: how many leads it was asked to change (the distinct
// ids, or the leads the filter matched), how many it changed, and why it left each other one.
type BulkResult struct {
	Requested int
	Affected  int
	// Skipped is in id order.
	Skipped []Skip
}

// Skip is a lead a bulk operation left unchanged, and why (one of the Skip* reasons).
type Skip struct {
	ID     string `bun:"id"`
	Reason string `bun:"reason"`
}

// UpdatedEvent is the type of the event a bulk operation publishes (with the ids it changed,
// in parts of at most EventIDs) when it changed any lead.
const UpdatedEvent = "workspace_leads.updated"

// EventIDs is the most ids one workspace_leads.updated event carries, so that it fits in a
// NOTIFY; an operation on more publishes several parts.
const EventIDs = 150

// change is one bulk operation as the bulk statement runs it. Every SQL piece is on the alias cur,
// the lead as locked before the change (its columns: id, status, assignee_user_id, tags,
// deleted_at); set also on w, the row updated.
type change struct {
	// operation is the mutation's name (the audit entry's metadata, the event); action the audit
	// entry's action.
	operation, action string
	// set is the SET list of a lead the change applies to (updated_at is set too).
	set schema.QueryWithArgs
	// applies holds for a lead the change applies to; a lead it does not hold for is skipped.
	applies schema.QueryWithArgs
	// skip is a text expression: the reason a lead is skipped.
	skip schema.QueryWithArgs
	// old is a text expression of the value the audit entry records per changed lead, under the
	// key oldKey; empty old: none.
	old, oldKey string
	// deletedOnly makes a filter match deleted leads only (a restore).
	deletedOnly bool
	// newValues are the audit entry's new values.
	newValues map[string]any
}

// BulkUpdateStatus moves the leads to status where the pipeline allows it (AllowedFrom; owners and
// admins may reopen WON and LOST leads to NEW). Members of the workspace. Skips: NOT_FOUND,
// INVALID_TRANSITION, UNCHANGED, ALREADY_DELETED. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BulkUpdateStatus(ctx context.Context, c *auth.Caller, in BulkInput, status string) (BulkResult, error) {
	if err := validStatus(status); err != nil {
		return BulkResult{}, err
	}
	return s.run(ctx, c, in, func(ctx context.Context, tx bun.Tx, role string) (change, error) {
		canReopen := role == workspace.RoleOwner || role == workspace.RoleAdmin
		return change{
			operation: "bulkUpdateLeadStatus", action: "workspace_leads.status_updated",
			set:     bun.SafeQuery("status = ?", status),
			applies: bun.SafeQuery("cur.deleted_at IS NULL AND cur.status = ANY(?::text[])", pgdialect.Array(AllowedFrom(status, canReopen))),
			skip: bun.SafeQuery(`CASE WHEN cur.deleted_at IS NOT NULL THEN 'ALREADY_DELETED'
				WHEN cur.status = ? THEN 'UNCHANGED' ELSE 'INVALID_TRANSITION' END`, status),
			old: "cur.status", oldKey: "status",
			newValues: map[string]any{"status": status},
		}, nil
	})
}

// BulkAssign assigns the leads to assigneeUserID, a member of the workspace, or unassigns them
// when it is empty. Members of the workspace. Skips: NOT_FOUND, UNCHANGED, ALREADY_DELETED.
// Errors: FORBIDDEN, INVALID_INPUT (also for an assignee who is not a member).
func (s *Service) BulkAssign(ctx context.Context, c *auth.Caller, in BulkInput, assigneeUserID string) (BulkResult, error) {
	var assignee any // SQL NULL unassigns
	if assigneeUserID != "" {
		if err := apperr.CheckID(assigneeUserID); err != nil {
			return BulkResult{}, err
		}
		assignee = assigneeUserID
	}
	return s.run(ctx, c, in, func(ctx context.Context, tx bun.Tx, _ string) (change, error) {
		if assigneeUserID != "" {
			if _, err := workspace.RoleOf(ctx, tx, in.WorkspaceID, assigneeUserID); apperr.Is(err, apperr.Forbidden) {
				return change{}, apperr.New(apperr.InvalidInput, "the assignee is not a member of this workspace").
					With("assigneeUserId", assigneeUserID)
			} else if err != nil {
				return change{}, err
			}
		}
		return change{
			operation: "bulkAssignLeads", action: "workspace_leads.assigned",
			set:     bun.SafeQuery("assignee_user_id = ?::uuid", assignee),
			applies: bun.SafeQuery("cur.deleted_at IS NULL AND cur.assignee_user_id IS DISTINCT FROM ?::uuid", assignee),
			skip:    bun.SafeQuery("CASE WHEN cur.deleted_at IS NOT NULL THEN 'ALREADY_DELETED' ELSE 'UNCHANGED' END"),
			old:     "cur.assignee_user_id::text", oldKey: "assigneeUserId",
			newValues: map[string]any{"assigneeUserId": assignee},
		}, nil
	})
}

// BulkAddTags adds tags (NormalizeTags) to the leads; a lead that would have more than MaxTags is
// left as it is. Members of the workspace. Skips: NOT_FOUND, UNCHANGED (it has them all),
// TAG_LIMIT, ALREADY_DELETED. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BulkAddTags(ctx context.Context, c *auth.Caller, in BulkInput, tags []string) (BulkResult, error) {
	tags, err := NormalizeTags(tags)
	if err != nil {
		return BulkResult{}, err
	}
	t := pgdialect.Array(tags)
	return s.run(ctx, c, in, func(context.Context, bun.Tx, string) (change, error) {
		return change{
			operation: "bulkAddLeadTags", action: "workspace_leads.tags_added",
			set: bun.SafeQuery("tags = ARRAY(SELECT DISTINCT x COLLATE \"C\" FROM unnest(cur.tags || ?::text[]) AS x ORDER BY 1)", t),
			applies: bun.SafeQuery(`cur.deleted_at IS NULL AND NOT (cur.tags @> ?::text[])
				AND cardinality(cur.tags) + (SELECT count(*) FROM unnest(?::text[]) AS x WHERE x <> ALL (cur.tags)) <= ?`,
				t, t, MaxTags),
			skip: bun.SafeQuery(`CASE WHEN cur.deleted_at IS NOT NULL THEN 'ALREADY_DELETED'
				WHEN cur.tags @> ?::text[] THEN 'UNCHANGED' ELSE 'TAG_LIMIT' END`, t),
			newValues: map[string]any{"tags": tags},
		}, nil
	})
}

// BulkRemoveTags removes tags (NormalizeTags) from the leads. Members of the workspace. Skips:
// NOT_FOUND, UNCHANGED (it has none of them), ALREADY_DELETED. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BulkRemoveTags(ctx context.Context, c *auth.Caller, in BulkInput, tags []string) (BulkResult, error) {
	tags, err := NormalizeTags(tags)
	if err != nil {
		return BulkResult{}, err
	}
	t := pgdialect.Array(tags)
	return s.run(ctx, c, in, func(context.Context, bun.Tx, string) (change, error) {
		return change{
			operation: "bulkRemoveLeadTags", action: "workspace_leads.tags_removed",
			set:       bun.SafeQuery("tags = ARRAY(SELECT x FROM unnest(cur.tags) AS x WHERE x <> ALL (?::text[]) ORDER BY x COLLATE \"C\")", t),
			applies:   bun.SafeQuery("cur.deleted_at IS NULL AND cur.tags && ?::text[]", t),
			skip:      bun.SafeQuery("CASE WHEN cur.deleted_at IS NOT NULL THEN 'ALREADY_DELETED' ELSE 'UNCHANGED' END"),
			newValues: map[string]any{"tags": tags},
		}, nil
	})
}

// BulkDelete takes the leads off the workspace's list: the purchase, the ledger and the audit
// trail stay, and the workspace still owns each lead (it cannot buy it again). Owners and admins
// of the workspace. Skips: NOT_FOUND, ALREADY_DELETED. Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BulkDelete(ctx context.Context, c *auth.Caller, in BulkInput) (BulkResult, error) {
	return s.run(ctx, c, in, func(ctx context.Context, tx bun.Tx, _ string) (change, error) {
		if _, err := workspace.RequireRole(ctx, tx, in.WorkspaceID, c.UserID, workspace.RoleOwner, workspace.RoleAdmin); err != nil {
			return change{}, err
		}
		return change{
			operation: "bulkDeleteLeads", action: "workspace_leads.deleted",
			set:       bun.SafeQuery("deleted_at = now()"),
			applies:   bun.SafeQuery("cur.deleted_at IS NULL"),
			skip:      bun.SafeQuery("'ALREADY_DELETED'"),
			newValues: map[string]any{"deleted": true},
		}, nil
	})
}

// BulkRestore puts deleted leads back on the workspace's list; a filter matches deleted leads
// only. Owners and admins of the workspace. Skips: NOT_FOUND, UNCHANGED (not deleted).
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) BulkRestore(ctx context.Context, c *auth.Caller, in BulkInput) (BulkResult, error) {
	return s.run(ctx, c, in, func(ctx context.Context, tx bun.Tx, _ string) (change, error) {
		if _, err := workspace.RequireRole(ctx, tx, in.WorkspaceID, c.UserID, workspace.RoleOwner, workspace.RoleAdmin); err != nil {
			return change{}, err
		}
		return change{
			operation: "bulkRestoreLeads", action: "workspace_leads.restored",
			set:         bun.SafeQuery("deleted_at = NULL"),
			applies:     bun.SafeQuery("cur.deleted_at IS NOT NULL"),
			skip:        bun.SafeQuery("'UNCHANGED'"),
			deletedOnly: true,
			newValues:   map[string]any{"deleted": false},
		}, nil
	})
}

// outcome is one selected lead after the bulk statement: why it was skipped ("" when it changed)
// and, for a changed one, the audit entry's old value.
type outcome struct {
	ID     string  `bun:"id"`
	Reason string  `bun:"reason"`
	Old    *string `bun:"old"`
}

// run is every bulk operation: in one transaction, the caller's role (members only), the
// operation's own checks (build), the bulk statement, one audit entry and the event.
func (s *Service) run(ctx context.Context, c *auth.Caller, in BulkInput,
	build func(ctx context.Context, tx bun.Tx, role string) (change, error),
) (BulkResult, error) {
	sel, err := in.check(true)
	if err != nil {
		return BulkResult{}, err
	}
	var res BulkResult
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		role, err := workspace.RoleOf(ctx, tx, in.WorkspaceID, c.UserID)
		if err != nil {
			return err
		}
		ch, err := build(ctx, tx, role)
		if err != nil {
			return err
		}
		outcomes, err := apply(ctx, tx, in.WorkspaceID, sel, ch)
		if err != nil {
			return err
		}
		var changed []string
		old := map[string]map[string]any{}
		skipped := map[string]int{}
		res = BulkResult{Requested: len(outcomes), Skipped: []Skip{}}
		for _, o := range outcomes {
			if o.Reason != "" {
				res.Skipped = append(res.Skipped, Skip{ID: o.ID, Reason: o.Reason})
				skipped[o.Reason]++
				continue
			}
			changed = append(changed, o.ID)
			if ch.old != "" {
				var v any
				if o.Old != nil {
					v = *o.Old
				}
				old[o.ID] = map[string]any{ch.oldKey: v}
			}
		}
		res.Affected = len(changed)
		return record(ctx, tx, c, in.WorkspaceID, sel, ch, res, changed, old, skipped)
	})
	if err != nil {
		return BulkResult{}, fmt.Errorf("%s: %w", in.WorkspaceID, err)
	}
	return res, nil
}

// apply runs ch on the leads of workspaceID that sel selects, in one statement, and returns the
// outcome for each selected lead in id order (sel.IDs that are no lead of the workspace's:
// NOT_FOUND). The leads are locked in id order first (FOR NO KEY UPDATE, the lock the UPDATE
// itself takes), so two operations on overlapping leads run one after the other on the leads they
// share, the later one seeing what the earlier one committed, and cannot deadlock; the change, the
// skips and the old values are all judged on the locked rows. Every locked lead the change applies
// to is updated (chg), every other one is skipped: the two halves of the answer need no join,
// whose plan could go wrong for thousands of rows of a CTE.
func apply(ctx context.Context, tx bun.Tx, workspaceID string, sel Selection, ch change) ([]outcome, error) {
	old := "NULL::text"
	if ch.old != "" {
		old = ch.old
	}
	var scope schema.QueryWithArgs
	if sel.IDs != nil {
		scope = bun.SafeQuery("w.id = ANY(?::uuid[])", pgdialect.Array(sel.IDs))
	} else {
		f := *sel.Filter
		if ch.deletedOnly {
			f.IncludeDeleted = true
			scope = bun.SafeQuery("w.deleted_at IS NOT NULL AND ?", f.where())
		} else {
			scope = f.where()
		}
	}
	var out []outcome
	err := tx.NewRaw(`WITH cur AS (
		SELECT w.id, w.status, w.assignee_user_id, w.tags, w.deleted_at
		FROM workspace_leads AS w
		WHERE w.workspace_id = ?::uuid AND ?
		ORDER BY w.id
		FOR NO KEY UPDATE
	), chg AS (
		UPDATE workspace_leads AS w SET ?, updated_at = now()
		FROM cur
		WHERE w.id = cur.id AND coalesce((?), false)
		RETURNING w.id, `+old+` AS old
	)
	SELECT chg.id::text AS id, '' AS reason, chg.old FROM chg
	UNION ALL
	SELECT cur.id::text, ?, NULL FROM cur WHERE NOT coalesce((?), false)`, workspaceID, scope, ch.set, ch.applies, ch.skip, ch.applies).Scan(ctx, &out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ch.operation, err)
	}
	if sel.IDs != nil {
		found := make(map[string]bool, len(out))
		for _, o := range out {
			found[o.ID] = true
		}
		for _, id := range sel.IDs {
			if !found[id] {
				out = append(out, outcome{ID: id, Reason: SkipNotFound})
			}
		}
	}
	slices.SortFunc(out, func(a, b outcome) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// record writes the operation's audit entry and, when it changed any lead, its event.
func record(ctx context.Context, tx bun.Tx, c *auth.Caller, workspaceID string, sel Selection, ch change,
	res BulkResult, changed []string, old map[string]map[string]any, skipped map[string]int,
) error {
	md := map[string]any{
		"operation": ch.operation, "requested": res.Requested, "count": res.Affected, "skipped": skipped,
	}
	if sel.IDs != nil {
		md["ids"] = sel.IDs
	} else {
		md["filter"] = sel.Filter
		md["affectedIds"] = changed // what the filter matched then: it may match others later
	}
	e := audit.Entry{
		ActorUserID: c.UserID, WorkspaceID: workspaceID, Action: ch.action, ResourceType: "workspace_leads",
		ResourceID: workspaceID, New: ch.newValues, Metadata: md,
	}
	if ch.old != "" && len(old) > 0 {
		e.Old = old
	}
	if err := audit.Record(ctx, tx, e); err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	parts := (len(changed) + EventIDs - 1) / EventIDs
	payloads := make([]any, 0, parts)
	for ids := range slices.Chunk(changed, EventIDs) {
		payloads = append(payloads, map[string]any{
			"workspaceId": workspaceID, "operation": ch.operation, "ids": ids, "part": len(payloads) + 1, "parts": parts,
		})
	}
	return events.PublishAll(ctx, tx, UpdatedEvent, payloads)
}
