package graph

import (
	"github.com/leadmarket/leadmarket/internal/pipeline"
	"github.com/leadmarket/leadmarket/internal/verify"
)

// listBounds are the list inputs of schema.graphqls allowed more values than
// gqlhttp.DefaultListBound (100), by schema coordinate; every other list argument and input field
// (filters, carts, tags, columns, and any list added later) holds at most 100. Each of these
// services checks its own bound again. NewHandler fails on a coordinate the schema lacks.
var listBounds = map[string]int{
	"Mutation.reverifyLeads(leadIds:)": verify.MaxReverify,
	"BulkUpdateLeadStatusInput.ids":    pipeline.MaxIDs,
	"BulkAssignLeadsInput.ids":         pipeline.MaxIDs,
	"BulkAddLeadTagsInput.ids":         pipeline.MaxIDs,
	"BulkRemoveLeadTagsInput.ids":      pipeline.MaxIDs,
	"BulkDeleteLeadsInput.ids":         pipeline.MaxIDs,
	"BulkRestoreLeadsInput.ids":        pipeline.MaxIDs,
	"ExportWorkspaceLeadsInput.ids":    pipeline.MaxIDs,
}
