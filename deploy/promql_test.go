package deploy

import (
	"fmt"
	"slices"
	"strings"
)

// This file reads what the alert expressions select — metric names, label matchers, grouping
// labels — without a full PromQL parser (github.com/prometheus/prometheus is far too large a
// module for that). promtool, where installed, checks the syntax itself (TestPromtool).

// matcher is one label matcher of a selector: label op value.
type matcher struct {
	label, op, value string
}

// selector is one vector selector: a metric name and its matchers.
type selector struct {
	name     string
	matchers []matcher
}

// query is what an expression selects.
type query struct {
	selectors []selector
	// grouping are the labels of by (...), without (...), on (...), ignoring (...),
	// group_left (...) and group_right (...).
	grouping []string
}

// aggregations and functions are followed by "(" (or, for aggregations, by "by"/"without"):
// never metric names.
var aggregations = []string{
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
	"quantile", "limitk", "limit_ratio",
}

// grouping keywords take a label list in parentheses.
var groupingKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

// keywords are the other words of PromQL that are not metric names.
var keywords = []string{"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"}

// parseQuery reads the selectors and grouping labels of a PromQL expression. It fails on what it
// cannot read (an unclosed string, brace or bracket, a malformed matcher).
func parseQuery(expr string) (query, error) {
	var q query
	s := []rune(expr)
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	isIdentStart := func(r rune) bool { return r == '_' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
	isIdent := func(r rune) bool { return isIdentStart(r) || r >= '0' && r <= '9' }
	ident := func() string {
		start := i
		for i < len(s) && isIdent(s[i]) {
			i++
		}
		return string(s[start:i])
	}
	str := func() (string, error) {
		quote := s[i]
		i++
		var b strings.Builder
		for i < len(s) && s[i] != quote {
			if s[i] == '\\' && quote != '`' && i+1 < len(s) {
				i++
			}
			b.WriteRune(s[i])
			i++
		}
		if i == len(s) {
			return "", fmt.Errorf("unclosed string in %q", expr)
		}
		i++
		return b.String(), nil
	}
	// matchers reads {label op "value", ...} from the opening brace.
	matchers := func() ([]matcher, error) {
		i++ // {
		var ms []matcher
		for {
			skipSpace()
			if i < len(s) && s[i] == '}' {
				i++
				return ms, nil
			}
			if i == len(s) || !isIdentStart(s[i]) {
				return nil, fmt.Errorf("bad label matcher in %q", expr)
			}
			m := matcher{label: ident()}
			skipSpace()
			for _, op := range []string{"=~", "!~", "!=", "="} {
				if strings.HasPrefix(string(s[i:min(i+2, len(s))]), op) {
					m.op = op
					i += len(op)
					break
				}
			}
			skipSpace()
			if m.op == "" || i == len(s) || (s[i] != '"' && s[i] != '\'' && s[i] != '`') {
				return nil, fmt.Errorf("bad label matcher %s in %q", m.label, expr)
			}
			v, err := str()
			if err != nil {
				return nil, err
			}
			m.value = v
			ms = append(ms, m)
			skipSpace()
			if i < len(s) && s[i] == ',' {
				i++
			}
		}
	}
	// labelList reads (a, b, ...) from the opening parenthesis.
	labelList := func() ([]string, error) {
		i++ // (
		var ls []string
		for {
			skipSpace()
			switch {
			case i == len(s):
				return nil, fmt.Errorf("unclosed label list in %q", expr)
			case s[i] == ')':
				i++
				return ls, nil
			case s[i] == ',':
				i++
			case isIdentStart(s[i]):
				ls = append(ls, ident())
			default:
				return nil, fmt.Errorf("bad label list in %q", expr)
			}
		}
	}
	for i < len(s) {
		r := s[i]
		switch {
		case r == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case r == '"' || r == '\'' || r == '`':
			if _, err := str(); err != nil {
				return q, err
			}
		case r == '[':
			end := slices.Index(s[i:], ']')
			if end < 0 {
				return q, fmt.Errorf("unclosed range in %q", expr)
			}
			i += end + 1
		case r == '{':
			ms, err := matchers()
			if err != nil {
				return q, err
			}
			sel := selector{matchers: ms}
			for _, m := range ms {
				if m.label == "__name__" && m.op == "=" {
					sel.name = m.value
				}
			}
			if sel.name == "" {
				return q, fmt.Errorf("a selector without a metric name in %q", expr)
			}
			q.selectors = append(q.selectors, sel)
		case r >= '0' && r <= '9' || r == '.':
			// A number or a duration (5m, 1e3, 0x1f).
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(r):
			word := ident()
			skipSpace()
			next := rune(0)
			if i < len(s) {
				next = s[i]
			}
			switch {
			case slices.Contains(groupingKeywords, word):
				if next == '(' {
					ls, err := labelList()
					if err != nil {
						return q, err
					}
					q.grouping = append(q.grouping, ls...)
				}
			case slices.Contains(aggregations, word), slices.Contains(keywords, word), next == '(':
				// an aggregation, a function or a keyword
			default:
				sel := selector{name: word}
				if next == '{' {
					ms, err := matchers()
					if err != nil {
						return q, err
					}
					sel.matchers = ms
				}
				q.selectors = append(q.selectors, sel)
			}
		default:
			i++
		}
	}
	return q, nil
}
