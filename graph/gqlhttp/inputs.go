package gqlhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/internal/apperr"
)

// DefaultListBound is the most values a list argument or input field may hold unless
// InputRules' bounds name it (filters, carts, tags, ...).
const DefaultListBound = 100

// InputRules bound an operation's input values, written in the document and sent as variables
// alike, before gqlparser validates the document and coerces the variables (which walks every
// value of a list, however long, and answers "cannot use string as Int" for 1e300):
//
//   - every list argument and input field holds at most its bound (DefaultListBound unless the
//     bounds name it), INVALID_INPUT naming the argument as written, e.g. filter.countries;
//   - an Int is a 32-bit integer, as GraphQL's Int is: 99999999999 and 1e300 are INVALID_INPUT
//     saying so, where gqlgen would take any 64-bit number.
//
// Values the schema does not know (an unknown field or argument) are left to validation. The
// services keep their own, often tighter, rules (a cart of 1 to 100 leads, 20 tags).
type InputRules struct {
	schema *ast.Schema
	bounds map[string]int
}

// NewInputRules returns the input rules of schema, with bounds by schema coordinate for the list
// inputs allowed another bound than DefaultListBound: "Type.field" for an input field,
// "Type.field(arg:)" for an argument. It fails when a coordinate names no list input of schema,
// so a renamed field cannot silently fall back to the default.
func NewInputRules(schema *ast.Schema, bounds map[string]int) (*InputRules, error) {
	var errs []error
	for coord, n := range bounds {
		t := listInputType(schema, coord)
		switch {
		case t == nil || t.Elem == nil:
			errs = append(errs, fmt.Errorf("list bound %s: no list argument or input field of the schema has this coordinate", coord))
		case n < 1:
			errs = append(errs, fmt.Errorf("list bound %s: %d is not a positive bound", coord, n))
		}
	}
	return &InputRules{schema: schema, bounds: bounds}, errors.Join(errs...)
}

// MaxBound is the largest bound of any list input.
func (r *InputRules) MaxBound() int {
	m := DefaultListBound
	for _, n := range r.bounds {
		m = max(m, n)
	}
	return m
}

// listInputType is the type of the argument or input field at coord, or nil.
func listInputType(schema *ast.Schema, coord string) *ast.Type {
	typeName, rest, _ := strings.Cut(coord, ".")
	d := schema.Types[typeName]
	if d == nil {
		return nil
	}
	if field, arg, ok := strings.Cut(rest, "("); ok {
		arg, ok = strings.CutSuffix(arg, ":)")
		if f := d.Fields.ForName(field); ok && f != nil {
			if a := f.Arguments.ForName(arg); a != nil {
				return a.Type
			}
		}
		return nil
	}
	if f := d.Fields.ForName(rest); d.Kind == ast.InputObject && f != nil {
		return f.Type
	}
	return nil
}

// Check checks the input values of doc's operation operationName (the only one when it is
// empty) with vars, the request's variables as decoded from JSON. It returns nil when there is
// no such operation: the executor says so.
func (r *InputRules) Check(doc *ast.QueryDocument, operationName string, vars map[string]any) *gqlerror.Error {
	op := doc.Operations.ForName(operationName)
	if op == nil {
		return nil
	}
	w := &inputWalk{r: r, op: op, vars: vars, fragments: map[string]*ast.FragmentDefinition{}, seen: map[string]bool{}}
	for _, f := range doc.Fragments {
		if w.fragments[f.Name] == nil {
			w.fragments[f.Name] = f
		}
	}
	var root *ast.Definition
	switch op.Operation {
	case ast.Mutation:
		root = r.schema.Mutation
	case ast.Subscription:
		root = r.schema.Subscription
	default:
		root = r.schema.Query
	}
	return w.selectionSet(root, op.SelectionSet)
}

// inputWalk walks one operation's selections with their schema definitions, resolved as it goes
// (the document is not validated yet), each fragment once.
type inputWalk struct {
	r         *InputRules
	op        *ast.OperationDefinition
	vars      map[string]any
	fragments map[string]*ast.FragmentDefinition
	seen      map[string]bool
}

func (w *inputWalk) selectionSet(parent *ast.Definition, set ast.SelectionSet) *gqlerror.Error {
	for _, sel := range set {
		var err *gqlerror.Error
		switch x := sel.(type) {
		case *ast.Field:
			var next *ast.Definition
			var fd *ast.FieldDefinition
			if parent != nil {
				fd = parent.Fields.ForName(x.Name)
			}
			if fd != nil {
				for _, a := range x.Arguments {
					if ad := fd.Arguments.ForName(a.Name); ad != nil {
						if err = w.literal(ad.Type, a.Value, parent.Name+"."+fd.Name+"("+ad.Name+":)", a.Name); err != nil {
							return err
						}
					}
				}
				next = w.r.schema.Types[fd.Type.Name()]
			}
			err = w.selectionSet(next, x.SelectionSet)
		case *ast.InlineFragment:
			next := parent
			if x.TypeCondition != "" {
				next = w.r.schema.Types[x.TypeCondition]
			}
			err = w.selectionSet(next, x.SelectionSet)
		case *ast.FragmentSpread:
			if f := w.fragments[x.Name]; f != nil && !w.seen[x.Name] {
				w.seen[x.Name] = true
				err = w.selectionSet(w.r.schema.Types[f.TypeCondition], f.SelectionSet)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// literal checks a value written in the document, of type t at the schema coordinate coord
// (of the list it belongs to), named path (the argument, then input fields: filter.countries).
func (w *inputWalk) literal(t *ast.Type, v *ast.Value, coord, path string) *gqlerror.Error {
	switch v.Kind {
	case ast.Variable:
		raw, ok := w.vars[v.Raw]
		if !ok {
			if vd := w.op.VariableDefinitions.ForName(v.Raw); vd != nil && vd.DefaultValue != nil {
				return w.literal(t, vd.DefaultValue, coord, path)
			}
			return nil
		}
		return w.value(t, raw, coord, path)
	case ast.NullValue:
		return nil
	}
	if t.Elem != nil {
		if v.Kind != ast.ListValue {
			return w.literal(t.Elem, v, coord, path) // one value stands for a list of it
		}
		if err := w.bound(coord, path, len(v.Children)); err != nil {
			return err
		}
		for _, c := range v.Children {
			if err := w.literal(t.Elem, c.Value, coord, path); err != nil {
				return err
			}
		}
		return nil
	}
	switch def := w.r.schema.Types[t.NamedType]; {
	case def == nil:
	case def.Kind == ast.InputObject && v.Kind == ast.ObjectValue:
		for _, c := range v.Children {
			if fd := def.Fields.ForName(c.Name); fd != nil {
				if err := w.literal(fd.Type, c.Value, def.Name+"."+fd.Name, path+"."+c.Name); err != nil {
					return err
				}
			}
		}
	case def.Name == "Int" && v.Kind == ast.IntValue:
		return intError(v.Raw, path)
	}
	return nil
}

// value checks a variable's value (as decoded from JSON: []any, map[string]any, json.Number,
// string, ...) where the document uses it, with literal's arguments.
func (w *inputWalk) value(t *ast.Type, raw any, coord, path string) *gqlerror.Error {
	if raw == nil {
		return nil
	}
	if t.Elem != nil {
		list, ok := raw.([]any)
		if !ok {
			return w.value(t.Elem, raw, coord, path)
		}
		if err := w.bound(coord, path, len(list)); err != nil {
			return err
		}
		for _, e := range list {
			if err := w.value(t.Elem, e, coord, path); err != nil {
				return err
			}
		}
		return nil
	}
	switch def := w.r.schema.Types[t.NamedType]; {
	case def == nil:
	case def.Kind == ast.InputObject:
		m, _ := raw.(map[string]any)
		for _, fd := range def.Fields {
			if e, ok := m[fd.Name]; ok {
				if err := w.value(fd.Type, e, def.Name+"."+fd.Name, path+"."+fd.Name); err != nil {
					return err
				}
			}
		}
	case def.Name == "Int":
		switch x := raw.(type) {
		case json.Number:
			return intError(string(x), path)
		case string: // gqlparser and gqlgen take a numeric string for an Int
			if _, err := strconv.ParseInt(x, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
				return intError(x, path)
			}
		case float64:
			return intError(strconv.FormatFloat(x, 'g', -1, 64), path)
		case int64:
			return intError(strconv.FormatInt(x, 10), path)
		case int:
			return intError(strconv.Itoa(x), path)
		}
	}
	return nil
}

// bound refuses a list of n values at coord over its bound.
func (w *inputWalk) bound(coord, path string, n int) *gqlerror.Error {
	limit, ok := w.r.bounds[coord]
	if !ok {
		limit = DefaultListBound
	}
	if n <= limit {
		return nil
	}
	// No count: a list longer than MaxBound arrives cut short (Transport.MaxListValues).
	return &gqlerror.Error{
		Message:    fmt.Sprintf("%s takes at most %d values", path, limit),
		Extensions: map[string]any{"code": string(apperr.InvalidInput), "argument": path, "coordinate": coord, "limit": limit},
	}
}

// intError says what is wrong with s, a number given for an Int, or returns nil when it is a
// 32-bit integer.
func intError(s, path string) *gqlerror.Error {
	if _, err := strconv.ParseInt(s, 10, 32); err == nil {
		return nil
	}
	var reason string
	_, err := strconv.ParseInt(s, 10, 64)
	f, ferr := strconv.ParseFloat(s, 64)
	switch {
	case err == nil || errors.Is(err, strconv.ErrRange):
		reason = "Int cannot represent non 32-bit signed integer value: " + s
	case ferr != nil && !errors.Is(ferr, strconv.ErrRange):
		return nil // not a number at all: validation says so
	case math.IsInf(f, 0) || (f == math.Trunc(f) && (f < math.MinInt32 || f > math.MaxInt32)):
		reason = "Int cannot represent non 32-bit signed integer value: " + s
	case f != math.Trunc(f):
		reason = "Int cannot represent non-integer value: " + s
	default:
		reason = fmt.Sprintf("an Int is written as an integer (%d), not %s", int64(f), s)
	}
	return &gqlerror.Error{
		Message:    path + ": " + reason,
		Extensions: map[string]any{"code": string(apperr.InvalidInput), "argument": path},
	}
}
