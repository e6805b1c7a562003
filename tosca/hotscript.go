package tosca

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// The lifecycle scripts reach the servers as user_data (cloud-init runs it
// once at first boot) rather than as OS::Heat::SoftwareDeployment, which
// needs Heat's agents (os-collect-config and friends) baked into the image;
// user_data works with any cloud image. Values only Heat knows (parameters,
// other servers' addresses, the wait handle) are filled in by str_replace.

// tokens collects str_replace parameters.
type tokens struct {
	params *yaml.Node
	n      int
}

// add returns a fresh placeholder for expr. Placeholders have one width, so
// none is a prefix of another.
func (ts *tokens) add(expr *yaml.Node) string {
	ts.n++
	tok := fmt.Sprintf("@@ECRAE_%03d@@", ts.n)
	mapSet(ts.params, tok, expr)
	return tok
}

var shellName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shellEscaped has Heat escape a value known only at stack creation (a
// parameter) for a single-quoted shell word: every ' becomes '\”.
func shellEscaped(v *yaml.Node) *yaml.Node {
	return mapNode(strNode("str_replace"), mapNode(
		strNode("template"), v,
		strNode("params"), flow(mapNode(strNode("'"), strNode(`'\''`)))))
}

// safeName keeps a node name usable in file names.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// heredoc writes body to name on the server, with a delimiter that no line
// of body equals.
func heredoc(b *strings.Builder, name string, body []byte) {
	text := string(body)
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	delim := "ECRAE_EOF"
	for i := 1; strings.Contains("\n"+text, "\n"+delim+"\n"); i++ {
		delim = fmt.Sprintf("ECRAE_EOF_%d", i)
	}
	fmt.Fprintf(b, "cat > %s <<'%s'\n%s%s\n", shellQuote(name), delim, text, delim)
}

// userData builds a server's first-boot script: each hosted node's create,
// configure and start, in dependency order, each operation's inputs in its
// environment; the wait condition is signalled at the end (or on failure).
func (g *hotGen) userData(s *server) (*yaml.Node, *Error) {
	ts := &tokens{params: mapNode()}
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "# ECRAE: the lifecycle operations of the nodes on %s, in dependency order.\n", s.node.Name)
	b.WriteString("set -eu\n")
	b.WriteString("ecrae_step=start\n")
	if s.wait {
		notify := ts.add(flow(mapNode(strNode("get_attr"), seqNode(strNode(s.node.Name+"_wait_handle"), strNode("curl_cli")))))
		b.WriteString("ecrae_notify() {\n")
		b.WriteString("  " + notify + ` --data-binary "{\"status\": \"$1\", \"reason\": \"$2\"}"` + "\n")
		b.WriteString("}\n")
		fmt.Fprintf(&b, "trap 'ecrae_notify FAILURE \"%s: $ecrae_step failed\"' ERR\n", safeName(s.node.Name))
	}
	dir := "/var/lib/ecrae/" + safeName(s.node.Name)
	fmt.Fprintf(&b, "mkdir -p %s\ncd %s\n", dir, dir)
	for i, so := range s.ops {
		ext := path.Ext(filepath.ToSlash(so.file))
		base := fmt.Sprintf("%02d-%s-%s%s", i+1, safeName(so.node.Name), so.op.Name, safeName(ext))
		fmt.Fprintf(&b, "\n# %d. %s: Standard.%s (%s)\n", i+1, so.node.Name, so.op.Name, so.file)
		fmt.Fprintf(&b, "ecrae_step=%s\n", shellQuote(so.node.Name+" "+so.op.Name))
		for _, d := range so.deps {
			heredoc(&b, d.name, d.body)
		}
		heredoc(&b, base, so.body)
		var env []string
		for _, in := range so.op.Inputs {
			if !shellName.MatchString(in.name) {
				return nil, in.loc.errorf("an operation input becomes an environment variable; %s is not a valid name", quote(in.name))
			}
			w, err := g.shellWord(in.v, in.loc, so.node, s, ts, 0)
			if err != nil {
				return nil, err
			}
			env = append(env, in.name+"="+w)
		}
		var cmd string
		switch ext {
		case ".py":
			cmd = "python3 " + base
		case ".sh", ".bash", "":
			cmd = "bash " + base
		default:
			// Anything else runs as the program its first line names.
			fmt.Fprintf(&b, "chmod +x %s\n", base)
			cmd = "./" + base
		}
		b.WriteString(strings.Join(append(env, cmd), " ") + "\n")
	}
	if s.wait {
		fmt.Fprintf(&b, "\necrae_notify SUCCESS %s\n", shellQuote(fmt.Sprintf("%s: %d operation(s) done", safeName(s.node.Name), len(s.ops))))
	}
	text := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: b.String(), Style: yaml.LiteralStyle}
	if len(ts.params.Content) == 0 {
		return text, nil
	}
	return mapNode(strNode("str_replace"), mapNode(strNode("template"), text, strNode("params"), ts.params)), nil
}

func flow(n *yaml.Node) *yaml.Node {
	n.Style = yaml.FlowStyle
	return n
}

// ownAddress is a server's own address, read at boot: its user_data cannot
// ask Heat for it without depending on itself.
const ownAddress = `"$(hostname -I | awk '{print $1}')"`

// shellWord renders a value as one shell word: literals quoted, Heat
// values as str_replace placeholders.
func (g *hotGen) shellWord(v *yaml.Node, a at, self *Node, s *server, ts *tokens, depth int) (string, *Error) {
	v = deref(v)
	if depth > 50 {
		return "", a.errorf("get_property refers to itself")
	}
	name, arg, ok := function(v)
	if !ok {
		if v.Kind == yaml.ScalarNode {
			return shellQuote(v.Value), nil
		}
		if containsFunction(v) {
			return "", a.errorf("a list or map holding functions cannot become an environment variable")
		}
		x, err := toAny(v, a)
		if err != nil {
			return "", err
		}
		j, jerr := json.Marshal(x)
		if jerr != nil {
			return "", a.wrap(jerr, "cannot write the value as JSON")
		}
		return shellQuote(string(j)), nil
	}
	fa := a.child(name, v.Content[0].Line)
	switch name {
	case "get_input":
		in, err := g.t.inputOf(arg, fa)
		if err != nil {
			return "", err
		}
		p := getParam(in.Name)
		if in.def == nil || in.def.typ == "" || in.def.typ == "string" {
			// Only strings can hold a quote (and Heat's str_replace
			// takes only a string template).
			p = shellEscaped(p)
		}
		return "'" + ts.add(p) + "'", nil
	case "get_property":
		nd, p, err := g.t.ref(name, arg, fa, self)
		if err != nil {
			return "", err
		}
		pv, pa, err := g.t.propertyValue(nd, p, fa)
		if err != nil {
			return "", err
		}
		return g.shellWord(pv, pa, nd, s, ts, depth+1)
	case "get_attribute":
		nd, p, err := g.t.ref(name, arg, fa, self)
		if err != nil {
			return "", err
		}
		if c, ok := g.addressNode(nd, p); ok {
			if c == nil {
				return "", fa.errorf("node %s runs on no compute node, so it has no address", quote(nd.Name))
			}
			if c == s.node {
				return ownAddress, nil
			}
			if d := g.byNode[c]; d != nil {
				if _, seen := s.refAt[d]; !seen {
					s.refs = append(s.refs, d)
					s.refAt[d] = fa
				}
			}
			return "'" + ts.add(addressOf(c.Name)) + "'", nil
		}
		x, err := g.attrValue(nd, p, fa, depth)
		if err != nil {
			return "", err
		}
		if deref(x).Kind == yaml.ScalarNode {
			return shellQuote(deref(x).Value), nil
		}
		return "'" + ts.add(x) + "'", nil
	case "concat":
		its, err := items(arg, fa)
		if err != nil {
			return "", err
		}
		var w strings.Builder
		for i, it := range its {
			p, err := g.shellWord(it, fa.index(i, it.Line), self, s, ts, depth+1)
			if err != nil {
				return "", err
			}
			w.WriteString(p) // adjacent quoted strings are one shell word
		}
		if w.Len() == 0 {
			return "''", nil
		}
		return w.String(), nil
	}
	return "", fa.errorf("function %s is not supported by ECRAE", short(name))
}

// addressNode reports whether an attribute path names an address, and of
// which compute node (nil: the node runs on none).
func (g *hotGen) addressNode(nd *Node, p []string) (*Node, bool) {
	attr := p[len(p)-1]
	switch {
	case len(p) == 1 && (attr == "private_address" || attr == "public_address"),
		attr == "ip_address":
		return nd.compute(), true
	}
	return nil, false
}

// attrValue maps a get_attribute that is not an address: Compute's
// networks, tosca_name, and properties (which TOSCA also exposes as
// attributes).
func (g *hotGen) attrValue(nd *Node, p []string, a at, depth int) (*yaml.Node, *Error) {
	if len(p) == 1 {
		switch p[0] {
		case "networks":
			if c := nd.compute(); c != nil && c == nd {
				return flow(mapNode(strNode("get_attr"), seqNode(strNode(c.Name), strNode("networks")))), nil
			}
		case "tosca_name":
			return strNode(nd.Name), nil
		}
	}
	if nd.typ.prop(p[0]) != nil || len(p) > 1 {
		if len(p) == 1 || nd.typ.capability(p[0]) != nil {
			pv, pa, err := g.t.propertyValue(nd, p, a)
			if err == nil {
				return g.hotValueDepth(pv, pa, nd, depth+1)
			}
		}
	}
	return nil, a.errorf("attribute %s of %s has no Heat equivalent (ECRAE maps private_address, public_address, ip_address, networks, tosca_name and properties)",
		quote(strings.Join(p, ".")), quote(nd.Name))
}

// hotValue maps a TOSCA value to a Heat one: get_input → get_param,
// addresses → the server's networks attribute, concat → list_join.
func (g *hotGen) hotValue(v *yaml.Node, a at, self *Node) (*yaml.Node, *Error) {
	return g.hotValueDepth(v, a, self, 0)
}

func (g *hotGen) hotValueDepth(v *yaml.Node, a at, self *Node, depth int) (*yaml.Node, *Error) {
	v = deref(v)
	if depth > 50 {
		return nil, a.errorf("get_property refers to itself")
	}
	name, arg, ok := function(v)
	if !ok {
		c := &yaml.Node{Kind: v.Kind, Tag: v.Tag, Value: v.Value, Style: v.Style}
		for i, x := range v.Content {
			if v.Kind == yaml.MappingNode && i%2 == 0 {
				c.Content = append(c.Content, strNode(deref(x).Value))
				continue
			}
			y, err := g.hotValueDepth(x, a, self, depth+1)
			if err != nil {
				return nil, err
			}
			c.Content = append(c.Content, y)
		}
		return c, nil
	}
	fa := a.child(name, v.Content[0].Line)
	switch name {
	case "get_input":
		in, err := g.t.inputOf(arg, fa)
		if err != nil {
			return nil, err
		}
		return getParam(in.Name), nil
	case "get_property":
		nd, p, err := g.t.ref(name, arg, fa, self)
		if err != nil {
			return nil, err
		}
		pv, pa, err := g.t.propertyValue(nd, p, fa)
		if err != nil {
			return nil, err
		}
		return g.hotValueDepth(pv, pa, nd, depth+1)
	case "get_attribute":
		nd, p, err := g.t.ref(name, arg, fa, self)
		if err != nil {
			return nil, err
		}
		if c, ok := g.addressNode(nd, p); ok {
			if c == nil {
				return nil, fa.errorf("node %s runs on no compute node, so it has no address", quote(nd.Name))
			}
			return addressOf(c.Name), nil
		}
		return g.attrValue(nd, p, fa, depth)
	case "concat":
		its, err := items(arg, fa)
		if err != nil {
			return nil, err
		}
		parts := seqNode()
		for i, it := range its {
			x, err := g.hotValueDepth(it, fa.index(i, it.Line), self, depth+1)
			if err != nil {
				return nil, err
			}
			parts.Content = append(parts.Content, x)
		}
		return mapNode(strNode("list_join"), seqNode(strNode(""), parts)), nil
	}
	return nil, fa.errorf("function %s is not supported by ECRAE", short(name))
}
