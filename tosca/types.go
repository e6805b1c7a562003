package tosca

import (
	_ "embed"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// normativeTypes is the subset of the TOSCA normative types ECRAE knows.
//
//go:embed normative.yaml
var normativeTypes string

// ecraeTypes defines ecrae.nodes.Compute: published for other TOSCA tools
// and built into the parser, so templates need not import it.
//
//go:embed ecrae-types.yaml
var ecraeTypes string

// EcraeTypesYAML returns tosca/ecrae-types.yaml, the TOSCA definitions of
// ECRAE's node types.
func EcraeTypesYAML() []byte { return []byte(ecraeTypes) }

// Type names the resolver and the HOT generator rely on.
const (
	TypeTaggedCompute = "ecrae.nodes.Compute"
	typeCompute       = "tosca.nodes.Compute"
	typeNodeRoot      = "tosca.nodes.Root"
	typeHostedOn      = "tosca.relationships.HostedOn"
	typeDependsOn     = "tosca.relationships.DependsOn"
	typeContainer     = "tosca.capabilities.Container"
	typeOS            = "tosca.capabilities.OperatingSystem"
	typeStandard      = "tosca.interfaces.node.lifecycle.Standard"
)

// kind is a TOSCA type section.
type kind string

const (
	kindNode         kind = "node"
	kindCapability   kind = "capability"
	kindRelationship kind = "relationship"
	kindInterface    kind = "interface"
	kindData         kind = "data"
	kindArtifact     kind = "artifact"
	kindGroup        kind = "group"
	kindPolicy       kind = "policy"
)

// sections maps each type section of a TOSCA file to its kind, in the order
// they are registered.
var typeSections = []struct {
	key  string
	kind kind
	root string
}{
	{"data_types", kindData, "tosca.datatypes.Root"},
	{"artifact_types", kindArtifact, "tosca.artifacts.Root"},
	{"capability_types", kindCapability, "tosca.capabilities.Root"},
	{"interface_types", kindInterface, "tosca.interfaces.Root"},
	{"relationship_types", kindRelationship, "tosca.relationships.Root"},
	{"node_types", kindNode, typeNodeRoot},
	{"group_types", kindGroup, "tosca.groups.Root"},
	{"policy_types", kindPolicy, "tosca.policies.Root"},
}

// primitives are the TOSCA built-in value types.
var primitives = []string{"string", "integer", "float", "boolean", "timestamp", "null", "version", "range",
	"list", "map", typeSize, typeFrequency, typeTime, typeBitrate}

func isPrimitive(t string) bool { return slices.Contains(primitives, t) }

// typeDef is one TOSCA type of any kind.
type typeDef struct {
	name       string
	kind       kind
	parentName string
	parent     *typeDef
	// primitive is the built-in type a data type derives from ("" for a
	// complex data type).
	primitive string
	loc       at
	builtin   bool

	props        []*propDef
	attrs        []*propDef
	caps         []*capDef
	reqs         []*reqDef
	ifaces       []*ifaceDef
	ops          []string // interface types: operation names
	validTargets []string // relationship types
	constraints  []constraint
	entrySchema  string
}

// propDef is a property (or attribute, or input) definition.
type propDef struct {
	name        string
	typ         string
	required    bool
	def         *yaml.Node
	constraints []constraint
	entrySchema string
	description string
	loc         at
}

// capDef is a capability definition of a node type.
type capDef struct {
	name  string
	typ   string
	props []pair // property values set by the definition
	loc   at
}

// reqDef is a requirement definition of a node type.
type reqDef struct {
	name         string
	capability   string
	node         string
	relationship string
	min, max     int // max < 0: UNBOUNDED
	loc          at
}

// ifaceDef is an interface of a node type, with operations the type
// implements itself.
type ifaceDef struct {
	name string
	typ  string
	ops  []*Operation
	loc  at
}

// registry holds every type known to one template: the built-in ones and
// those its files define.
type registry struct {
	byKind map[kind]map[string]*typeDef
	order  []*typeDef
}

func newRegistry() *registry {
	r := &registry{byKind: map[kind]map[string]*typeDef{}}
	for _, s := range typeSections {
		r.byKind[s.kind] = map[string]*typeDef{}
	}
	return r
}

func (r *registry) get(k kind, name string) *typeDef { return r.byKind[k][name] }

// unknown explains a type name the registry lacks, suggesting the full name
// when the last segment matches one.
func (r *registry) unknown(k kind, name string) string {
	msg := "unknown " + string(k) + " type " + quote(name)
	last := strings.ToLower(name[strings.LastIndex(name, ".")+1:])
	for _, exact := range []bool{true, false} {
		for _, t := range r.order {
			if t.kind != k || t.name == name {
				continue
			}
			tl := strings.ToLower(t.name[strings.LastIndex(t.name, ".")+1:])
			if exact && tl == last || !exact && strings.HasPrefix(name, t.name[:strings.LastIndex(t.name, ".")+1]) && editDistance(tl, last) <= 2 {
				return msg + " (did you mean " + t.name + "?)"
			}
		}
	}
	if k == kindNode && strings.HasPrefix(name, "tosca.nodes.") {
		var known []string
		for _, t := range r.order {
			if t.kind == kindNode && t.builtin && strings.HasPrefix(t.name, "tosca.") {
				known = append(known, t.name)
			}
		}
		return msg + " (ECRAE knows the normative node types " + strings.Join(known, ", ") + ")"
	}
	return msg
}

// derivesFrom reports whether t is name or derives from it.
func (t *typeDef) derivesFrom(name string) bool {
	for x := t; x != nil; x = x.parent {
		if x.name == name {
			return true
		}
	}
	return false
}

// chain is t and its ancestors, root first.
func (t *typeDef) chain() []*typeDef {
	var c []*typeDef
	for x := t; x != nil; x = x.parent {
		c = append(c, x)
	}
	slices.Reverse(c)
	return c
}

// allProps merges property definitions down the chain: a derived type's
// definition replaces its parent's, keeping the first position.
func (t *typeDef) allProps() []*propDef {
	return mergeDefs(t, func(x *typeDef) []*propDef { return x.props })
}

func (t *typeDef) allAttrs() []*propDef {
	return mergeDefs(t, func(x *typeDef) []*propDef { return x.attrs })
}

func mergeDefs(t *typeDef, get func(*typeDef) []*propDef) []*propDef {
	var out []*propDef
	at := map[string]int{}
	for _, x := range t.chain() {
		for _, p := range get(x) {
			if i, ok := at[p.name]; ok {
				// A redefinition that only changes the default or the
				// constraints keeps the parent's type.
				np := *p
				if np.typ == "" {
					np.typ = out[i].typ
				}
				out[i] = &np
				continue
			}
			at[p.name] = len(out)
			out = append(out, p)
		}
	}
	return out
}

func (t *typeDef) prop(name string) *propDef {
	for _, p := range t.allProps() {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (t *typeDef) attr(name string) *propDef {
	for _, p := range t.allAttrs() {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (t *typeDef) allCaps() []*capDef {
	var out []*capDef
	at := map[string]int{}
	for _, x := range t.chain() {
		for _, c := range x.caps {
			if i, ok := at[c.name]; ok {
				nc := *c
				if nc.typ == "" {
					nc.typ = out[i].typ
				}
				out[i] = &nc
				continue
			}
			at[c.name] = len(out)
			out = append(out, c)
		}
	}
	return out
}

func (t *typeDef) capability(name string) *capDef {
	for _, c := range t.allCaps() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (t *typeDef) allReqs() []*reqDef {
	var out []*reqDef
	at := map[string]int{}
	for _, x := range t.chain() {
		for _, r := range x.reqs {
			if i, ok := at[r.name]; ok {
				out[i] = r
				continue
			}
			at[r.name] = len(out)
			out = append(out, r)
		}
	}
	return out
}

func (t *typeDef) requirement(name string) *reqDef {
	for _, r := range t.allReqs() {
		if r.name == name {
			return r
		}
	}
	return nil
}

// allIfaces merges interfaces down the chain; a derived type's operations
// replace its parent's of the same name.
func (t *typeDef) allIfaces() []*ifaceDef {
	var out []*ifaceDef
	at := map[string]int{}
	for _, x := range t.chain() {
		for _, f := range x.ifaces {
			i, ok := at[f.name]
			if !ok {
				at[f.name] = len(out)
				out = append(out, &ifaceDef{name: f.name, typ: f.typ, ops: slices.Clone(f.ops), loc: f.loc})
				continue
			}
			m := out[i]
			if f.typ != "" {
				m.typ = f.typ
			}
			for _, op := range f.ops {
				m.ops = replaceOp(m.ops, op)
			}
		}
	}
	return out
}

func replaceOp(ops []*Operation, op *Operation) []*Operation {
	for i, o := range ops {
		if o.Name == op.Name {
			ops[i] = op
			return ops
		}
	}
	return append(ops, op)
}

// interfaceOps lists an interface type's operations, inherited ones first.
func (t *typeDef) interfaceOps() []string {
	var out []string
	for _, x := range t.chain() {
		for _, o := range x.ops {
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// parseTypes registers the type sections of one file.
func (l *loader) parseTypes(f *sourceFile, top []pair) *Error {
	for _, s := range typeSections {
		var sec *pair
		for i := range top {
			if top[i].key == s.key {
				sec = &top[i]
			}
		}
		if sec == nil {
			continue
		}
		a := at{file: f.name, line: sec.k.Line, path: s.key}
		ps, err := pairs(sec.v, a)
		if err != nil {
			return err
		}
		for _, p := range ps {
			ta := a.child(p.key, p.k.Line)
			if prev := l.reg.get(s.kind, p.key); prev != nil {
				if prev.builtin && strings.HasPrefix(p.key, "ecrae.") {
					// An import of ecrae-types.yaml: ECRAE knows these types
					// already, and its own definition wins.
					f.ecraeTypes = true
					continue
				}
				if prev.builtin {
					return ta.errorf("redefines the normative %s type %s", s.kind, p.key)
				}
				return ta.errorf("%s type %s is already defined at %s:%d", s.kind, p.key, prev.loc.file, prev.loc.line)
			}
			f.ownTypes = true
			t, err := l.parseType(s.kind, p.key, p.v, ta)
			if err != nil {
				return err
			}
			t.builtin = f.builtin
			if t.parentName == "" && p.key != s.root {
				t.parentName = s.root
			}
			l.reg.byKind[s.kind][p.key] = t
			l.reg.order = append(l.reg.order, t)
		}
	}
	return nil
}

func (l *loader) parseType(k kind, name string, n *yaml.Node, a at) (*typeDef, *Error) {
	t := &typeDef{name: name, kind: k, loc: a}
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	common := []string{"derived_from", "description", "version", "metadata"}
	switch k {
	case kindNode:
		err = checkKeys(ps, a, "a node type", append(common, "properties", "attributes", "requirements", "capabilities", "interfaces", "artifacts")...)
	case kindCapability:
		err = checkKeys(ps, a, "a capability type", append(common, "properties", "attributes", "valid_source_types")...)
	case kindRelationship:
		err = checkKeys(ps, a, "a relationship type", append(common, "properties", "attributes", "interfaces", "valid_target_types")...)
	case kindData:
		err = checkKeys(ps, a, "a data type", append(common, "properties", "constraints", "entry_schema", "key_schema")...)
	}
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		pa := a.child(p.key, p.k.Line)
		switch p.key {
		case "derived_from":
			if t.parentName, err = scalar(p.v, pa); err != nil {
				return nil, err
			}
		case "description", "version", "metadata":
		case "properties":
			if k != kindInterface {
				if t.props, err = parsePropDefs(p.v, pa, "property"); err != nil {
					return nil, err
				}
			}
		case "attributes":
			if k != kindInterface {
				if t.attrs, err = parsePropDefs(p.v, pa, "attribute"); err != nil {
					return nil, err
				}
			}
		case "capabilities":
			if t.caps, err = parseCapDefs(p.v, pa); err != nil {
				return nil, err
			}
		case "requirements":
			if t.reqs, err = parseReqDefs(p.v, pa); err != nil {
				return nil, err
			}
		case "interfaces":
			if t.ifaces, err = l.parseIfaceDefs(p.v, pa); err != nil {
				return nil, err
			}
		case "valid_target_types":
			if k == kindRelationship {
				if t.validTargets, err = stringList(p.v, pa); err != nil {
					return nil, err
				}
			}
		case "constraints":
			if k == kindData {
				if t.constraints, err = parseConstraints(p.v, pa); err != nil {
					return nil, err
				}
			}
		case "entry_schema":
			if k == kindData {
				if t.entrySchema, err = parseEntrySchema(p.v, pa); err != nil {
					return nil, err
				}
			}
		default:
			if k == kindInterface && p.key != "inputs" && p.key != "operations" && p.key != "notifications" {
				t.ops = append(t.ops, p.key)
			}
			if k == kindInterface && p.key == "operations" {
				// TOSCA 1.3 lists operations under "operations".
				ops, err := pairs(p.v, pa)
				if err != nil {
					return nil, err
				}
				for _, o := range ops {
					t.ops = append(t.ops, o.key)
				}
			}
		}
	}
	return t, nil
}

func stringList(n *yaml.Node, a at) ([]string, *Error) {
	its, err := items(n, a)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(its))
	for i, it := range its {
		if out[i], err = scalar(it, a.index(i, it.Line)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parsePropDefs(n *yaml.Node, a at, what string) ([]*propDef, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	var out []*propDef
	for _, p := range ps {
		d, err := parsePropDef(p.key, p.v, a.child(p.key, p.k.Line), what)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// parsePropDef reads a property, attribute or input definition. Properties
// and inputs are required unless they say otherwise (TOSCA's default).
func parsePropDef(name string, n *yaml.Node, a at, what string) (*propDef, *Error) {
	d := &propDef{name: name, required: what != "attribute", loc: a}
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	allowed := []string{"type", "description", "required", "default", "status", "constraints", "entry_schema", "key_schema", "metadata", "value"}
	if err := checkKeys(ps, a, "a "+what+" definition", allowed...); err != nil {
		return nil, err
	}
	for _, p := range ps {
		pa := a.child(p.key, p.k.Line)
		switch p.key {
		case "type":
			if d.typ, err = scalar(p.v, pa); err != nil {
				return nil, err
			}
		case "description":
			if !isNull(p.v) {
				if d.description, err = scalar(p.v, pa); err != nil {
					return nil, err
				}
			}
		case "required":
			if d.required, err = boolean(p.v, pa); err != nil {
				return nil, err
			}
		case "default":
			d.def = p.v
		case "constraints":
			if d.constraints, err = parseConstraints(p.v, pa); err != nil {
				return nil, err
			}
		case "entry_schema":
			if d.entrySchema, err = parseEntrySchema(p.v, pa); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// parseEntrySchema reads "entry_schema: TYPE" or "entry_schema: {type: TYPE}".
func parseEntrySchema(n *yaml.Node, a at) (string, *Error) {
	if deref(n).Kind == yaml.ScalarNode {
		return scalar(n, a)
	}
	t := mapGet(n, "type")
	if t == nil {
		return "", a.errorf("needs a type")
	}
	return scalar(t, a.child("type", t.Line))
}

func parseCapDefs(n *yaml.Node, a at) ([]*capDef, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	var out []*capDef
	for _, p := range ps {
		ca := a.child(p.key, p.k.Line)
		c := &capDef{name: p.key, loc: ca}
		if deref(p.v).Kind == yaml.ScalarNode {
			// Short form: "host: tosca.capabilities.Container".
			if c.typ, err = scalar(p.v, ca); err != nil {
				return nil, err
			}
		} else {
			cps, err := pairs(p.v, ca)
			if err != nil {
				return nil, err
			}
			if err := checkKeys(cps, ca, "a capability definition", "type", "description", "properties", "attributes", "valid_source_types", "occurrences"); err != nil {
				return nil, err
			}
			for _, cp := range cps {
				cpa := ca.child(cp.key, cp.k.Line)
				switch cp.key {
				case "type":
					if c.typ, err = scalar(cp.v, cpa); err != nil {
						return nil, err
					}
				case "properties":
					// A capability definition may refine property
					// definitions; keep only plain values as defaults.
					if c.props, err = pairs(cp.v, cpa); err != nil {
						return nil, err
					}
				}
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// parseReqDefs reads a requirements list: one single-key mapping per entry,
// the value a capability type (short form) or a mapping.
func parseReqDefs(n *yaml.Node, a at) ([]*reqDef, *Error) {
	its, err := items(n, a)
	if err != nil {
		return nil, err
	}
	var out []*reqDef
	for i, it := range its {
		ia := a.index(i, it.Line)
		ps, err := pairs(it, ia)
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, ia.errorf("each requirement is a mapping with one key, the requirement's name; got %d keys", len(ps))
		}
		p := ps[0]
		ra := ia.child(p.key, p.k.Line)
		r := &reqDef{name: p.key, min: 1, max: 1, loc: ra}
		if deref(p.v).Kind == yaml.ScalarNode {
			if r.capability, err = scalar(p.v, ra); err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		rps, err := pairs(p.v, ra)
		if err != nil {
			return nil, err
		}
		if err := checkKeys(rps, ra, "a requirement definition", "capability", "node", "relationship", "occurrences", "description", "node_filter"); err != nil {
			return nil, err
		}
		for _, rp := range rps {
			rpa := ra.child(rp.key, rp.k.Line)
			switch rp.key {
			case "capability":
				r.capability, err = scalar(rp.v, rpa)
			case "node":
				r.node, err = scalar(rp.v, rpa)
			case "relationship":
				if deref(rp.v).Kind == yaml.MappingNode {
					t := mapGet(rp.v, "type")
					if t == nil {
						return nil, rpa.errorf("needs a type")
					}
					r.relationship, err = scalar(t, rpa.child("type", t.Line))
				} else {
					r.relationship, err = scalar(rp.v, rpa)
				}
			case "occurrences":
				r.min, r.max, err = parseOccurrences(rp.v, rpa)
			}
			if err != nil {
				return nil, err
			}
		}
		if r.capability == "" {
			return nil, ra.errorf("needs a capability")
		}
		out = append(out, r)
	}
	return out, nil
}

func parseOccurrences(n *yaml.Node, a at) (int, int, *Error) {
	its, err := items(n, a)
	if err != nil {
		return 0, 0, err
	}
	if len(its) != 2 {
		return 0, 0, a.errorf("must be [min, max], got %d values", len(its))
	}
	lo, err1 := strconv.Atoi(its[0].Value)
	if err1 != nil || lo < 0 {
		return 0, 0, a.errorf("min must be a non-negative integer, got %s", describe(its[0]))
	}
	if its[1].Value == "UNBOUNDED" {
		return lo, -1, nil
	}
	hi, err2 := strconv.Atoi(its[1].Value)
	if err2 != nil || hi < lo || hi < 1 {
		return 0, 0, a.errorf("max must be UNBOUNDED or an integer of at least max(1, min), got %s", describe(its[1]))
	}
	return lo, hi, nil
}

// parseIfaceDefs reads a node type's interfaces, whose operations may carry
// implementations (relative to the type's file).
func (l *loader) parseIfaceDefs(n *yaml.Node, a at) ([]*ifaceDef, *Error) {
	ps, err := pairs(n, a)
	if err != nil {
		return nil, err
	}
	var out []*ifaceDef
	for _, p := range ps {
		ia := a.child(p.key, p.k.Line)
		f := &ifaceDef{name: p.key, loc: ia}
		ips, err := pairs(p.v, ia)
		if err != nil {
			return nil, err
		}
		var shared []namedValue
		for _, ip := range ips {
			if ip.key == "inputs" {
				if shared, err = parseOpInputs(ip.v, ia.child("inputs", ip.k.Line)); err != nil {
					return nil, err
				}
			}
		}
		for _, ip := range ips {
			ipa := ia.child(ip.key, ip.k.Line)
			switch ip.key {
			case "type":
				if f.typ, err = scalar(ip.v, ipa); err != nil {
					return nil, err
				}
			case "inputs", "description", "notifications":
			case "operations":
				ops, err := pairs(ip.v, ipa)
				if err != nil {
					return nil, err
				}
				for _, o := range ops {
					op, err := parseOperation(p.key, o.key, o.v, ipa.child(o.key, o.k.Line), shared)
					if err != nil {
						return nil, err
					}
					f.ops = append(f.ops, op)
				}
			default:
				op, err := parseOperation(p.key, ip.key, ip.v, ipa, shared)
				if err != nil {
					return nil, err
				}
				f.ops = append(f.ops, op)
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// link resolves every type's parent, rejecting unknown parents and cycles,
// then checks the types each definition names.
func (r *registry) link() *Error {
	for _, t := range r.order {
		if t.parentName == "" {
			continue
		}
		if t.kind == kindData && isPrimitive(t.parentName) {
			t.primitive = t.parentName
			continue
		}
		p := r.get(t.kind, t.parentName)
		if p == nil {
			return t.loc.child("derived_from", 0).errorf("%s", r.unknown(t.kind, t.parentName))
		}
		t.parent = p
	}
	for _, t := range r.order {
		seen := map[*typeDef]bool{}
		var names []string
		for x := t; x != nil; x = x.parent {
			names = append(names, x.name)
			if seen[x] {
				return t.loc.child("derived_from", 0).errorf("derived_from cycle: %s", strings.Join(names, " -> "))
			}
			seen[x] = true
		}
	}
	for _, t := range r.order {
		if t.kind == kindData && t.primitive == "" {
			for p := t.parent; p != nil; p = p.parent {
				if p.primitive != "" {
					t.primitive = p.primitive
				}
			}
		}
	}
	for _, t := range r.order {
		if err := r.checkType(t); err != nil {
			return err
		}
	}
	return nil
}

func (r *registry) checkValueType(typ string, a at) *Error {
	if typ == "" {
		return a.errorf("needs a type")
	}
	if isPrimitive(typ) || r.get(kindData, typ) != nil {
		return nil
	}
	return a.errorf("%s", r.unknown(kindData, typ))
}

// checkType checks the type names a definition uses.
func (r *registry) checkType(t *typeDef) *Error {
	for _, defs := range [][]*propDef{t.props, t.attrs} {
		for _, p := range defs {
			if p.typ == "" && t.parent != nil {
				continue // a refinement; the parent's type applies
			}
			if err := r.checkValueType(p.typ, p.loc.child("type", 0)); err != nil {
				return err
			}
			if p.entrySchema != "" {
				if err := r.checkValueType(p.entrySchema, p.loc.child("entry_schema", 0)); err != nil {
					return err
				}
			}
		}
	}
	for _, c := range t.caps {
		if c.typ == "" {
			if t.parent != nil && t.parent.capability(c.name) != nil {
				continue
			}
			return c.loc.errorf("needs a type")
		}
		if r.get(kindCapability, c.typ) == nil {
			return c.loc.child("type", 0).errorf("%s", r.unknown(kindCapability, c.typ))
		}
	}
	for _, q := range t.reqs {
		if r.get(kindCapability, q.capability) == nil {
			return q.loc.child("capability", 0).errorf("%s", r.unknown(kindCapability, q.capability))
		}
		if q.node != "" && r.get(kindNode, q.node) == nil {
			return q.loc.child("node", 0).errorf("%s", r.unknown(kindNode, q.node))
		}
		if q.relationship != "" && r.get(kindRelationship, q.relationship) == nil {
			return q.loc.child("relationship", 0).errorf("%s", r.unknown(kindRelationship, q.relationship))
		}
	}
	for _, f := range t.ifaces {
		if f.typ != "" && r.get(kindInterface, f.typ) == nil {
			return f.loc.child("type", 0).errorf("%s", r.unknown(kindInterface, f.typ))
		}
	}
	return nil
}

// editDistance is the Levenshtein distance of two short strings, for
// "did you mean" suggestions.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
