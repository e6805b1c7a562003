package tosca

import (
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed TOSCA service template: its own YAML (kept for the
// rewrite) and the model built from it.
type Template struct {
	// File is the main file as given to Load or Parse.
	File string
	// Version is its tosca_definitions_version.
	Version     string
	Description string

	Inputs  []*Input
	Nodes   []*Node
	Outputs []*Output

	main     *sourceFile
	reg      *registry
	byName   map[string]*Node
	readFile func(string) ([]byte, error)
	opts     Options
	// given are the raw --input values by name.
	given map[string]string
}

// Input is a topology input.
type Input struct {
	Name string
	def  *propDef
	// value is the --input value (typed), or nil.
	value *yaml.Node
}

// Node is a node template.
type Node struct {
	Name     string
	TypeName string
	typ      *typeDef
	loc      at
	val      *yaml.Node // the template's mapping, rewritten by resolution

	props        []pair
	caps         map[string][]pair
	capLoc       map[string]at
	Requirements []*Requirement
	ops          []*Operation // every interface's operations, merged with the type's
	metadata     map[string]string
	artifacts    map[string]artifact
}

type artifact struct {
	file string
	dir  string // of the file that names it
	loc  at
}

// Requirement is one resolved requirement of a node template.
type Requirement struct {
	Name         string
	Target       *Node
	Relationship *typeDef
	loc          at
}

// Operation is one interface operation with its implementation.
type Operation struct {
	Interface string
	Name      string
	// Impl is the implementation artifact as written: a path relative to
	// dir, or an artifact name of the node.
	Impl   string
	Deps   []string
	Inputs []namedValue
	dir    string
	loc    at
}

type namedValue struct {
	name string
	v    *yaml.Node
	loc  at
}

// Output is a topology output.
type Output struct {
	Name        string
	Description string
	value       *yaml.Node
	loc         at
}

// Node returns the node template called name, or nil.
func (t *Template) Node(name string) *Node { return t.byName[name] }

func (n *Node) is(typeName string) bool { return n.typ.derivesFrom(typeName) }

// IsCompute reports whether the node is (derived from) tosca.nodes.Compute.
func (n *Node) IsCompute() bool { return n.is(typeCompute) }

// IsTagged reports whether the node is an ecrae.nodes.Compute to resolve.
func (n *Node) IsTagged() bool { return n.is(TypeTaggedCompute) }

func (n *Node) prop(name string) (*yaml.Node, at, bool) {
	for _, p := range n.props {
		if p.key == name {
			return p.v, n.loc.child("properties", 0).child(name, p.k.Line), true
		}
	}
	return nil, at{}, false
}

func (n *Node) capProp(capName, name string) (*yaml.Node, at, bool) {
	for _, p := range n.caps[capName] {
		if p.key == name {
			return p.v, n.capLoc[capName].child("properties", 0).child(name, p.k.Line), true
		}
	}
	return nil, at{}, false
}

// host follows the node's HostedOn requirement: nil when it has none.
func (n *Node) host() *Node {
	for _, r := range n.Requirements {
		if r.Relationship.derivesFrom(typeHostedOn) {
			return r.Target
		}
	}
	return nil
}

// compute is the compute node the node runs on (itself for a compute), or
// nil. Cycles are rejected before this is used, the bound is a guard.
func (n *Node) compute() *Node {
	for x, i := n, 0; x != nil && i <= 1000; x, i = x.host(), i+1 {
		if x.IsCompute() {
			return x
		}
	}
	return nil
}

var nodeTemplateKeys = []string{"type", "description", "metadata", "directives", "properties", "attributes",
	"requirements", "capabilities", "interfaces", "artifacts", "node_filter"}

var topologyKeys = []string{"description", "inputs", "node_templates", "relationship_templates", "outputs",
	"groups", "policies", "substitution_mappings", "workflows"}

func newTemplate(l *loader, main *sourceFile, top []pair, opts Options) (*Template, *Error) {
	t := &Template{File: main.name, Version: main.version, main: main, reg: l.reg, byName: map[string]*Node{},
		readFile: l.read, opts: opts, given: opts.Inputs}
	var topo *pair
	for i := range top {
		switch top[i].key {
		case "description":
			t.Description, _ = scalar(top[i].v, at{})
		case "topology_template":
			topo = &top[i]
		}
	}
	if topo == nil {
		return nil, at{file: main.name, line: main.root.Line}.errorf("missing topology_template: a service template needs node templates")
	}
	a := at{file: main.name, line: topo.k.Line}
	tps, err := pairs(topo.v, a.child("topology_template", topo.k.Line))
	if err != nil {
		return nil, err
	}
	if err := checkKeys(tps, at{file: main.name, line: topo.k.Line, path: "topology_template"}, "topology_template", topologyKeys...); err != nil {
		return nil, err
	}
	sec := map[string]pair{}
	for _, p := range tps {
		sec[p.key] = p
	}
	if p, ok := sec["description"]; ok && t.Description == "" {
		t.Description, _ = scalar(p.v, at{})
	}
	if p, ok := sec["inputs"]; ok {
		if err := t.parseInputs(p.v, a.child("inputs", p.k.Line)); err != nil {
			return nil, err
		}
	}
	rels := map[string]string{}
	if p, ok := sec["relationship_templates"]; ok {
		if rels, err = t.parseRelTemplates(p.v, a.child("relationship_templates", p.k.Line)); err != nil {
			return nil, err
		}
	}
	p, ok := sec["node_templates"]
	if !ok {
		return nil, a.errorf("topology_template needs node_templates")
	}
	if err := t.parseNodes(p.v, a.child("node_templates", p.k.Line), rels); err != nil {
		return nil, err
	}
	if p, ok := sec["outputs"]; ok {
		if err := t.parseOutputs(p.v, a.child("outputs", p.k.Line)); err != nil {
			return nil, err
		}
	}
	if err := t.checkFunctions(); err != nil {
		return nil, err
	}
	if _, err := t.order(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Template) input(name string) *Input {
	for _, in := range t.Inputs {
		if in.Name == name {
			return in
		}
	}
	return nil
}

func (t *Template) parseInputs(n *yaml.Node, a at) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	for _, p := range ps {
		ia := a.child(p.key, p.k.Line)
		d, err := parsePropDef(p.key, p.v, ia, "input")
		if err != nil {
			return err
		}
		if err := t.reg.checkValueType(d.typ, ia.child("type", 0)); err != nil {
			return err
		}
		if d.def != nil {
			if err := t.reg.checkDefined(d, d.def, ia.child("default", 0)); err != nil {
				return err
			}
		}
		in := &Input{Name: p.key, def: d}
		if s, ok := t.given[p.key]; ok {
			v, err := inputValue(d.typ, s)
			if err != nil {
				return ia.errorf("value %s from --input: %v", quote(s), err)
			}
			if err := t.reg.checkDefined(d, v, ia); err != nil {
				err.Msg = "value from --input: " + err.Msg
				return err
			}
			in.value = v
		}
		t.Inputs = append(t.Inputs, in)
	}
	return nil
}

// inputValue reads a command-line value: text for strings and the like,
// YAML for numbers, booleans, lists and maps.
func inputValue(typ, s string) (*yaml.Node, error) {
	switch {
	case typ == "string" || typ == "version" || typ == "timestamp" || isScalarUnit(typ):
		return strNode(s), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return doc.Content[0], nil
}

// valueNode is an input's value: the --input one, else its default; nil
// when it has neither.
func (in *Input) valueNode() *yaml.Node {
	if in.value != nil {
		return in.value
	}
	return in.def.def
}

func (t *Template) parseRelTemplates(n *yaml.Node, a at) (map[string]string, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range ps {
		ra := a.child(p.key, p.k.Line)
		tn := mapGet(p.v, "type")
		if tn == nil {
			return nil, ra.errorf("needs a type")
		}
		typ, err := scalar(tn, ra.child("type", tn.Line))
		if err != nil {
			return nil, err
		}
		if t.reg.get(kindRelationship, typ) == nil {
			return nil, ra.child("type", tn.Line).errorf("%s", t.reg.unknown(kindRelationship, typ))
		}
		out[p.key] = typ
	}
	return out, nil
}

func (t *Template) parseNodes(n *yaml.Node, a at, rels map[string]string) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return a.errorf("no node templates")
	}
	reqNodes := map[*Node]*yaml.Node{}
	for _, p := range ps {
		na := a.child(p.key, p.k.Line)
		nd, req, err := t.parseNode(p.key, p.v, na)
		if err != nil {
			return err
		}
		t.Nodes = append(t.Nodes, nd)
		t.byName[nd.Name] = nd
		if req != nil {
			reqNodes[nd] = req
		}
	}
	// Requirements name other templates: read them once all are known.
	for _, nd := range t.Nodes {
		if err := t.parseRequirements(nd, reqNodes[nd], rels); err != nil {
			return err
		}
	}
	return nil
}

func (t *Template) parseNode(name string, n *yaml.Node, a at) (*Node, *yaml.Node, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeys(ps, a, "a node template", nodeTemplateKeys...); err != nil {
		return nil, nil, err
	}
	nd := &Node{Name: name, loc: a, val: deref(n), caps: map[string][]pair{}, capLoc: map[string]at{},
		metadata: map[string]string{}, artifacts: map[string]artifact{}}
	var reqs *yaml.Node
	tn := mapGet(n, "type")
	if tn == nil {
		return nil, nil, a.errorf("needs a type")
	}
	if nd.TypeName, err = scalar(tn, a.child("type", tn.Line)); err != nil {
		return nil, nil, err
	}
	if nd.typ = t.reg.get(kindNode, nd.TypeName); nd.typ == nil {
		return nil, nil, a.child("type", tn.Line).errorf("%s", t.reg.unknown(kindNode, nd.TypeName))
	}
	what := "type " + nd.TypeName
	var props []pair
	var propsAt at = a.child("properties", 0)
	for _, p := range ps {
		pa := a.child(p.key, p.k.Line)
		switch p.key {
		case "properties":
			if props, err = pairs(p.v, pa); err != nil {
				return nil, nil, err
			}
			propsAt = pa
		case "metadata":
			mps, err := pairs(p.v, pa)
			if err != nil {
				return nil, nil, err
			}
			for _, mp := range mps {
				if nd.metadata[mp.key], err = scalar(mp.v, pa.child(mp.key, mp.k.Line)); err != nil {
					return nil, nil, err
				}
			}
		case "capabilities":
			if err := t.parseNodeCaps(nd, p.v, pa); err != nil {
				return nil, nil, err
			}
		case "requirements":
			reqs = p.v
		case "artifacts":
			if err := parseArtifacts(nd, p.v, pa); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := t.reg.checkProps(nd.typ, props, propsAt, what); err != nil {
		return nil, nil, err
	}
	nd.props = props
	// Operations: the type's (and its ancestors'), then the template's,
	// which replace them by name.
	for _, f := range nd.typ.allIfaces() {
		nd.ops = append(nd.ops, f.ops...)
	}
	for _, p := range ps {
		if p.key == "interfaces" {
			if err := t.parseNodeIfaces(nd, p.v, a.child(p.key, p.k.Line)); err != nil {
				return nil, nil, err
			}
		}
	}
	if reqs == nil {
		reqs = &yaml.Node{Kind: yaml.SequenceNode, Line: a.line}
	}
	return nd, reqs, nil
}

func parseArtifacts(nd *Node, n *yaml.Node, a at) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	for _, p := range ps {
		aa := a.child(p.key, p.k.Line)
		f := p.v
		if deref(p.v).Kind == yaml.MappingNode {
			if f = mapGet(p.v, "file"); f == nil {
				return aa.errorf("needs a file")
			}
		}
		s, err := scalar(f, aa)
		if err != nil {
			return err
		}
		nd.artifacts[p.key] = artifact{file: s, dir: filepath.Dir(a.file), loc: aa}
	}
	return nil
}

func (t *Template) parseNodeCaps(nd *Node, n *yaml.Node, a at) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	for _, p := range ps {
		ca := a.child(p.key, p.k.Line)
		def := nd.typ.capability(p.key)
		if def == nil {
			var names []string
			for _, c := range nd.typ.allCaps() {
				names = append(names, c.name)
			}
			return ca.errorf("unknown capability of type %s (known: %s)", nd.TypeName, strings.Join(names, ", "))
		}
		cps, err := pairs(p.v, ca)
		if err != nil {
			return err
		}
		if err := checkKeys(cps, ca, "a capability assignment", "properties", "attributes"); err != nil {
			return err
		}
		var props []pair
		propsAt := ca.child("properties", 0)
		for _, cp := range cps {
			if cp.key == "properties" {
				propsAt = ca.child("properties", cp.k.Line)
				if props, err = pairs(cp.v, propsAt); err != nil {
					return err
				}
			}
		}
		ct := t.reg.get(kindCapability, def.typ)
		if err := t.reg.checkProps(ct, props, propsAt, "capability type "+def.typ); err != nil {
			return err
		}
		nd.caps[p.key] = props
		nd.capLoc[p.key] = ca
	}
	return nil
}

func (t *Template) parseNodeIfaces(nd *Node, n *yaml.Node, a at) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	defs := nd.typ.allIfaces()
	for _, p := range ps {
		ia := a.child(p.key, p.k.Line)
		var def *ifaceDef
		for _, d := range defs {
			// The interface may be named by its name or, as older TOSCA
			// examples do, by its type.
			if d.name == p.key || d.typ == p.key {
				def = d
			}
		}
		if def == nil {
			var names []string
			for _, d := range defs {
				names = append(names, d.name)
			}
			return ia.errorf("unknown interface of type %s (known: %s)", nd.TypeName, strings.Join(names, ", "))
		}
		var allowed []string
		if it := t.reg.get(kindInterface, def.typ); it != nil {
			allowed = it.interfaceOps()
		}
		ips, err := pairs(p.v, ia)
		if err != nil {
			return err
		}
		var shared []namedValue
		for _, ip := range ips {
			if ip.key == "inputs" {
				if shared, err = parseOpInputs(ip.v, ia.child("inputs", ip.k.Line)); err != nil {
					return err
				}
			}
		}
		for _, ip := range ips {
			if ip.key == "inputs" || ip.key == "type" || ip.key == "description" {
				continue
			}
			oa := ia.child(ip.key, ip.k.Line)
			if allowed != nil && !slices.Contains(allowed, ip.key) {
				return oa.errorf("unknown operation of interface %s (known: %s)", def.name, strings.Join(allowed, ", "))
			}
			op, err := parseOperation(def.name, ip.key, ip.v, oa, shared)
			if err != nil {
				return err
			}
			nd.ops = replaceOp(nd.ops, op)
		}
	}
	return nil
}

// parseOperation reads "create: scripts/x.sh" or the long form with
// implementation ({primary, dependencies} or a path) and inputs.
func parseOperation(iface, name string, n *yaml.Node, a at, shared []namedValue) (*Operation, *Error) {
	op := &Operation{Interface: iface, Name: name, dir: filepath.Dir(a.file), loc: a, Inputs: slices.Clone(shared)}
	n = deref(n)
	if isNull(n) {
		return op, nil
	}
	if n.Kind == yaml.ScalarNode {
		s, err := scalar(n, a)
		op.Impl = s
		return op, err
	}
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(ps, a, "an operation", "implementation", "inputs", "description", "outputs", "timeout"); err != nil {
		return nil, err
	}
	for _, p := range ps {
		pa := a.child(p.key, p.k.Line)
		switch p.key {
		case "implementation":
			if deref(p.v).Kind == yaml.ScalarNode {
				if op.Impl, err = scalar(p.v, pa); err != nil {
					return nil, err
				}
				continue
			}
			ips, err := pairs(p.v, pa)
			if err != nil {
				return nil, err
			}
			if err := checkKeys(ips, pa, "an implementation", "primary", "dependencies", "timeout", "operation_host"); err != nil {
				return nil, err
			}
			for _, ip := range ips {
				ipa := pa.child(ip.key, ip.k.Line)
				switch ip.key {
				case "primary":
					if op.Impl, err = scalar(ip.v, ipa); err != nil {
						return nil, err
					}
				case "dependencies":
					if op.Deps, err = stringList(ip.v, ipa); err != nil {
						return nil, err
					}
				}
			}
		case "inputs":
			in, err := parseOpInputs(p.v, pa)
			if err != nil {
				return nil, err
			}
			for _, v := range in {
				op.Inputs = slices.DeleteFunc(op.Inputs, func(x namedValue) bool { return x.name == v.name })
				op.Inputs = append(op.Inputs, v)
			}
		}
	}
	return op, nil
}

// parseOpInputs reads operation inputs: values, or (in type definitions)
// definitions with a default or value.
func parseOpInputs(n *yaml.Node, a at) ([]namedValue, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	var out []namedValue
	for _, p := range ps {
		v := p.v
		if deref(v).Kind == yaml.MappingNode && mapGet(v, "type") != nil {
			// A definition (as in node_types): its value or default.
			if d := mapGet(v, "value"); d != nil {
				v = d
			} else if d := mapGet(v, "default"); d != nil {
				v = d
			} else {
				continue
			}
		}
		out = append(out, namedValue{name: p.key, v: v, loc: a.child(p.key, p.k.Line)})
	}
	return out, nil
}

// parseRequirements reads a node's requirements, short form "host: srv" or
// long form {node, relationship, capability}, and checks them against the
// type's definitions.
func (t *Template) parseRequirements(nd *Node, n *yaml.Node, rels map[string]string) *Error {
	a := nd.loc.child("requirements", n.Line)
	its, err := items(n, a)
	if err != nil {
		return err
	}
	count := map[string]int{}
	for i, it := range its {
		ia := a.index(i, it.Line)
		ps, err := pairs(it, ia)
		if err != nil {
			return err
		}
		if len(ps) != 1 {
			return ia.errorf("each requirement is a mapping with one key, the requirement's name; got %d keys", len(ps))
		}
		p := ps[0]
		ra := ia.child(p.key, p.k.Line)
		def := nd.typ.requirement(p.key)
		if def == nil {
			var names []string
			for _, d := range nd.typ.allReqs() {
				names = append(names, d.name)
			}
			return ra.errorf("unknown requirement of type %s (known: %s)", nd.TypeName, strings.Join(names, ", "))
		}
		count[p.key]++
		target, relName, capName := "", def.relationship, def.capability
		targetAt := ra
		if deref(p.v).Kind == yaml.ScalarNode {
			if target, err = scalar(p.v, ra); err != nil {
				return err
			}
		} else {
			rps, err := pairs(p.v, ra)
			if err != nil {
				return err
			}
			if err := checkKeys(rps, ra, "a requirement", "node", "relationship", "capability", "node_filter", "occurrences", "description"); err != nil {
				return err
			}
			for _, rp := range rps {
				rpa := ra.child(rp.key, rp.k.Line)
				switch rp.key {
				case "node":
					target, err = scalar(rp.v, rpa)
					targetAt = rpa
				case "capability":
					capName, err = scalar(rp.v, rpa)
				case "relationship":
					if deref(rp.v).Kind == yaml.MappingNode {
						tn := mapGet(rp.v, "type")
						if tn == nil {
							return rpa.errorf("needs a type")
						}
						relName, err = scalar(tn, rpa.child("type", tn.Line))
					} else {
						relName, err = scalar(rp.v, rpa)
						if rt, ok := rels[relName]; ok {
							relName = rt
						}
					}
					if err == nil && t.reg.get(kindRelationship, relName) == nil {
						return rpa.errorf("%s", t.reg.unknown(kindRelationship, relName))
					}
				}
				if err != nil {
					return err
				}
			}
			if target == "" {
				return ra.errorf("needs a node: ECRAE does not select nodes by node_filter")
			}
		}
		tgt := t.byName[target]
		if tgt == nil {
			if t.reg.get(kindNode, target) != nil {
				return targetAt.errorf("%s is a node type; ECRAE needs the name of a node template", quote(target))
			}
			return targetAt.errorf("no node template named %s", quote(target))
		}
		if tgt == nd {
			return targetAt.errorf("a node cannot require itself")
		}
		if def.node != "" && !tgt.is(def.node) {
			return targetAt.errorf("%s is a %s; requirement %s needs a %s", quote(target), tgt.TypeName, p.key, def.node)
		}
		if !offers(t.reg, tgt, capName) {
			return targetAt.errorf("%s (%s) offers no capability %s for requirement %s", quote(target), tgt.TypeName, capName, p.key)
		}
		if relName == "" {
			relName = typeDependsOn
		}
		nd.Requirements = append(nd.Requirements, &Requirement{Name: p.key, Target: tgt, Relationship: t.reg.get(kindRelationship, relName), loc: ra})
	}
	for _, d := range nd.typ.allReqs() {
		c := count[d.name]
		if c < d.min {
			return a.errorf("missing requirement %s (type %s needs at least %d)", quote(d.name), nd.TypeName, d.min)
		}
		if d.max >= 0 && c > d.max {
			return a.errorf("requirement %s given %d times (type %s allows at most %d)", quote(d.name), c, nd.TypeName, d.max)
		}
	}
	return nil
}

// offers reports whether node n has a capability named capName or of a type
// derived from capName.
func offers(r *registry, n *Node, capName string) bool {
	for _, c := range n.typ.allCaps() {
		if c.name == capName {
			return true
		}
		if ct := r.get(kindCapability, c.typ); ct != nil && ct.derivesFrom(capName) {
			return true
		}
	}
	return false
}

func (t *Template) parseOutputs(n *yaml.Node, a at) *Error {
	ps, err := pairs(n, a)
	if err != nil {
		return err
	}
	for _, p := range ps {
		oa := a.child(p.key, p.k.Line)
		ops, err := pairs(p.v, oa)
		if err != nil {
			return err
		}
		if err := checkKeys(ops, oa, "an output", "description", "value", "type", "status"); err != nil {
			return err
		}
		o := &Output{Name: p.key, loc: oa}
		for _, op := range ops {
			switch op.key {
			case "description":
				if o.Description, err = scalar(op.v, oa.child(op.key, op.k.Line)); err != nil {
					return err
				}
			case "value":
				o.value = op.v
				o.loc = oa.child("value", op.k.Line)
			}
		}
		if o.value == nil {
			return oa.errorf("needs a value")
		}
		t.Outputs = append(t.Outputs, o)
	}
	return nil
}
