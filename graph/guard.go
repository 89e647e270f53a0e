package graph

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
)

// Query cost guardrails: a document is refused before it costs anything.
//
//  1. documentSizeGuard: a document over QueryLimits.DocumentBytes is refused (413
//     DOCUMENT_TOO_LARGE) before anything else, automatic persisted queries included.
//  2. documentShapeGuard, before gqlparser validates (whose overlapping-fields rule is quadratic
//     in the number of fields): the document is parsed with a token limit and each operation's
//     depth, aliases and fields (fragments expanded, memoised, saturating) are measured;
//     DEPTH_LIMIT_EXCEEDED, ALIAS_LIMIT_EXCEEDED, FIELD_LIMIT_EXCEEDED. Documents already in the
//     query cache passed it before and skip it.
//  3. gqlparser validation (circular fragments, repeated directives, unknown fields, ...):
//     GRAPHQL_VALIDATION_FAILED; in production without "Did you mean" suggestions.
//  4. operationGuard: names the operation for audit entries and logs, refuses a mutation over
//     GET (405) and, when introspection is off, __schema and __type (INTROSPECTION_DISABLED).
//  5. gqlgen's ComplexityLimit with connection costs (costOf): COMPLEXITY_LIMIT_EXCEEDED, with
//     the computed cost and the limit in extensions.
//  6. The rate limiter (ratelimit.go).

// QueryLimits bound what one GraphQL document may ask for. Zero fields take the defaults.
type QueryLimits struct {
	// Complexity is the highest cost of an operation (COMPLEXITY_LIMIT). Default 5000.
	Complexity int
	// Depth is the deepest nesting of fields, introspection excluded (DEPTH_LIMIT). Default 10.
	Depth int
	// Aliases is the most aliased fields in one operation, fragments expanded (ALIAS_LIMIT).
	// Default 30.
	Aliases int
	// Fields is the most fields in one operation, fragments expanded and duplicates counted
	// (FIELD_LIMIT). Default 500.
	Fields int
	// DocumentBytes is the largest document (MAX_DOCUMENT_BYTES). Default 65536.
	DocumentBytes int
	// Tokens is the most lexical tokens the parser reads. Default 10000.
	Tokens int
}

func (l QueryLimits) withDefaults() QueryLimits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Complexity, 5000)
	def(&l.Depth, 10)
	def(&l.Aliases, 30)
	def(&l.Fields, 500)
	def(&l.DocumentBytes, 64<<10)
	def(&l.Tokens, 10_000)
	return l
}

// limitError is a refusal by a guardrail, with its measure (under the key what) and the limit in
// extensions.
func limitError(code, what string, measured, limit int) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the operation exceeds the %s limit: %d, at most %d", what, measured, limit),
		Extensions: map[string]any{"code": code, what: measured, "limit": limit},
	}
}

// documentSizeGuard refuses documents over the size limit.
type documentSizeGuard struct{ maxBytes int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = documentSizeGuard{}

func (documentSizeGuard) ExtensionName() string                   { return "DocumentSizeGuard" }
func (documentSizeGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g documentSizeGuard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if len(p.Query) <= g.maxBytes {
		return nil
	}
	exchangeFrom(ctx).refuse(http.StatusRequestEntityTooLarge)
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the document is %d bytes, over the limit of %d", len(p.Query), g.maxBytes),
		Extensions: map[string]any{"code": codeDocumentTooLarge, "bytes": len(p.Query), "limit": g.maxBytes},
	}
}

// documentShapeGuard measures a document's operations before validation.
type documentShapeGuard struct {
	limits QueryLimits
	// cache is the executor's query cache: documents in it were measured and validated already.
	cache graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = documentShapeGuard{}

func (documentShapeGuard) ExtensionName() string                   { return "DocumentShapeGuard" }
func (documentShapeGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g documentShapeGuard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if _, ok := g.cache.Get(ctx, p.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, g.limits.Tokens)
	if err != nil {
		gerr, ok := err.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Errorf("%s", err.Error())
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return gerr
	}
	// Validation walks every definition, used or not: fragments no operation spreads are measured
	// as well, and the fields written in the whole document are bounded too (many fragments each
	// under the limit would otherwise add up).
	m := newMeasurer(doc)
	shapes := make([]shape, 0, len(doc.Operations)+len(doc.Fragments)+1)
	for _, op := range doc.Operations {
		shapes = append(shapes, m.selectionSet(op.SelectionSet))
	}
	for _, f := range doc.Fragments {
		shapes = append(shapes, m.fragment(f.Name))
	}
	shapes = append(shapes, shape{fields: writtenFields(doc)})
	for _, s := range shapes {
		switch {
		case s.depth > g.limits.Depth:
			return limitError(codeDepthLimitExceeded, "depth", s.depth, g.limits.Depth)
		case s.aliases > g.limits.Aliases:
			return limitError(codeAliasLimitExceeded, "aliases", s.aliases, g.limits.Aliases)
		case s.fields > g.limits.Fields:
			return limitError(codeFieldLimitExceeded, "fields", s.fields, g.limits.Fields)
		}
	}
	return nil
}

// writtenFields counts the fields as written in the document, every operation and fragment
// once, without expanding spreads.
func writtenFields(doc *ast.QueryDocument) int {
	var count func(ast.SelectionSet) int
	count = func(set ast.SelectionSet) int {
		n := 0
		for _, sel := range set {
			switch x := sel.(type) {
			case *ast.Field:
				n += 1 + count(x.SelectionSet)
			case *ast.InlineFragment:
				n += count(x.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += count(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		n += count(f.SelectionSet)
	}
	return n
}

// shape is what documentShapeGuard measures of a selection set.
type shape struct{ depth, aliases, fields int }

// measurer measures selection sets of an unvalidated document, expanding fragment spreads by
// name with memoised, saturating counts (so a fragment spread 2^30 times costs 30 steps) and
// ignoring cycles and unknown fragments, which validation then refuses.
type measurer struct {
	fragments map[string]*ast.FragmentDefinition
	memo      map[string]shape
	visiting  map[string]bool
}

func newMeasurer(doc *ast.QueryDocument) *measurer {
	m := &measurer{fragments: map[string]*ast.FragmentDefinition{}, memo: map[string]shape{}, visiting: map[string]bool{}}
	for _, f := range doc.Fragments {
		m.fragments[f.Name] = f
	}
	return m
}

func (m *measurer) selectionSet(set ast.SelectionSet) shape {
	var s shape
	add := func(c shape, depth int) {
		s.aliases = saturatingAdd(s.aliases, c.aliases)
		s.fields = saturatingAdd(s.fields, c.fields)
		s.depth = max(s.depth, depth)
	}
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			c := m.selectionSet(x.SelectionSet)
			c.fields = saturatingAdd(c.fields, 1)
			if x.Alias != x.Name {
				c.aliases = saturatingAdd(c.aliases, 1)
			}
			depth := 1 + c.depth
			if x.Name == "__schema" || x.Name == "__type" {
				depth = 1 // introspection has its own depth rule (gqlparser's MaxIntrospectionDepth)
			}
			add(c, depth)
		case *ast.InlineFragment:
			c := m.selectionSet(x.SelectionSet)
			add(c, c.depth)
		case *ast.FragmentSpread:
			c := m.fragment(x.Name)
			add(c, c.depth)
		}
	}
	return s
}

func (m *measurer) fragment(name string) shape {
	if s, ok := m.memo[name]; ok {
		return s
	}
	f := m.fragments[name]
	if f == nil || m.visiting[name] {
		return shape{}
	}
	m.visiting[name] = true
	s := m.selectionSet(f.SelectionSet)
	m.visiting[name] = false
	m.memo[name] = s
	return s
}

func saturatingAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

func saturatingMul(a, b int) int {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// operationGuard checks the validated operation against what its transport and the deployment
// allow.
type operationGuard struct {
	introspection bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = operationGuard{}

func (operationGuard) ExtensionName() string                   { return "OperationGuard" }
func (operationGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g operationGuard) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	ex := exchangeFrom(ctx)
	if ex != nil {
		// An HTTP request carries one operation: its access log line names it. (Over a WebSocket
		// the connection's request info is shared; withOperationInfo gives each operation its own.)
		audit.RequestInfoFrom(ctx).Operation = operationName(op)
	}
	if ex != nil && ex.method == http.MethodGet && op.Operation != ast.Query {
		ex.refuse(http.StatusMethodNotAllowed)
		ex.header.Set("Allow", "POST")
		return &gqlerror.Error{
			Message:    fmt.Sprintf("a %s cannot be sent with GET: use POST", op.Operation),
			Extensions: map[string]any{"code": codeMethodNotAllowed},
		}
	}
	if hasBadString(opCtx.Variables) || argumentsHaveBadString(op.SelectionSet, map[string]bool{}) {
		return &gqlerror.Error{
			Message:    "strings must be valid UTF-8 and cannot contain the NUL character (U+0000)",
			Extensions: map[string]any{"code": string(apperr.InvalidInput)},
		}
	}
	if !g.introspection && selectsIntrospection(op.SelectionSet, map[string]bool{}) {
		return &gqlerror.Error{
			Message:    "introspection is disabled",
			Extensions: map[string]any{"code": codeIntrospectionDisabled},
		}
	}
	return nil
}

// badString reports whether s is a string PostgreSQL's text cannot store: one with a NUL
// character or that is not valid UTF-8 (possible in a GET request's query). Refused up front, it
// is the client's mistake with a code, not an internal error from the first statement that meets
// it.
func badString(s string) bool { return strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) }

// hasBadString reports whether a variable value (as decoded from JSON) holds a bad string.
func hasBadString(v any) bool {
	switch x := v.(type) {
	case string:
		return badString(x)
	case []any:
		return slices.ContainsFunc(x, hasBadString)
	case map[string]any:
		for k, e := range x {
			if badString(k) || hasBadString(e) {
				return true
			}
		}
	}
	return false
}

// argumentsHaveBadString reports whether a literal argument in a selection set (fragments
// included) holds a bad string.
func argumentsHaveBadString(set ast.SelectionSet, seen map[string]bool) bool {
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			if slices.ContainsFunc(x.Arguments, func(a *ast.Argument) bool { return valueHasBadString(a.Value) }) ||
				argumentsHaveBadString(x.SelectionSet, seen) {
				return true
			}
		case *ast.InlineFragment:
			if argumentsHaveBadString(x.SelectionSet, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if x.Definition != nil && !seen[x.Name] {
				seen[x.Name] = true
				if argumentsHaveBadString(x.Definition.SelectionSet, seen) {
					return true
				}
			}
		}
	}
	return false
}

func valueHasBadString(v *ast.Value) bool {
	if v == nil {
		return false
	}
	if (v.Kind == ast.StringValue || v.Kind == ast.BlockValue) && badString(v.Raw) {
		return true
	}
	return slices.ContainsFunc(v.Children, func(c *ast.ChildValue) bool { return valueHasBadString(c.Value) })
}

// operationName is how audit entries, logs and refusals name an operation: its name, else its
// type ("query", "mutation").
func operationName(op *ast.OperationDefinition) string {
	if op.Name != "" {
		return op.Name
	}
	return string(op.Operation)
}

// withOperationInfo gives each operation its own copy of the request info, naming it: operations
// over one WebSocket run concurrently and must neither race on nor borrow each other's name.
func withOperationInfo(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ri := *audit.RequestInfoFrom(ctx)
	if oc := graphql.GetOperationContext(ctx); oc != nil && oc.Operation != nil {
		ri.Operation = operationName(oc.Operation)
	}
	return next(audit.WithRequestInfo(ctx, &ri))
}

// selectsIntrospection reports whether a root selection set (fragments included) selects
// __schema or __type.
func selectsIntrospection(set ast.SelectionSet, seen map[string]bool) bool {
	for _, sel := range set {
		switch x := sel.(type) {
		case *ast.Field:
			if x.Name == "__schema" || x.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if selectsIntrospection(x.SelectionSet, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if x.Definition != nil && !seen[x.Name] {
				seen[x.Name] = true
				if selectsIntrospection(x.Definition.SelectionSet, seen) {
					return true
				}
			}
		}
	}
	return false
}

// costOf is the cost of a connection: first (else its default) times the cost of what it
// selects, plus one for the field itself.
func costOf(childComplexity int, first *int, defaultFirst int) int {
	n := defaultFirst
	if first != nil {
		n = max(*first, 1)
	}
	return saturatingAdd(saturatingMul(n, childComplexity), 1)
}

// setComplexity gives every connection of the schema its cost.
func setComplexity(c *ComplexityRoot) {
	c.Query.MarketplaceLeads = func(child int, first *int, _ *string, _ *model.LeadFilter, _ *model.LeadOrder, _ *string) int {
		return costOf(child, first, 25)
	}
	c.Query.MyLeads = func(child int, _ string, first *int, _ *string, _ *model.LeadFilter) int {
		return costOf(child, first, 25)
	}
	c.Query.CreditTransactions = func(child int, _ string, first *int, _ *string) int {
		return costOf(child, first, 25)
	}
	c.Query.AuditLogs = func(child int, _ *model.AuditLogFilter, first *int, _ *string) int {
		return costOf(child, first, 50)
	}
	c.Query.WebhookEvents = func(child int, _ *model.WebhookEventFilter, first *int, _ *string) int {
		return costOf(child, first, 50)
	}
	c.Query.PartnerEarnings = func(child int, _ string, first *int, _ *string) int {
		return costOf(child, first, 25)
	}
}

// rulesWithoutSuggestions is gqlparser's default validation with every rule that suggests names
// ("Did you mean ...?") swapped for its silent variant; gqlgen's SetDisableSuggestion swaps the
// other two (FieldsOnCorrectType, ScalarLeafs).
func rulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for old, silent := range map[string]core.Rule{
		"KnownArgumentNames":  rules.KnownArgumentNamesRuleWithoutSuggestions,
		"KnownTypeNames":      rules.KnownTypeNamesRuleWithoutSuggestions,
		"ValuesOfCorrectType": rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
	} {
		r.RemoveRule(old)
		r.AddRule(silent.Name, silent.RuleFunc)
	}
	return r
}
