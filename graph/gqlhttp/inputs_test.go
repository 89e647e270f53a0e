package gqlhttp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

const testSchema = `
type Query { leads(first: Int, filter: Filter, ids: [ID!]): Int, many(ids: [ID!]): Int }
input Filter { countries: [String!], min: Int, nested: Filter }
`

func inputRules(t *testing.T, bounds map[string]int) *InputRules {
	t.Helper()
	s := gqlparser.MustLoadSchema(&ast.Source{Input: testSchema})
	r, err := NewInputRules(s, bounds)
	require.NoError(t, err)
	return r
}

func checkInputs(t *testing.T, r *InputRules, query string, vars map[string]any) string {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	require.NoError(t, err)
	if e := r.Check(doc, "", vars); e != nil {
		require.Equal(t, "INVALID_INPUT", e.Extensions["code"])
		return e.Message
	}
	return ""
}

func TestInputRules(t *testing.T) {
	t.Parallel()
	r := inputRules(t, map[string]int{"Query.many(ids:)": 3})
	list := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = "x"
		}
		return out
	}
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		want        string
	}{
		{"at the default bound", "query($c: [String!]) { leads(filter: {countries: $c}) }", map[string]any{"c": list(100)}, ""},
		{"over it, through a variable in a literal", "query($c: [String!]) { leads(filter: {countries: $c}) }", map[string]any{"c": list(101)},
			"filter.countries takes at most 100 values"},
		{"an input object variable, nested", "query($f: Filter) { leads(filter: $f) }",
			map[string]any{"f": map[string]any{"nested": map[string]any{"countries": list(101)}}}, "filter.nested.countries takes at most 100"},
		{"a literal list", `{ leads(ids: [` + strings.Repeat(`"a",`, 101) + `]) }`, nil, "ids takes at most 100"},
		{"a bound of its own", `query($i: [ID!]) { many(ids: $i) }`, map[string]any{"i": list(4)}, "ids takes at most 3"},
		{"a default value", `query($i: [ID!] = ["a", "b", "c", "d"]) { many(ids: $i) }`, nil, "ids takes at most 3"},
		{"in a fragment", `{ ...F } fragment F on Query { many(ids: ["a", "b", "c", "d"]) }`, nil, "ids takes at most 3"},
		{"a single value for a list", `{ many(ids: "a") }`, nil, ""},
		{"unknown fields are validation's", `{ nope(ids: [` + strings.Repeat(`"a",`, 101) + `]) }`, nil, ""},
		{"Int literal", "{ leads(first: 2147483648) }", nil, "first: Int cannot represent non 32-bit signed integer value: 2147483648"},
		{"Int literal at the bound", "{ leads(first: -2147483648) }", nil, ""},
		{"Int variable, 1e300", "query($f: Filter) { leads(filter: $f) }", map[string]any{"f": map[string]any{"min": 1e300}},
			"filter.min: Int cannot represent non 32-bit signed integer value: 1e+300"},
		{"Int variable, a fraction", "query($n: Int) { leads(first: $n) }", map[string]any{"n": 2.5}, "first: Int cannot represent non-integer value: 2.5"},
		{"Int variable, an exponent", "query($n: Int) { leads(first: $n) }", map[string]any{"n": jsonNumber("1e3")},
			"first: an Int is written as an integer (1000), not 1e3"},
		{"Int variable, a huge integer", "query($n: Int) { leads(first: $n) }", map[string]any{"n": jsonNumber("123456789012345678901234567890")},
			"first: Int cannot represent non 32-bit signed integer value: 123456789012345678901234567890"},
		{"a string for an Int is validation's", "query($n: Int) { leads(first: $n) }", map[string]any{"n": "many"}, ""},
	} {
		require.Equal(t, tc.want, firstLine(checkInputs(t, r, tc.query, tc.vars), tc.want), tc.name)
	}
}

// firstLine cuts got to the length of want's prefix when it starts with it, so cases can name
// the start of a message.
func firstLine(got, want string) string {
	if want != "" && strings.HasPrefix(got, want) {
		return want
	}
	return got
}

func TestNewInputRulesRefusesUnknownCoordinates(t *testing.T) {
	t.Parallel()
	s := gqlparser.MustLoadSchema(&ast.Source{Input: testSchema})
	for _, coord := range []string{"Query.many(id:)", "Filter.min", "Filter.nope", "Query.leads", "Nope.ids", "Query.many(ids"} {
		_, err := NewInputRules(s, map[string]int{coord: 10})
		require.ErrorContains(t, err, coord, coord)
	}
	_, err := NewInputRules(s, map[string]int{"Filter.countries": 0})
	require.ErrorContains(t, err, "not a positive bound")
	r, err := NewInputRules(s, map[string]int{"Filter.countries": 500, "Query.many(ids:)": 5})
	require.NoError(t, err)
	require.Equal(t, 500, r.MaxBound())
}

func TestCutLongLists(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"a": [1, 2, 3]}`, `{"a": [1, 2, 3]}`},
		{`{"a": [1, 2, 3, 4, 5]}`, `{"a": [1, 2, 3]}`},
		{`{"a": [[1, 2, 3, 4], [5], ["x,y,z,w"], 6, 7], "b": "]"}`, `{"a": [[1, 2, 3], [5], ["x,y,z,w"]], "b": "]"}`},
		{`{"a": ["\"", "\\", "]", "[", "q"]}`, `{"a": ["\"", "\\", "]"]}`},
		{`{"a": [1, 2, 3, [4, 5, 6, 7, 8], {"k": [1, 2, 3, 4, 5]}]}`, `{"a": [1, 2, 3]}`},
		{`not json, , , , ]`, `not json, , , , ]`},
	} {
		got, cut, err := cutLongLists([]byte(tc.in), 2)
		require.Nil(t, err, tc.in)
		require.Equal(t, tc.want, string(got), tc.in)
		require.Equal(t, tc.in != tc.want, cut, tc.in)
	}
	_, _, err := cutLongLists([]byte(`{"a": {"x": 1, "y": 2, "z": 3}}`), 2)
	require.NotNil(t, err, "an object of more members is refused, not cut")
}

func TestCheckJSONText(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		`"plain"`: true, `"Zürich 東京"`: true, `"\u00e9 \ud83d\ude00"`: true, `"\\ud800"`: true, `"\\\ud83d\ude00"`: true,
		"\"\xff\"": false, "\"\xc3\"": false, `"\ud800"`: false, `"\udc00"`: false, `"\ud800\ud800"`: false, `"\ud800x"`: false,
		`"\\\ud800"`: false, `"\uD83D\uDE00"`: true, `"end\`: true, `"\u12"`: true,
	} {
		require.Equal(t, ok, CheckJSONText([]byte(in)) == nil, in)
	}
}

func TestMeasureWritten(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query                string
		duplicates, directed int
		key                  string
	}{
		{"{ me { id } }", 1, 0, "me"},
		{"{ a: me { id } b: me { id } me { id id } }", 2, 0, "id"},
		{"{ " + strings.Repeat("__typename ", 7) + "}", 7, 0, "__typename"},
		{"{ x: __typename x: __typename x: __typename }", 3, 0, "x"},
		{"{ ...F ...F ...F } fragment F on Query { __typename }", 3, 0, "...F"},
		{"{ ... on Query { id } ... on Query { id } ... { id } }", 2, 0, "... on Query"},
		{"{ me @a @b @c { id @d } }", 1, 3, "me"},
		{"query Q($v: Int @x) @a @b @c @d { me }", 1, 4, "me"},
		{"fragment F on User @a @b { id } { ...F @x @y @z }", 1, 3, "...F"},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.query})
		require.NoError(t, err, tc.query)
		w := measureWritten(doc)
		require.Equal(t, tc.duplicates, w.duplicates, tc.query)
		require.Equal(t, tc.key, w.duplicated, tc.query)
		require.Equal(t, tc.directed, w.directives, tc.query)
	}
}

func jsonNumber(s string) any { return json.Number(s) }
