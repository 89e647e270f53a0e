package gqlhttp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// However many distinct names a client sends, and however often, Label returns at most
// MaxLabels values: the allow-list, the first names seen more than the threshold (up to the
// cap), "other" and "anonymous".
func TestOperationNamesBoundTheLabels(t *testing.T) {
	n := NewOperationNames([]string{"BrowseLeads"}, 5, 20)
	labels := map[string]bool{}
	for round := range 7 { // every name seen 7 times: each would pass the threshold of 5
		for i := range 10_000 {
			labels[n.Label(fmt.Sprintf("Attack%d", i))] = true
		}
		labels[n.Label("BrowseLeads")] = true
		labels[n.Label("")] = true
		_ = round
	}
	require.LessOrEqual(t, len(labels), n.MaxLabels())
	require.Equal(t, 1+20+2, n.MaxLabels())
	require.True(t, labels["BrowseLeads"] && labels[NameOther] && labels[NameAnonymous])

	// A name that recurs becomes its own label after the threshold; an allow-listed one at once.
	n = NewOperationNames([]string{"Known"}, 3, 10)
	require.Equal(t, "Known", n.Label("Known"))
	for range 3 {
		require.Equal(t, NameOther, n.Label("MyLeads"))
	}
	require.Equal(t, "MyLeads", n.Label("MyLeads"))
	require.Equal(t, NameOther, n.Label(strings.Repeat("A", 65)), "a name too long is never a label")
	var nilNames *OperationNames
	require.Equal(t, NameOther, nilNames.Label("Anything"))
	require.Equal(t, NameAnonymous, nilNames.Label(""))
}

func TestGuardRule(t *testing.T) {
	for _, tc := range []struct{ code, message, rule string }{
		{"DEPTH_LIMIT_EXCEEDED", "", "depth"},
		{"COMPLEXITY_LIMIT_EXCEEDED", "", "complexity"},
		{"ALIAS_LIMIT_EXCEEDED", "", "aliases"},
		{"FIELD_LIMIT_EXCEEDED", "", "fields"},
		{"DOCUMENT_TOO_LARGE", "", "document_size"},
		{"REQUEST_TOO_LARGE", "", "body_size"},
		{"GRAPHQL_PARSE_FAILED", "exceeded token limit of 10000", "tokens"},
		{"GRAPHQL_PARSE_FAILED", "Expected Name, found <EOF>", ""},
		{"RATE_LIMITED", "", ""},
		{"FORBIDDEN", "", ""},
	} {
		require.Equal(t, tc.rule, GuardRule(tc.code, tc.message), tc.code)
	}
}
