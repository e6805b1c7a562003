package tosca

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	quotes "github.com/ecrae/ecrae/internal/quote"
	"gopkg.in/yaml.v3"
)

// maxExpanded bounds a document's size with its aliases expanded, so a
// "billion laughs" document fails cleanly instead of exhausting memory in
// the walks over values.
const maxExpanded = 1 << 20

// parseYAML returns the top-level mapping of the single document in data.
func parseYAML(file string, data []byte) (root *yaml.Node, err *Error) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; a bad file must be
		// an error, not a crash.
		if r := recover(); r != nil {
			root, err = nil, &Error{File: file, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if derr := dec.Decode(&doc); derr != nil {
		if errors.Is(derr, io.EOF) {
			return nil, &Error{File: file, Line: 1, Msg: "empty file: expected a TOSCA service template (a mapping with tosca_definitions_version)"}
		}
		return nil, syntaxError(file, derr)
	}
	var extra yaml.Node
	switch derr := dec.Decode(&extra); {
	case derr == nil:
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document; a TOSCA file holds exactly one"}
	case !errors.Is(derr, io.EOF):
		return nil, syntaxError(file, derr)
	}
	if len(doc.Content) != 1 {
		return nil, &Error{File: file, Line: max(doc.Line, 1), Msg: "empty document"}
	}
	root = doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: file, Line: root.Line, Msg: "the top level must be a mapping, got " + describe(root)}
	}
	if n := expandedSize(root, map[*yaml.Node]int{}); n > maxExpanded {
		return nil, &Error{File: file, Line: root.Line, Msg: fmt.Sprintf("the document expands to more than %d nodes through its aliases", maxExpanded)}
	}
	return root, nil
}

// expandedSize counts n's nodes with aliases expanded, memoised per node so
// that the count itself stays linear.
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if v, ok := memo[n]; ok {
		return v
	}
	memo[n] = maxExpanded + 1 // a cycle (impossible in yaml.v3, but cheap to guard) counts as too big
	s := 1
	if n.Kind == yaml.AliasNode {
		s += expandedSize(n.Alias, memo)
	}
	for _, c := range n.Content {
		s += expandedSize(c, memo)
		if s > maxExpanded {
			break
		}
	}
	memo[n] = s
	return s
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into an Error.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, convErr := strconv.Atoi(n); convErr == nil {
				line, msg = v, after
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

// deref follows an alias to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's kind for error messages: "a list", "the string 'x'".
func describe(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "the string " + quote(n.Value)
		case "!!int":
			return "the integer " + short(n.Value)
		case "!!float":
			return "the number " + short(n.Value)
		case "!!bool":
			return "the boolean " + n.Value
		}
		return "the value " + quote(n.Value)
	}
	return "an unsupported YAML node"
}

// quote renders a user's string in messages: 'x', shortened when long.
func quote(s string) string { return "'" + short(s) + "'" }

func short(s string) string { return quotes.Short(s) }

// pair is one key and value of a mapping.
type pair struct {
	key  string
	k, v *yaml.Node
}

// pairs lists a mapping's entries in order. Keys must be scalars and
// unique; values are dereferenced. at locates the mapping itself.
func pairs(n *yaml.Node, a at) ([]pair, *Error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, a.errorf("must be a mapping, got %s", describe(n))
	}
	out := make([]pair, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, at{a.file, n.Content[i].Line, a.path}.errorf("a key must be a plain string, got %s", describe(k))
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			return nil, at{a.file, k.Line, a.path}.errorf("YAML merge keys (<<) are not supported; write the keys out")
		}
		if first, dup := seen[k.Value]; dup {
			return nil, a.child(k.Value, k.Line).errorf("duplicate key (first at line %d)", first)
		}
		seen[k.Value] = k.Line
		out = append(out, pair{key: k.Value, k: k, v: v})
	}
	return out, nil
}

// items lists a sequence's elements, dereferenced; null is an empty list.
func items(n *yaml.Node, a at) ([]*yaml.Node, *Error) {
	n = deref(n)
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, a.errorf("must be a list, got %s", describe(n))
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = deref(c)
	}
	return out, nil
}

// scalar returns a scalar's text. Any scalar but null is accepted: names and
// paths are often written unquoted and YAML types them as numbers.
func scalar(n *yaml.Node, a at) (string, *Error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", a.errorf("must be a string, got %s", describe(n))
	}
	return n.Value, nil
}

// boolean reads a YAML boolean.
func boolean(n *yaml.Node, a at) (bool, *Error) {
	n = deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		return false, a.errorf("must be true or false, got %s", describe(n))
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, a.errorf("must be true or false, got %s", describe(n))
	}
	return b, nil
}

// checkKeys rejects keys outside allowed, naming them so a typo is obvious.
func checkKeys(ps []pair, a at, what string, allowed ...string) *Error {
	for _, p := range ps {
		ok := false
		for _, k := range allowed {
			if p.key == k {
				ok = true
				break
			}
		}
		if !ok {
			return a.child(p.key, p.k.Line).errorf("unknown key in %s (allowed: %s)", what, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// toAny decodes a node into plain Go values (map[string]any, []any, string,
// int, float64, bool, nil).
func toAny(n *yaml.Node, a at) (any, *Error) {
	var v any
	if err := deref(n).Decode(&v); err != nil {
		return nil, a.wrap(err, "cannot read the value")
	}
	return normalize(v), nil
}

// normalize turns yaml.v3's map[string]any / map[any]any into map[string]any
// throughout.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = normalize(x)
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

// Node construction, for the documents ECRAE writes.

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func intNode(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

func mapNode(kv ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: kv}
}

func seqNode(vs ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: vs}
}

// mapGet returns the value under key in mapping n (dereferenced), or nil.
func mapGet(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k != nil && k.Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

// mapSet sets key in mapping n, replacing the value in place or appending.
func mapSet(n *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, strNode(key), v)
}

// mapDelete removes key from mapping n.
func mapDelete(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = append(n.Content[:i], n.Content[i+2:]...)
			return
		}
	}
}

// encodeYAML writes a document with two-space indentation.
func encodeYAML(root *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return b.Bytes(), nil
}
