package gqlhttp

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

func measure(t *testing.T, q string) shape {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: q})
	require.NoError(t, err)
	m := newMeasurer(doc)
	var s shape
	for _, op := range doc.Operations {
		o := m.selectionSet(op.SelectionSet)
		s = shape{depth: max(s.depth, o.depth), aliases: max(s.aliases, o.aliases), fields: max(s.fields, o.fields)}
	}
	return s
}

func TestMeasurer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, query string
		want        shape
	}{
		{"flat", "{ me { id email } }", shape{depth: 2, fields: 3}},
		{"aliases count, same-name aliases do not", "{ a: me { id } b: me { id: id } }", shape{depth: 2, aliases: 2, fields: 4}},
		{"fragments expand where spread", `{ me { ...U } other: me { ...U } } fragment U on User { id workspaces { role } }`,
			shape{depth: 3, aliases: 1, fields: 8}},
		{"inline fragments add no depth", "{ me { ... on User { id } } }", shape{depth: 2, fields: 2}},
		{"introspection depth is gqlparser's business", "{ __schema { types { fields { type { ofType { name } } } } } }",
			shape{depth: 1, fields: 6}},
		{"cycles and unknown fragments are left to validation", "{ ...A ...Nope } fragment A on Query { me { id } ...B } fragment B on Query { ...A }",
			shape{depth: 2, fields: 2}},
		{"the deepest operation", "query A { me { id } } query B { me { workspaces { workspace { id } } } }", shape{depth: 4, fields: 4}},
	} {
		require.Equal(t, tc.want, measure(t, tc.query), tc.name)
	}
}

func TestMeasurer_FragmentBombIsMeasuredInLinearTime(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("{ ...F0 }\n")
	for i := range 70 {
		fmt.Fprintf(&b, "fragment F%d on Query { ...F%d ...F%d a%d: __typename }\n", i, i+1, i+1, i)
	}
	b.WriteString("fragment F70 on Query { me { id } }")
	start := time.Now()
	s := measure(t, b.String())
	require.Less(t, time.Since(start), 100*time.Millisecond)
	require.Equal(t, math.MaxInt, s.fields, "2^70 fields saturate instead of overflowing")
	require.Equal(t, math.MaxInt, s.aliases)
	require.Equal(t, 2, s.depth)
}

func TestNegotiateMediaType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		accept []string
		want   string
		ok     bool
	}{
		{nil, mediaJSON, true},
		{[]string{""}, mediaJSON, true},
		{[]string{"application/json"}, mediaJSON, true},
		{[]string{"application/graphql-response+json"}, mediaGraphQLResponse, true},
		{[]string{"application/graphql-response+json, application/json;q=0.9"}, mediaGraphQLResponse, true},
		{[]string{"application/json;q=0.5", "application/graphql-response+json;q=0.8"}, mediaGraphQLResponse, true},
		{[]string{"application/json, application/graphql-response+json"}, mediaJSON, true},
		{[]string{"*/*"}, mediaJSON, true},
		{[]string{"text/html, application/*;q=0.1"}, mediaJSON, true},
		{[]string{"application/json;charset=utf-8"}, mediaJSON, true},
		{[]string{"text/html"}, "", false},
		{[]string{"application/json;q=0"}, "", false},
		{[]string{"multipart/mixed"}, "", false},
	} {
		got, ok := negotiateMediaType(tc.accept)
		require.Equal(t, tc.ok, ok, "%q", tc.accept)
		require.Equal(t, tc.want, got, "%q", tc.accept)
	}
}

func TestConnectionCost(t *testing.T) {
	t.Parallel()
	first := func(n int) *int { return &n }
	require.Equal(t, 25*4+1, ConnectionCost(4, nil, 25), "the default page size when first is omitted")
	require.Equal(t, 100_000*3+1, ConnectionCost(3, first(100_000), 25))
	require.Equal(t, 3+1, ConnectionCost(3, first(-5), 25), "a nonsensical first costs one page of one")
	require.Equal(t, math.MaxInt, ConnectionCost(math.MaxInt/2, first(1<<30), 25), "saturates")
}
