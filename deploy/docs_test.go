package deploy

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// graphqlInDocs finds the GraphQL documents of the docs' curl examples: the JSON bodies'
// "query":"..." and jq's query: "...".
var graphqlInDocs = regexp.MustCompile(`(?:"query":|query: )"((?:[^"\\]|\\.)*)"`)

// Every GraphQL operation the operations guide and the runbooks tell an operator to send is valid
// against schema.graphqls: a renamed field, argument or mutation breaks this test, not an incident.
func TestDocsGraphQL(t *testing.T) {
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(readFile(t, "../schema.graphqls"))})
	require.NoError(t, err)
	files, err := filepath.Glob("../docs/runbooks/*.md")
	require.NoError(t, err)
	found := 0
	for _, f := range append(files, "../docs/operations.md") {
		for _, m := range graphqlInDocs.FindAllStringSubmatch(string(readFile(t, f)), -1) {
			q := strings.ReplaceAll(m[1], `\"`, `"`)
			_, errs := gqlparser.LoadQueryWithRules(schema, q, nil) // nil: the default rules
			require.Empty(t, errs, "%s: %s", f, q)
			found++
		}
	}
	require.GreaterOrEqual(t, found, 10, "the runbooks' GraphQL examples are found")
}
