package tosca

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// constraint is one TOSCA constraint clause.
type constraint struct {
	op  string
	arg *yaml.Node
	loc at
}

var constraintOps = []string{"equal", "greater_than", "greater_or_equal", "less_than", "less_or_equal",
	"in_range", "valid_values", "length", "min_length", "max_length", "pattern"}

func parseConstraints(n *yaml.Node, a at) ([]constraint, *Error) {
	its, err := items(n, a)
	if err != nil {
		return nil, err
	}
	var out []constraint
	for i, it := range its {
		ia := a.index(i, it.Line)
		ps, err := pairs(it, ia)
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, ia.errorf("a constraint is a mapping with one operator, got %d keys", len(ps))
		}
		p := ps[0]
		ca := ia.child(p.key, p.k.Line)
		if !slices.Contains(constraintOps, p.key) {
			return nil, ca.errorf("unknown constraint operator (use one of %s)", strings.Join(constraintOps, ", "))
		}
		switch p.key {
		case "in_range":
			rs, err := items(p.v, ca)
			if err != nil {
				return nil, err
			}
			if len(rs) != 2 {
				return nil, ca.errorf("in_range takes [min, max], got %d values", len(rs))
			}
		case "valid_values":
			if _, err := items(p.v, ca); err != nil {
				return nil, err
			}
		case "pattern":
			s, err := scalar(p.v, ca)
			if err != nil {
				return nil, err
			}
			if _, rerr := regexp.Compile(s); rerr != nil {
				return nil, ca.errorf("bad pattern: %v", rerr)
			}
		}
		out = append(out, constraint{op: p.key, arg: p.v, loc: ca})
	}
	return out, nil
}

// comparable is a value reduced for comparisons: a number (scalar units in
// their base unit) or a string.
type comparable struct {
	num   float64
	str   string
	isNum bool
}

// reduce turns a scalar of type typ into a comparable.
func reduce(typ string, n *yaml.Node) (comparable, error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return comparable{}, fmt.Errorf("%s is not a single value", describe(n))
	}
	switch {
	case isScalarUnit(typ):
		s, err := parseScalarUnit(typ, n.Value)
		if err != nil {
			return comparable{}, err
		}
		return comparable{num: s.base, isNum: true}, nil
	case typ == "integer" || typ == "float":
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil {
			return comparable{}, fmt.Errorf("%s is not a number", describe(n))
		}
		return comparable{num: f, isNum: true}, nil
	}
	return comparable{str: n.Value}, nil
}

func (c comparable) cmp(o comparable) int {
	if c.isNum && o.isNum {
		switch {
		case c.num < o.num:
			return -1
		case c.num > o.num:
			return 1
		}
		return 0
	}
	return strings.Compare(c.str, o.str)
}

// check tests the value v (of type typ) against the constraint.
func (c constraint) check(typ string, v *yaml.Node, a at) *Error {
	val, err := reduce(typ, v)
	if err != nil && c.op != "length" && c.op != "min_length" && c.op != "max_length" {
		return a.errorf("%v", err)
	}
	bound := func(n *yaml.Node) (comparable, *Error) {
		b, err := reduce(typ, n)
		if err != nil {
			return comparable{}, c.loc.errorf("bad bound: %v", err)
		}
		return b, nil
	}
	text := describe(v)
	// where says which constraint failed, when the user wrote it.
	where := ""
	switch {
	case strings.HasSuffix(c.loc.file, "(built in)"):
	case c.loc.file == a.file:
		where = fmt.Sprintf(" (constraint at line %d)", c.loc.line)
	default:
		where = fmt.Sprintf(" (constraint at %s:%d)", c.loc.file, c.loc.line)
	}
	switch c.op {
	case "equal", "greater_than", "greater_or_equal", "less_than", "less_or_equal":
		b, berr := bound(c.arg)
		if berr != nil {
			return berr
		}
		r := val.cmp(b)
		ok := map[string]bool{"equal": r == 0, "greater_than": r > 0, "greater_or_equal": r >= 0, "less_than": r < 0, "less_or_equal": r <= 0}[c.op]
		if !ok {
			return a.errorf("%s violates the constraint %s %s%s", text, c.op, deref(c.arg).Value, where)
		}
	case "in_range":
		rs := deref(c.arg).Content
		lo, berr := bound(rs[0])
		if berr != nil {
			return berr
		}
		if val.cmp(lo) < 0 {
			return a.errorf("%s is outside the range [%s, %s]%s", text, deref(rs[0]).Value, deref(rs[1]).Value, where)
		}
		if deref(rs[1]).Value != "UNBOUNDED" {
			hi, berr := bound(rs[1])
			if berr != nil {
				return berr
			}
			if val.cmp(hi) > 0 {
				return a.errorf("%s is outside the range [%s, %s]%s", text, deref(rs[0]).Value, deref(rs[1]).Value, where)
			}
		}
	case "valid_values":
		var vals []string
		for _, o := range deref(c.arg).Content {
			b, berr := bound(o)
			if berr != nil {
				return berr
			}
			if val.cmp(b) == 0 {
				return nil
			}
			vals = append(vals, deref(o).Value)
		}
		return a.errorf("%s is not one of the valid values %s%s", text, strings.Join(vals, ", "), where)
	case "length", "min_length", "max_length":
		want, cerr := strconv.Atoi(deref(c.arg).Value)
		if cerr != nil {
			return c.loc.errorf("must be an integer")
		}
		n := deref(v)
		l := len(n.Content)
		if n.Kind == yaml.MappingNode {
			l /= 2
		}
		if n.Kind == yaml.ScalarNode {
			l = len([]rune(n.Value))
		}
		ok := map[string]bool{"length": l == want, "min_length": l >= want, "max_length": l <= want}[c.op]
		if !ok {
			return a.errorf("%s has length %d, violating %s %d%s", text, l, c.op, want, where)
		}
	case "pattern":
		re := regexp.MustCompile("^(?:" + deref(c.arg).Value + ")$") // compiled once at parse time already
		if !re.MatchString(deref(v).Value) {
			return a.errorf("%s does not match the pattern %s%s", text, quote(deref(c.arg).Value), where)
		}
	}
	return nil
}

// functionNames are the TOSCA intrinsic functions; ECRAE evaluates the
// first four and rejects the rest with a clear error.
var functionNames = []string{"get_input", "get_property", "get_attribute", "concat",
	"get_operation_output", "get_nodes_of_type", "get_artifact", "token", "join"}

// function reports whether n is an intrinsic function call.
func function(n *yaml.Node) (name string, arg *yaml.Node, ok bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return "", nil, false
	}
	k := deref(n.Content[0])
	if k == nil || !slices.Contains(functionNames, k.Value) {
		return "", nil, false
	}
	return k.Value, deref(n.Content[1]), true
}

// containsFunction reports whether a value holds a function anywhere.
func containsFunction(n *yaml.Node) bool {
	n = deref(n)
	if n == nil {
		return false
	}
	if _, _, ok := function(n); ok {
		return true
	}
	for _, c := range n.Content {
		if containsFunction(c) {
			return true
		}
	}
	return false
}

var versionRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}(\.[A-Za-z0-9_]+)?(-[0-9]+)?$`)

// checkValue checks a literal value against a TOSCA type. Functions are
// checked elsewhere, where the template is known.
func (r *registry) checkValue(typ, entry string, v *yaml.Node, a at) *Error {
	v = deref(v)
	if _, _, ok := function(v); ok {
		return nil
	}
	if isNull(v) {
		return a.errorf("has no value (null)")
	}
	tag := v.ShortTag()
	scalarOf := func(want string, okTags ...string) *Error {
		if v.Kind != yaml.ScalarNode || !slices.Contains(okTags, tag) {
			hint := ""
			if want == "a string" && v.Kind == yaml.ScalarNode {
				hint = " (quote it)"
			}
			return a.errorf("must be %s, got %s%s", want, describe(v), hint)
		}
		return nil
	}
	switch typ {
	case "string":
		return scalarOf("a string", "!!str")
	case "integer":
		return scalarOf("an integer", "!!int")
	case "float":
		return scalarOf("a number", "!!float", "!!int")
	case "boolean":
		return scalarOf("true or false", "!!bool")
	case "timestamp":
		return scalarOf("a timestamp", "!!timestamp", "!!str")
	case "null":
		return nil
	case "version":
		if err := scalarOf("a version", "!!str", "!!float", "!!int"); err != nil {
			return err
		}
		if !versionRE.MatchString(v.Value) {
			return a.errorf("bad version %s: expected major.minor[.fix[.qualifier[-build]]]", quote(v.Value))
		}
		return nil
	case "range":
		its, err := items(v, a)
		if err != nil {
			return err
		}
		if len(its) != 2 {
			return a.errorf("a range is [min, max], got %d values", len(its))
		}
		for i, it := range its {
			if it.ShortTag() != "!!int" && !(i == 1 && it.Value == "UNBOUNDED") {
				return a.index(i, it.Line).errorf("must be an integer, got %s", describe(it))
			}
		}
		return nil
	case "list":
		its, err := items(v, a)
		if err != nil {
			return err
		}
		if entry != "" {
			for i, it := range its {
				if err := r.checkValue(entry, "", it, a.index(i, it.Line)); err != nil {
					return err
				}
			}
		}
		return nil
	case "map":
		ps, err := pairs(v, a)
		if err != nil {
			return err
		}
		if entry != "" {
			for _, p := range ps {
				if err := r.checkValue(entry, "", p.v, a.child(p.key, p.k.Line)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if isScalarUnit(typ) {
		if err := scalarOf("a "+typ+" such as '2 "+exampleUnit(typ)+"'", "!!str"); err != nil {
			if v.Kind == yaml.ScalarNode && (tag == "!!int" || tag == "!!float") {
				return a.errorf("bad %s %s: no unit (use one of %s)", typ, quote(v.Value), unitNames(units(typ)))
			}
			return err
		}
		if _, err := parseScalarUnit(typ, v.Value); err != nil {
			return a.errorf("%v", err)
		}
		return nil
	}
	dt := r.get(kindData, typ)
	if dt == nil {
		return a.errorf("%s", r.unknown(kindData, typ))
	}
	if dt.primitive != "" {
		if err := r.checkValue(dt.primitive, dt.entrySchema, v, a); err != nil {
			return err
		}
		for _, t := range dt.chain() {
			for _, c := range t.constraints {
				if err := c.check(dt.primitive, v, a); err != nil {
					return err
				}
			}
		}
		return nil
	}
	ps, err := pairs(v, a)
	if err != nil {
		return err
	}
	return r.checkProps(dt, ps, a, "data type "+dt.name)
}

// checkProps checks property values against a type's definitions: every
// key defined, every required property without a default present, each
// value of its type and within its constraints.
func (r *registry) checkProps(t *typeDef, ps []pair, a at, what string) *Error {
	defs := t.allProps()
	for _, p := range ps {
		pa := a.child(p.key, p.k.Line)
		var d *propDef
		for _, x := range defs {
			if x.name == p.key {
				d = x
			}
		}
		if d == nil {
			var names []string
			for _, x := range defs {
				names = append(names, x.name)
			}
			known := "it defines none"
			if len(names) > 0 {
				known = "known: " + strings.Join(names, ", ")
			}
			return pa.errorf("unknown property of %s (%s)", what, known)
		}
		if err := r.checkDefined(d, p.v, pa); err != nil {
			return err
		}
	}
	for _, d := range defs {
		if !d.required || d.def != nil {
			continue
		}
		found := false
		for _, p := range ps {
			found = found || p.key == d.name
		}
		if !found {
			return a.errorf("missing required property %s of %s", quote(d.name), what)
		}
	}
	return nil
}

// checkDefined checks one value against its definition.
func (r *registry) checkDefined(d *propDef, v *yaml.Node, a at) *Error {
	if err := r.checkValue(d.typ, d.entrySchema, v, a); err != nil {
		return err
	}
	if containsFunction(v) {
		return nil
	}
	for _, c := range d.constraints {
		if err := c.check(d.typ, v, a); err != nil {
			return err
		}
	}
	return nil
}
