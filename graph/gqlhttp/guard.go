package gqlhttp

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

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// Query cost guardrails: a document is refused before it costs anything. graph.NewHandler adds
// them to gqlgen's server in this order (extensions of one kind run in the order they are added).
//
//  1. DocumentSizeGuard: a document over QueryLimits.DocumentBytes is refused (413
//     DOCUMENT_TOO_LARGE) before anything else, automatic persisted queries included.
//  2. DocumentShapeGuard, before gqlparser validates (whose overlapping-fields rule is quadratic
//     in the number of fields): the document is parsed with a token limit and each operation's
//     depth, aliases and fields (fragments expanded, memoised, saturating) are measured;
//     DEPTH_LIMIT_EXCEEDED, ALIAS_LIMIT_EXCEEDED, FIELD_LIMIT_EXCEEDED. As written, no selection
//     set may repeat a response key (or spread one fragment) more than QueryLimits.Duplicates
//     times (DUPLICATE_LIMIT_EXCEEDED), and no field, fragment or operation carry more than
//     QueryLimits.Directives directives (DIRECTIVE_LIMIT_EXCEEDED), each of which validation
//     would otherwise evaluate and answer with an error of its own. Documents already in the
//     query cache passed it before and skip it. Then the InputRules check the operation's
//     input values, the request's variables included (list bounds, 32-bit Ints): INVALID_INPUT.
//  3. gqlparser validation (circular fragments, repeated directives, unknown fields, ...):
//     GRAPHQL_VALIDATION_FAILED, at most QueryLimits.ValidationErrors errors and a last one
//     saying there were more (CapValidationErrors); in production without "Did you mean"
//     suggestions (RulesWithoutSuggestions).
//  4. OperationGuard: names an HTTP request's operation for its access log line, refuses a
//     mutation over GET (405) and, when introspection is off, __schema and __type
//     (INTROSPECTION_DISABLED).
//  5. gqlgen's ComplexityLimit with connection costs (ConnectionCost): COMPLEXITY_LIMIT_EXCEEDED,
//     with the computed cost and the limit in extensions (the error presenter adds them).
//  6. The rate limiter (RateLimiter, ratelimit.go).
//
// Then WithOperationInfo names the operation in the request info (reqinfo) its resolvers, audit
// entries and logs see.

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
	// Duplicates is the most times one selection set may repeat a response key (a field's alias
	// or name) or spread one fragment, as written (DUPLICATE_LIMIT). Default 5.
	Duplicates int
	// Directives is the most directives on one field, fragment, operation or variable
	// (DIRECTIVE_LIMIT). Default 5.
	Directives int
	// ValidationErrors is the most validation errors reported for one document; one more says
	// that there were more. Default 10 (graphql-js reports 100).
	ValidationErrors int
}

// WithDefaults returns l with its zero fields set to their defaults.
func (l QueryLimits) WithDefaults() QueryLimits {
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
	def(&l.Duplicates, 5)
	def(&l.Directives, 5)
	def(&l.ValidationErrors, 10)
	return l
}

// limitError is a refusal by a guardrail, with its measure (under the key what) and the limit in
// extensions.
func limitError(code apperr.Code, what string, measured, limit int) *gqlerror.Error {
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the operation exceeds the %s limit: %d, at most %d", what, measured, limit),
		Extensions: map[string]any{"code": string(code), what: measured, "limit": limit},
	}
}

// DocumentSizeGuard refuses documents over the size limit.
type DocumentSizeGuard struct {
	// MaxBytes is the largest document let through (QueryLimits.DocumentBytes).
	MaxBytes int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = DocumentSizeGuard{}

// ExtensionName implements graphql.HandlerExtension.
func (DocumentSizeGuard) ExtensionName() string { return "DocumentSizeGuard" }

// Validate implements graphql.HandlerExtension.
func (DocumentSizeGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses a document over MaxBytes with 413 DOCUMENT_TOO_LARGE.
func (g DocumentSizeGuard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if len(p.Query) <= g.MaxBytes {
		return nil
	}
	exchangeFrom(ctx).refuse(http.StatusRequestEntityTooLarge)
	return &gqlerror.Error{
		Message:    fmt.Sprintf("the document is %d bytes, over the limit of %d", len(p.Query), g.MaxBytes),
		Extensions: map[string]any{"code": string(apperr.DocumentTooLarge), "bytes": len(p.Query), "limit": g.MaxBytes},
	}
}

// DocumentShapeGuard measures a document's operations before validation.
type DocumentShapeGuard struct {
	// Limits are the depth, alias, field and token limits; they must have their defaults
	// (QueryLimits.WithDefaults).
	Limits QueryLimits
	// Cache is the executor's query cache: documents in it were measured and validated already.
	Cache graphql.Cache[*ast.QueryDocument]
	// Inputs check each operation's input values, its variables included, before validation.
	// Default nil: not checked.
	Inputs *InputRules
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = DocumentShapeGuard{}

// ExtensionName implements graphql.HandlerExtension.
func (DocumentShapeGuard) ExtensionName() string { return "DocumentShapeGuard" }

// Validate implements graphql.HandlerExtension.
func (DocumentShapeGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses a document that does not parse within the token limit, one
// of whose operations or fragments is deeper, or has more aliases or fields, than the limits, one
// that repeats a selection or piles up directives, and an operation whose input values break the
// InputRules. A cached document passed all but the variables' checks before.
func (g DocumentShapeGuard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if doc, ok := g.Cache.Get(ctx, p.Query); ok {
		if g.Inputs == nil || len(p.Variables) == 0 {
			return nil
		}
		return g.Inputs.Check(doc, p.OperationName, p.Variables)
	}
	doc, gerr := g.measure(p.Query)
	if gerr != nil || g.Inputs == nil {
		return gerr
	}
	return g.Inputs.Check(doc, p.OperationName, p.Variables)
}

// measure parses query and measures its shape.
func (g DocumentShapeGuard) measure(query string) (*ast.QueryDocument, *gqlerror.Error) {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, g.Limits.Tokens)
	if err != nil {
		gerr, ok := err.(*gqlerror.Error)
		if !ok {
			gerr = gqlerror.Errorf("%s", err.Error())
		}
		errcode.Set(gerr, errcode.ParseFailed)
		return nil, gerr
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
	w := measureWritten(doc)
	shapes = append(shapes, shape{fields: w.fields})
	for _, s := range shapes {
		switch {
		case s.depth > g.Limits.Depth:
			return nil, limitError(apperr.DepthLimitExceeded, "depth", s.depth, g.Limits.Depth)
		case s.aliases > g.Limits.Aliases:
			return nil, limitError(apperr.AliasLimitExceeded, "aliases", s.aliases, g.Limits.Aliases)
		case s.fields > g.Limits.Fields:
			return nil, limitError(apperr.FieldLimitExceeded, "fields", s.fields, g.Limits.Fields)
		}
	}
	if w.duplicates > g.Limits.Duplicates {
		e := limitError(apperr.DuplicateLimitExceeded, "duplicates", w.duplicates, g.Limits.Duplicates)
		e.Message = fmt.Sprintf("%s is selected %d times in one selection set; at most %d are allowed",
			w.duplicated, w.duplicates, g.Limits.Duplicates)
		e.Extensions["selection"] = w.duplicated
		return nil, e
	}
	if w.directives > g.Limits.Directives {
		e := limitError(apperr.DirectiveLimitExceeded, "directives", w.directives, g.Limits.Directives)
		e.Message = fmt.Sprintf("%s carries %d directives; at most %d are allowed", w.directed, w.directives, g.Limits.Directives)
		return nil, e
	}
	return doc, nil
}

// written is what measureWritten finds in a document as written.
type written struct {
	// fields counts the fields of every operation and fragment once, spreads not expanded.
	fields int
	// duplicates is the most times one selection set repeats a response key (or a fragment
	// spread, or an inline fragment's type condition), duplicated the key.
	duplicates int
	duplicated string
	// directives is the most directives in one place, directed where.
	directives int
	directed   string
}

// measureWritten measures a document as written: one pass over its selection sets, each counted
// once, nothing expanded.
func measureWritten(doc *ast.QueryDocument) written {
	var w written
	keys := map[string]int{}
	noteDirectives := func(ds ast.DirectiveList, where string) {
		if len(ds) > w.directives {
			w.directives, w.directed = len(ds), where
		}
	}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		clear(keys)
		for _, sel := range set {
			var key string
			switch x := sel.(type) {
			case *ast.Field:
				key = x.Alias
				noteDirectives(x.Directives, "the field "+x.Alias)
			case *ast.FragmentSpread:
				key = "..." + x.Name
				noteDirectives(x.Directives, "the spread of "+x.Name)
			case *ast.InlineFragment:
				key = "..."
				if x.TypeCondition != "" {
					key += " on " + x.TypeCondition
				}
				noteDirectives(x.Directives, "an inline fragment")
			}
			keys[key]++
			if n := keys[key]; n > w.duplicates {
				w.duplicates, w.duplicated = n, key
			}
		}
		for _, sel := range set { // after this set's count: walk clears keys
			switch x := sel.(type) {
			case *ast.Field:
				w.fields++
				walk(x.SelectionSet)
			case *ast.InlineFragment:
				walk(x.SelectionSet)
			}
		}
	}
	for _, op := range doc.Operations {
		noteDirectives(op.Directives, "the operation "+operationName(op))
		for _, v := range op.VariableDefinitions {
			noteDirectives(v.Directives, "the variable $"+v.Variable)
		}
		walk(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		noteDirectives(f.Directives, "the fragment "+f.Name)
		walk(f.SelectionSet)
	}
	return w
}

// shape is what DocumentShapeGuard measures of a selection set.
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

// OperationGuard checks the validated operation against what its transport and the deployment
// allow.
type OperationGuard struct {
	// Introspection lets __schema and __type through. Default false: refused.
	Introspection bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = OperationGuard{}

// ExtensionName implements graphql.HandlerExtension.
func (OperationGuard) ExtensionName() string { return "OperationGuard" }

// Validate implements graphql.HandlerExtension.
func (OperationGuard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext refuses a mutation sent with GET (405 METHOD_NOT_ALLOWED), a string
// PostgreSQL cannot store (INVALID_INPUT) and, unless Introspection, introspection
// (INTROSPECTION_DISABLED).
func (g OperationGuard) MutateOperationContext(ctx context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	op := opCtx.Operation
	ex := exchangeFrom(ctx)
	if ex != nil {
		// An HTTP request carries one operation: its access log line names it. (Over a WebSocket
		// the connection's log line names none; WithOperationInfo names each operation in the
		// request info its resolvers see.)
		reqinfo.NoteOperation(ctx, operationName(op))
	}
	if ex != nil && ex.method == http.MethodGet && op.Operation != ast.Query {
		ex.refuse(http.StatusMethodNotAllowed)
		ex.header.Set("Allow", "POST")
		return &gqlerror.Error{
			Message:    fmt.Sprintf("a %s cannot be sent with GET: use POST", op.Operation),
			Extensions: map[string]any{"code": string(apperr.MethodNotAllowed)},
		}
	}
	if hasBadString(opCtx.Variables) || argumentsHaveBadString(op.SelectionSet, map[string]bool{}) {
		return badStringError()
	}
	if !g.Introspection && selectsIntrospection(op.SelectionSet, map[string]bool{}) {
		return &gqlerror.Error{
			Message:    "introspection is disabled",
			Extensions: map[string]any{"code": string(apperr.IntrospectionDisabled)},
		}
	}
	return nil
}

// badStringError is the refusal of a string PostgreSQL cannot store.
func badStringError() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "strings must be valid UTF-8 and cannot contain the NUL character (U+0000)",
		Extensions: map[string]any{"code": string(apperr.InvalidInput)},
	}
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

// WithOperationInfo is an operation middleware (graphql.OperationMiddleware) that runs each
// operation with a request info of its own that names it: operations over one WebSocket run
// concurrently and must not borrow each other's name.
func WithOperationInfo(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if oc := graphql.GetOperationContext(ctx); oc != nil && oc.Operation != nil {
		ctx = reqinfo.WithOperation(ctx, operationName(oc.Operation))
	}
	return next(ctx)
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

// ConnectionCost is the cost of a connection field for gqlgen's complexity limit: first (else
// defaultFirst, its default page size) times childComplexity, the cost of what it selects, plus
// one for the field itself; it saturates at math.MaxInt.
func ConnectionCost(childComplexity int, first *int, defaultFirst int) int {
	n := defaultFirst
	if first != nil {
		n = max(*first, 1)
	}
	return saturatingAdd(saturatingMul(n, childComplexity), 1)
}

// RulesWithoutSuggestions is gqlparser's default validation with every rule that suggests names
// ("Did you mean ...?") swapped for its silent variant, for gqlgen's SetValidationRulesFn.
// gqlgen's SetDisableSuggestion would swap FieldsOnCorrectType and ScalarLeafs itself, after
// SetValidationRulesFn's function ran; swapped here already, they are the ones CapValidationErrors
// wraps, and gqlgen finds nothing left to swap.
func RulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for old, silent := range map[string]core.Rule{
		"KnownArgumentNames":  rules.KnownArgumentNamesRuleWithoutSuggestions,
		"KnownTypeNames":      rules.KnownTypeNamesRuleWithoutSuggestions,
		"ValuesOfCorrectType": rules.ValuesOfCorrectTypeRuleWithoutSuggestions,
		"FieldsOnCorrectType": rules.FieldsOnCorrectTypeRuleWithoutSuggestions,
		"ScalarLeafs":         rules.ScalarLeafsRuleWithoutSuggestions,
	} {
		r.RemoveRule(old)
		r.AddRule(silent.Name, silent.RuleFunc)
	}
	return r
}

// CapValidationErrors returns a validation rules function (gqlgen's SetValidationRulesFn) that
// builds base's rules with their errors counted together, document by document: the first max are
// reported, then one saying there were more, and the rest are dropped before they are built (their
// messages, positions and source excerpts are never formatted). gqlparser's walk itself cannot be
// stopped from a rule; what multiplies errors is refused before it (DocumentShapeGuard: repeated
// selections, piled-up directives, the field and token limits).
func CapValidationErrors(base func() *rules.Rules, max int) func() *rules.Rules {
	return func() *rules.Rules {
		r := base()
		reported := 0
		for name, rule := range r.GetInner() {
			r.ReplaceRule(name, func(observers *core.Events, addError core.AddErrFunc) {
				rule(observers, func(options ...core.ErrorOption) {
					reported++
					switch {
					case reported <= max:
						addError(options...)
					case reported == max+1:
						addError(core.Message("too many validation errors: only the first %d are reported", max))
					}
				})
			})
		}
		return r
	}
}
