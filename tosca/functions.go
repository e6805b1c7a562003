package tosca

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// checkFunctions checks every intrinsic function of the template: inputs
// exist, get_property/get_attribute name existing nodes, properties and
// attributes, and only supported functions are used.
func (t *Template) checkFunctions() *Error {
	for _, nd := range t.Nodes {
		for _, p := range nd.props {
			if err := t.checkFuncs(p.v, nd.loc.child("properties", 0).child(p.key, p.k.Line), nd); err != nil {
				return err
			}
		}
		for _, c := range nd.typ.allCaps() {
			for _, p := range nd.caps[c.name] {
				if err := t.checkFuncs(p.v, nd.capLoc[c.name].child("properties", 0).child(p.key, p.k.Line), nd); err != nil {
					return err
				}
			}
		}
		for _, op := range nd.ops {
			for _, in := range op.Inputs {
				if err := t.checkFuncs(in.v, in.loc, nd); err != nil {
					return err
				}
			}
		}
	}
	for _, o := range t.Outputs {
		if err := t.checkFuncs(o.value, o.loc, nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *Template) checkFuncs(v *yaml.Node, a at, self *Node) *Error {
	v = deref(v)
	if v == nil {
		return nil
	}
	name, arg, ok := function(v)
	if !ok {
		for i, c := range v.Content {
			if v.Kind == yaml.MappingNode && i%2 == 0 {
				continue
			}
			if err := t.checkFuncs(c, a, self); err != nil {
				return err
			}
		}
		return nil
	}
	fa := a.child(name, v.Content[0].Line)
	switch name {
	case "get_input":
		_, err := t.inputOf(arg, fa)
		return err
	case "get_property", "get_attribute":
		_, _, err := t.ref(name, arg, fa, self)
		return err
	case "concat":
		its, err := items(arg, fa)
		if err != nil {
			return err
		}
		for i, it := range its {
			if err := t.checkFuncs(it, fa.index(i, it.Line), self); err != nil {
				return err
			}
		}
		return nil
	}
	return fa.errorf("function %s is not supported by ECRAE (use get_input, get_property, get_attribute or concat)", short(name))
}

// inputOf reads get_input's argument, "name" or [name].
func (t *Template) inputOf(arg *yaml.Node, a at) (*Input, *Error) {
	arg = deref(arg)
	if arg != nil && arg.Kind == yaml.SequenceNode && len(arg.Content) == 1 {
		arg = deref(arg.Content[0])
	}
	name, err := scalar(arg, a)
	if err != nil {
		return nil, err
	}
	if in := t.input(name); in != nil {
		return in, nil
	}
	if len(t.Inputs) == 0 {
		return nil, a.errorf("no input named %s (the template has no inputs)", quote(name))
	}
	var names []string
	for _, in := range t.Inputs {
		names = append(names, in.Name)
	}
	return nil, a.errorf("no input named %s (inputs: %s)", quote(name), strings.Join(names, ", "))
}

// ref resolves the arguments of get_property or get_attribute: the node
// and the remaining path (property or attribute, or capability then
// property or attribute).
func (t *Template) ref(fn string, arg *yaml.Node, a at, self *Node) (*Node, []string, *Error) {
	its, err := items(arg, a)
	if err != nil {
		return nil, nil, err
	}
	if len(its) < 2 {
		return nil, nil, a.errorf("takes [node, name] or [node, capability, name], got %d arguments", len(its))
	}
	args := make([]string, len(its))
	for i, it := range its {
		if args[i], err = scalar(it, a.index(i, it.Line)); err != nil {
			return nil, nil, err
		}
	}
	var nd *Node
	switch args[0] {
	case "SELF", "HOST":
		if self == nil {
			return nil, nil, a.index(0, its[0].Line).errorf("%s is only meaningful inside a node template", args[0])
		}
		nd = self
		if args[0] == "HOST" {
			if nd = self.host(); nd == nil {
				return nil, nil, a.index(0, its[0].Line).errorf("node %s has no host", quote(self.Name))
			}
		}
	case "SOURCE", "TARGET":
		return nil, nil, a.index(0, its[0].Line).errorf("%s is meaningful in relationship templates only, which ECRAE does not read", args[0])
	default:
		if nd = t.byName[args[0]]; nd == nil {
			return nil, nil, a.index(0, its[0].Line).errorf("no node template named %s", quote(args[0]))
		}
	}
	isProp := fn == "get_property"
	has := func(typ *typeDef, name string) bool {
		if typ == nil {
			return false
		}
		if typ.prop(name) != nil {
			return true
		}
		return !isProp && typ.attr(name) != nil
	}
	what := "property"
	if !isProp {
		what = "attribute"
	}
	if has(nd.typ, args[1]) {
		return nd, args[1:], nil
	}
	if c := nd.typ.capability(args[1]); c != nil {
		if len(args) < 3 {
			return nil, nil, a.errorf("names capability %s of %s; add the %s to read", quote(args[1]), quote(nd.Name), what)
		}
		if !has(t.reg.get(kindCapability, c.typ), args[2]) {
			return nil, nil, a.index(2, its[2].Line).errorf("capability %s of %s (%s) has no %s %s", quote(args[1]), quote(nd.Name), c.typ, what, quote(args[2]))
		}
		return nd, args[1:], nil
	}
	return nil, nil, a.index(1, its[1].Line).errorf("node %s (%s) has no %s or capability %s", quote(nd.Name), nd.TypeName, what, quote(args[1]))
}

// eval evaluates a value for resolution, when ECRAE needs it before
// deployment: inputs and properties are read, attributes are unknown.
func (t *Template) eval(v *yaml.Node, a at, self *Node, depth int) (*yaml.Node, *Error) {
	v = deref(v)
	name, arg, ok := function(v)
	if !ok {
		return v, nil
	}
	if depth > 50 {
		return nil, a.errorf("get_property refers to itself")
	}
	fa := a.child(name, v.Content[0].Line)
	switch name {
	case "get_input":
		in, err := t.inputOf(arg, fa)
		if err != nil {
			return nil, err
		}
		val := in.valueNode()
		if val == nil {
			return nil, fa.errorf("input %s has no value and no default (pass --input %s=VALUE)", quote(in.Name), in.Name)
		}
		return val, nil
	case "get_property":
		nd, path, err := t.ref(name, arg, fa, self)
		if err != nil {
			return nil, err
		}
		pv, pa, err := t.propertyValue(nd, path, fa)
		if err != nil {
			return nil, err
		}
		return t.eval(pv, pa, nd, depth+1)
	case "concat":
		its, err := items(arg, fa)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for i, it := range its {
			x, err := t.eval(it, fa.index(i, it.Line), self, depth+1)
			if err != nil {
				return nil, err
			}
			s, err := scalar(x, fa.index(i, it.Line))
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
		}
		return strNode(b.String()), nil
	}
	return nil, fa.errorf("%s is known only once the application is deployed", short(name))
}

// propertyValue finds a property (of the node, or of one of its
// capabilities) as set in the template or defaulted by its type.
func (t *Template) propertyValue(nd *Node, path []string, a at) (*yaml.Node, at, *Error) {
	if v, pa, ok := nd.prop(path[0]); ok {
		return v, pa, nil
	}
	if d := nd.typ.prop(path[0]); d != nil {
		if d.def != nil {
			return d.def, d.loc, nil
		}
		return nil, a, a.errorf("property %s of %s is not set and has no default", quote(path[0]), quote(nd.Name))
	}
	c := nd.typ.capability(path[0])
	if v, pa, ok := nd.capProp(path[0], path[1]); ok {
		return v, pa, nil
	}
	if ct := t.reg.get(kindCapability, c.typ); ct != nil {
		if d := ct.prop(path[1]); d != nil && d.def != nil {
			return d.def, d.loc, nil
		}
	}
	return nil, a, a.errorf("property %s of capability %s of %s is not set and has no default", quote(path[1]), quote(path[0]), quote(nd.Name))
}

// evalString evaluates a value that must be a plain string.
func (t *Template) evalString(v *yaml.Node, a at, self *Node) (string, *Error) {
	x, err := t.eval(v, a, self, 0)
	if err != nil {
		return "", err
	}
	return scalar(x, a)
}
