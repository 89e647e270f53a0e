package graph

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/credit"
	"github.com/leadmarket/leadmarket/internal/export"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/lead"
	"github.com/leadmarket/leadmarket/internal/marketplace"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/partner"
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// toLead maps a domain lead. Its query judged "bought by my workspace" for the viewer (and
// masked contact data unless so): that is purchasedByMyWorkspace.
func toLead(l lead.Lead) *model.Lead {
	m := &model.Lead{
		ID: l.ID, FirstName: l.FirstName, LastName: l.LastName, Title: l.Title,
		Seniority: model.Seniority(l.Seniority), Department: l.Department, CompanyName: l.CompanyName,
		CompanyDomain: l.CompanyDomain, CompanySize: model.CompanySize(l.CompanySize), Industry: l.Industry,
		Country: l.Country, Region: l.Region, City: l.City, PriceCredits: l.PriceCredits, MaxBuyers: l.MaxBuyers,
		BuyersCount: l.BuyersCount, VerificationStatus: model.VerificationStatus(l.VerificationStatus),
		EmailPreview: l.EmailPreview, PhonePreview: l.PhonePreview, CreatedAt: l.CreatedAt, VerifiedAt: l.VerifiedAt,
		PartnerID: l.PartnerID, PurchasedByMyWorkspace: l.ContactVisible,
	}
	if l.ContactVisible {
		m.Email, m.Phone, m.LinkedinURL = optional(l.Email), optional(l.Phone), optional(l.LinkedinURL)
	}
	return m
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toLeadConnection(ctx context.Context, p marketplace.Page) (*model.LeadConnection, error) {
	edges, info := connection(p, toLead, func(c string, n *model.Lead) *model.LeadEdge { return &model.LeadEdge{Cursor: c, Node: n} })
	nodes := make([]*model.Lead, len(edges))
	for i, e := range edges {
		nodes[i] = e.Node
	}
	if err := fillLeadRelations(ctx, nodes, selects(ctx, "edges", "node", "partner")); err != nil {
		return nil, err
	}
	return &model.LeadConnection{Edges: edges, PageInfo: info}, nil
}

// selects reports whether the current field's selection reaches path (fragments included).
func selects(ctx context.Context, path ...string) bool {
	oc := graphql.GetOperationContext(ctx)
	fields := graphql.CollectFieldsCtx(ctx, nil)
	for depth, name := range path {
		var next []graphql.CollectedField
		found := false
		for _, f := range fields {
			if f.Name == name {
				found = true
				if depth < len(path)-1 {
					next = append(next, graphql.CollectFields(oc, f.Selections, nil)...)
				}
			}
		}
		if !found {
			return false
		}
		fields = next
	}
	return true
}

func toFilter(f *model.LeadFilter) marketplace.Filter {
	if f == nil {
		return marketplace.Filter{}
	}
	out := marketplace.Filter{
		Industries: f.Industries, Countries: f.Countries, MinPriceCredits: f.MinPriceCredits,
		MaxPriceCredits: f.MaxPriceCredits, CreatedAfter: f.CreatedAfter, PartnerIDs: f.PartnerIds,
	}
	for _, s := range f.Seniorities {
		out.Seniorities = append(out.Seniorities, string(s))
	}
	for _, s := range f.CompanySizes {
		out.CompanySizes = append(out.CompanySizes, string(s))
	}
	for _, s := range f.VerificationStatuses {
		out.VerificationStatuses = append(out.VerificationStatuses, string(s))
	}
	if f.TitleContains != nil {
		out.TitleContains = *f.TitleContains
	}
	return out
}

// connection maps a domain page to a GraphQL connection's edges and page info: every list's
// connection is built by it. node maps a row; edge makes the connection's edge type.
func connection[T, N, E any](p page.Page[T], node func(T) N, edge func(cursor string, node N) E) ([]E, *model.PageInfo) {
	edges := make([]E, len(p.Items))
	for i, item := range p.Items {
		edges[i] = edge(p.Cursors[i], node(item))
	}
	info := &model.PageInfo{HasNextPage: p.HasNextPage}
	if n := len(p.Cursors); n > 0 {
		info.EndCursor = &p.Cursors[n-1]
	}
	return edges, info
}

func toCreditTransaction(t credit.Transaction) *model.CreditTransaction {
	return &model.CreditTransaction{
		ID: strconv.FormatInt(t.ID, 10), Kind: model.CreditTransactionKind(t.Kind), Amount: int(t.Amount),
		BalanceAfter: int(t.BalanceAfter), Reference: t.Reference, Description: t.Description, CreatedAt: t.CreatedAt,
	}
}

func toAuditLog(l audit.Log) *model.AuditLog {
	return &model.AuditLog{
		ID: l.ID, OccurredAt: l.OccurredAt, ActorUserID: optional(l.ActorUserID), ActorType: model.ActorType(l.ActorType),
		WorkspaceID: optional(l.WorkspaceID), Action: l.Action, ResourceType: l.ResourceType, ResourceID: l.ResourceID,
		OldValues: rawJSON(l.OldValues), NewValues: rawJSON(l.NewValues), Metadata: rawJSON(l.Metadata),
		Severity: model.AuditSeverity(l.Severity), IP: l.IP, UserAgent: l.UserAgent, RequestID: l.RequestID,
		Operation: l.Operation,
	}
}

func rawJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return nil
	}
	return v
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func toCreditOrder(o billing.Order) *model.CreditOrder {
	return &model.CreditOrder{
		ID: o.ID, WorkspaceID: o.WorkspaceID, Status: model.CreditOrderStatus(o.Status), Credits: int(o.Credits),
		AmountCents: int(o.AmountCents), Currency: o.Currency, RefundedCredits: int(o.RefundedCredits),
		CreatedAt: o.CreatedAt, PaidAt: o.PaidAt,
	}
}

func toWebhookEvent(e billing.Event) *model.WebhookEvent {
	return &model.WebhookEvent{
		ID: e.ID, Type: e.Type, Status: model.WebhookEventStatus(e.Status), Attempts: e.Attempts,
		NextAttemptAt: e.NextAttemptAt, LastError: e.LastError, ReceivedAt: e.ReceivedAt, ProcessedAt: e.ProcessedAt,
	}
}

func toPartnerEarning(e partner.Earning) *model.PartnerEarning {
	return &model.PartnerEarning{
		ID: strconv.FormatInt(e.ID, 10), Kind: model.PartnerEarningKind(e.Kind), AmountCents: int(e.AmountCents),
		SaleValueCents: int(e.SaleValueCents), Rate: e.Rate, LeadPurchaseID: e.LeadPurchaseID, CreatedAt: e.CreatedAt,
	}
}

func toLeadUpload(u ingest.Upload) *model.LeadUpload {
	return &model.LeadUpload{
		ID: u.ID, PartnerID: u.PartnerID, FileName: u.FileName, FileSha256: u.FileSHA256, DryRun: u.DryRun,
		Status: model.LeadUploadStatus(u.Status), RowsTotal: u.RowsTotal, RowsProcessed: u.RowsProcessed,
		AcceptedCount: u.AcceptedCount, DuplicateCount: u.DuplicateCount, InvalidCount: u.InvalidCount,
		CreatedAt: u.CreatedAt, StartedAt: u.StartedAt, CompletedAt: u.CompletedAt, ErrorCode: u.ErrorCode,
		ErrorMessage: u.ErrorMessage, RejectionsCsvURL: optional(u.RejectionsCSVPath()),
	}
}

func toLeadRejection(r ingest.StoredRejection) *model.LeadRejection {
	raw := make(map[string]any, len(r.Raw))
	for k, v := range r.Raw {
		raw[k] = v
	}
	return &model.LeadRejection{
		RowNumber: r.RowNumber, Reason: model.RejectionReason(r.Reason), Field: optional(r.Field), Detail: r.Detail,
		Raw: raw, DuplicateOfLeadID: r.DuplicateOfLeadID,
	}
}

func toPartnerStats(st ingest.Stats) *model.PartnerStats {
	out := &model.PartnerStats{
		LeadsTotal: int(st.LeadsTotal), LeadsActive: int(st.LeadsActive), LeadsSold: int(st.LeadsSold),
		Uploads: int(st.Uploads), RowsRejected: int(st.RowsRejected), VerificationPassRate: st.VerificationPassRate,
		RejectionsByReason: make([]*model.RejectionCount, len(st.RejectionsByReason)),
	}
	for i, c := range st.RejectionsByReason {
		out.RejectionsByReason[i] = &model.RejectionCount{Reason: model.RejectionReason(c.Reason), Count: int(c.Count)}
	}
	return out
}

func toAuditFilter(filter *model.AuditLogFilter) audit.Filter {
	if filter == nil {
		return audit.Filter{}
	}
	f := audit.Filter{
		WorkspaceID: deref(filter.WorkspaceID), ActorUserID: deref(filter.ActorUserID), Action: deref(filter.Action),
		ResourceType: deref(filter.ResourceType), ResourceID: deref(filter.ResourceID),
		OccurredAfter: filter.OccurredAfter, OccurredBefore: filter.OccurredBefore,
	}
	if filter.Severity != nil {
		f.Severity = string(*filter.Severity)
	}
	return f
}

func toPipelineFilter(f *model.WorkspaceLeadFilter) *pipeline.Filter {
	if f == nil {
		return nil
	}
	out := &pipeline.Filter{
		AssigneeIDs: f.AssigneeIds, Unassigned: f.Unassigned, TagsAny: f.TagsAny, TagsAll: f.TagsAll,
		PurchasedAfter: f.PurchasedAfter, PurchasedBefore: f.PurchasedBefore, Search: deref(f.Search),
		IncludeDeleted: f.IncludeDeleted != nil && *f.IncludeDeleted,
	}
	for _, s := range f.Statuses {
		out.Statuses = append(out.Statuses, string(s))
	}
	return out
}

func toBounceReport(r verify.Report) *model.BounceReport {
	return &model.BounceReport{
		ID: r.ID, Status: model.BounceReportStatus(r.Status), CreditsRefunded: int(r.CreditsRefunded), Reason: r.Reason,
		CreatedAt: r.CreatedAt, ResolvedAt: r.ResolvedAt,
		Purchase: &model.LeadPurchase{ID: r.PurchaseID, LeadID: r.LeadID, CreditsSpent: int(r.PurchaseCredits), CreatedAt: r.PurchasedAt},
	}
}

func toVerificationStats(st verify.Stats) *model.VerificationStats {
	out := &model.VerificationStats{
		Pending: int(st.Pending), InFlight: int(st.InFlight), VerifiedLast24h: int(st.VerifiedLast24h),
		FailuresLast24h: int(st.FailuresLast24h),
	}
	for _, c := range st.ByStatus {
		out.ByStatus = append(out.ByStatus, &model.VerificationStatusCount{Status: model.VerificationStatus(c.Status), Count: int(c.Count)})
	}
	for _, p := range st.ByProvider {
		out.ByProvider = append(out.ByProvider, &model.ProviderCount{Provider: p.Provider, Calls: int(p.Calls), Failures: int(p.Failures)})
	}
	return out
}

// toSelection is the leads a bulk mutation or an export names: its ids or its filter.
func toSelection(ids []string, filter *model.WorkspaceLeadFilter) pipeline.Selection {
	return pipeline.Selection{IDs: ids, Filter: toPipelineFilter(filter)}
}

// toBulkInput is a bulk mutation's input for pipeline: its workspace and its ids or filter.
func toBulkInput(workspaceID string, ids []string, filter *model.WorkspaceLeadFilter) pipeline.BulkInput {
	return pipeline.BulkInput{WorkspaceID: workspaceID, Selection: toSelection(ids, filter)}
}

// bulkResult maps a bulk operation's outcome (or passes its error on).
func bulkResult(res pipeline.BulkResult, err error) (*model.BulkResult, error) {
	if err != nil {
		return nil, err
	}
	out := &model.BulkResult{Requested: res.Requested, Affected: res.Affected, Skipped: make([]*model.BulkSkip, len(res.Skipped))}
	for i, s := range res.Skipped {
		out.Skipped[i] = &model.BulkSkip{ID: s.ID, Reason: model.BulkSkipReason(s.Reason)}
	}
	return out, nil
}

func toWorkspaceLead(w pipeline.WorkspaceLead) *model.WorkspaceLead {
	return &model.WorkspaceLead{
		ID: w.ID, Lead: toLead(w.Lead), Status: model.PipelineStatus(w.Status), Tags: w.Tags, CreditsSpent: w.CreditsSpent,
		PurchasedAt: w.PurchasedAt, UpdatedAt: w.UpdatedAt, DeletedAt: w.DeletedAt, AssigneeID: w.AssigneeUserID,
	}
}

// toWorkspaceLeadConnection maps a page of workspace leads, their leads' partners through the
// partner loader in one batch when the query selects them.
func toWorkspaceLeadConnection(ctx context.Context, p page.Page[pipeline.WorkspaceLead]) (*model.WorkspaceLeadConnection, error) {
	edges, info := connection(p, toWorkspaceLead, func(c string, n *model.WorkspaceLead) *model.WorkspaceLeadEdge {
		return &model.WorkspaceLeadEdge{Cursor: c, Node: n}
	})
	leads := make([]*model.Lead, len(edges))
	for i, e := range edges {
		leads[i] = e.Node.Lead
	}
	if err := fillLeadRelations(ctx, leads, selects(ctx, "edges", "node", "lead", "partner")); err != nil {
		return nil, err
	}
	return &model.WorkspaceLeadConnection{Edges: edges, PageInfo: info}, nil
}

// exportResult maps an export (or passes its error on); a nil export stays nil.
func exportResult(e *export.Export, err error) (*model.Export, error) {
	if err != nil || e == nil {
		return nil, err
	}
	return toExport(*e), nil
}

func toExport(e export.Export) *model.Export {
	m := &model.Export{
		ID: e.ID, Kind: model.ExportKind(e.Kind), WorkspaceID: optional(e.WorkspaceID), Status: model.ExportStatus(e.Status),
		RowsTotal: e.RowsTotal, RowsDone: e.RowsDone, CreatedAt: e.CreatedAt, CompletedAt: e.CompletedAt,
		ExpiresAt: e.ExpiresAt, ErrorCode: optional(e.ErrorCode),
	}
	if e.Downloadable(time.Now()) {
		m.DownloadURL = optional(export.DownloadPath(e.ID))
	}
	return m
}

func toExportColumns(cs []model.ExportColumn) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// isCaller reports whether u is the signed-in user: a user reached through another object (an
// assignee) shows neither its workspaces nor its partners.
func isCaller(ctx context.Context, u *model.User) bool {
	c := auth.CallerFrom(ctx)
	return c != nil && u != nil && c.UserID == u.ID
}

// countedLeadConnection is toLeadConnection with a totalCount that count computes when the query
// selects it (LeadConnection.totalCount's resolver calls CountFunc).
func countedLeadConnection(ctx context.Context, p marketplace.Page, count func(context.Context) (marketplace.Total, error)) (*model.LeadConnection, error) {
	c, err := toLeadConnection(ctx, p)
	if err != nil {
		return nil, err
	}
	c.CountFunc = func(ctx context.Context) (*model.TotalCount, error) {
		t, err := count(ctx)
		if err != nil {
			return nil, err
		}
		return &model.TotalCount{Value: t.Value, IsExact: t.IsExact}, nil
	}
	return c, nil
}

func toLeadFacets(f marketplace.Facets) *model.LeadFacets {
	counts := func(cs []lead.FacetCount) []*model.FacetCount {
		out := make([]*model.FacetCount, len(cs))
		for i, c := range cs {
			out[i] = &model.FacetCount{Value: c.Value, Count: c.Count, IsExact: c.IsExact}
		}
		return out
	}
	return &model.LeadFacets{Industries: counts(f.Industries), Countries: counts(f.Countries),
		Seniorities: counts(f.Seniorities), CompanySizes: counts(f.CompanySizes),
		VerificationStatuses: counts(f.VerificationStatuses)}
}
