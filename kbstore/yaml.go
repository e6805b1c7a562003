package kbstore

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/internal/suggest"
	"gopkg.in/yaml.v3"
)

// defaultKB is a string, not a []byte, so nobody can modify the embedded copy.
//
//go:embed default_kb.yaml
var defaultKB string

// DefaultYAML returns the embedded default KB, comments included.
func DefaultYAML() []byte { return []byte(defaultKB) }

// Default parses the embedded default KB.
func Default() (*KB, error) {
	kb, err := ParseYAML("default_kb.yaml", DefaultYAML())
	if err != nil {
		return nil, fmt.Errorf("embedded default KB: %w", err)
	}
	return kb, nil
}

// ParseYAML decodes and validates one KB document. Unknown fields, wrong
// types and invalid values are *ValidationError naming file, line and
// field. Entities keep the file's order; a missing schema_version becomes
// CurrentSchemaVersion, and empty lists and maps become nil.
func ParseYAML(file string, data []byte) (*KB, error) {
	root, verr := parseDocument(file, data)
	if verr != nil {
		return nil, verr
	}
	d := &decoder{file: file, budget: 10*countNodes(root) + 1000}
	var kb KB
	if verr := d.decode(root, reflect.ValueOf(&kb).Elem(), ""); verr != nil {
		return nil, verr
	}
	if verr := validate(&kb, indexPaths); verr != nil {
		verr.File = file
		verr.Line = lineOf(root, verr.Field)
		return nil, verr
	}
	if kb.SchemaVersion == 0 {
		kb.SchemaVersion = CurrentSchemaVersion
	}
	return &kb, nil
}

// ParseYAMLMerge decodes a KB document meant to be merged into base by
// name (what a merging import does), so its references may name base's
// entities. The merged KB is validated; an error in an entity of the file
// names the file's line, one in an entity of base names it by name.
func ParseYAMLMerge(file string, data []byte, base *KB) (*KB, error) {
	root, verr := parseDocument(file, data)
	if verr != nil {
		return nil, verr
	}
	d := &decoder{file: file, budget: 10*countNodes(root) + 1000}
	var kb KB
	if verr := d.decode(root, reflect.ValueOf(&kb).Elem(), ""); verr != nil {
		return nil, verr
	}
	if base == nil {
		base = &KB{}
	}
	if verr := validate(merge(base, &kb), filePaths(&kb)); verr != nil {
		verr.File = file
		verr.Line = lineOf(root, verr.Field)
		return nil, verr
	}
	if kb.SchemaVersion == 0 {
		kb.SchemaVersion = CurrentSchemaVersion
	}
	return &kb, nil
}

// parseDocument returns the top-level mapping of the single document in data.
func parseDocument(file string, data []byte) (root *yaml.Node, verr *ValidationError) {
	defer func() {
		// yaml.v3 has panicked on hostile input before; an import must fail
		// cleanly instead of taking the server down.
		if r := recover(); r != nil {
			root, verr = nil, &ValidationError{File: file, Msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{File: file, Msg: "empty document: expected a mapping with schema_version, architectures, tags, flavors and hosts"}
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &ValidationError{File: file, Line: extra.Line, Msg: "a second YAML document; a KB file holds exactly one"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &ValidationError{File: file, Line: doc.Line, Msg: "empty document"}
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, &ValidationError{File: file, Line: root.Line, Msg: "empty document: expected a mapping with schema_version, architectures, tags, flavors and hosts"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ValidationError{File: file, Line: root.Line, Msg: "the top level must be a mapping, got " + describe(root)}
	}
	return root, nil
}

// syntaxError turns yaml.v3's "yaml: line N: msg" into a ValidationError.
func syntaxError(file string, err error) *ValidationError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if v, convErr := strconv.Atoi(n); convErr == nil {
				line, msg = v, after
			}
		}
	}
	return &ValidationError{File: file, Line: line, Msg: "invalid YAML: " + msg}
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// decoder fills Go values from a node tree, strictly: unknown and duplicate
// keys are errors, and every error carries the node's line and field path.
type decoder struct {
	file string
	// budget bounds node visits, so aliases cannot expand a small file into
	// a huge one ("billion laughs"). Recursion depth needs no bound: it
	// follows the Go types, which are not recursive.
	budget int
	// collect, when set, keeps decoding the other items of a list after
	// one fails, gathering every item's first error in errs (CheckYAML).
	collect bool
	errs    []*ValidationError
}

func (d *decoder) errAt(n *yaml.Node, field, format string, args ...any) *ValidationError {
	return &ValidationError{File: d.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, field string) *ValidationError {
	// Errors about this value point at the alias, where the user put it.
	at := n
	if d.budget--; d.budget < 0 {
		return d.errAt(at, field, "document too large after expanding aliases")
	}
	if n.Kind == yaml.AliasNode {
		n = resolveAlias(n)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		v.SetZero()
		return nil
	}
	want, fits := expect(v.Kind(), n.Kind)
	if !fits {
		return d.errAt(at, field, "expected %s, got %s", want, describe(n))
	}
	switch v.Kind() {
	case reflect.Struct:
		return d.decodeStruct(n, v, field)
	case reflect.Slice:
		if len(n.Content) == 0 {
			v.SetZero()
			return nil
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		failed := false
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), idx(field, i)); err != nil {
				if !d.collect || d.budget < 0 {
					return err
				}
				d.errs, failed = append(d.errs, err), true
			}
		}
		if failed {
			return nil // reported in d.errs; the list is incomplete
		}
		v.Set(s)
		return nil
	case reflect.Map:
		return d.decodeMap(n, v, field)
	default:
		if err := decodeScalar(n, v); err != nil {
			return d.errAt(at, field, "expected %s, got %s", want, quoteShort(n.Value))
		}
		return nil
	}
}

// expect names what a Go kind needs and whether node kind nk provides it.
func expect(k reflect.Kind, nk yaml.Kind) (want string, fits bool) {
	switch k {
	case reflect.Struct, reflect.Map:
		return "a mapping", nk == yaml.MappingNode
	case reflect.Slice:
		return "a list", nk == yaml.SequenceNode
	case reflect.String:
		return "a string", nk == yaml.ScalarNode
	case reflect.Bool:
		return "true or false", nk == yaml.ScalarNode
	case reflect.Int, reflect.Int64:
		return "an integer", nk == yaml.ScalarNode
	default:
		return "a number", nk == yaml.ScalarNode
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, field string) *ValidationError {
	fields := yamlFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, err := d.key(k, field)
		if err != nil {
			return err
		}
		f := join(field, key)
		if line, dup := seen[key]; dup {
			return d.errAt(k, f, "duplicate key (first at line %d)", line)
		}
		seen[key] = k.Line
		fi := slices.IndexFunc(fields, func(yf yamlField) bool { return yf.name == key })
		if fi < 0 {
			names := make([]string, len(fields))
			for j, yf := range fields {
				names[j] = yf.name
			}
			return d.errAt(k, f, "unknown field %s%s (known: %s)", quote.Value(key), suggest.DidYouMean(key, names), strings.Join(names, ", "))
		}
		if err := d.decode(val, v.Field(fields[fi].index), f); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, field string) *ValidationError {
	if len(n.Content) == 0 {
		v.SetZero()
		return nil
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, err := d.key(k, field)
		if err != nil {
			return err
		}
		if line, dup := seen[key]; dup {
			return d.errAt(k, field, "duplicate key %s (first at line %d)", quote.Value(key), line)
		}
		seen[key] = k.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if err := d.decode(val, elem, field); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(key), elem)
	}
	v.Set(m)
	return nil
}

// key returns a mapping key, which must be a plain string.
func (d *decoder) key(k *yaml.Node, field string) (string, *ValidationError) {
	at := k
	k = resolveAlias(k)
	if k.Kind != yaml.ScalarNode {
		return "", d.errAt(at, field, "mapping keys must be strings, got %s", describe(k))
	}
	if k.ShortTag() == "!!merge" {
		return "", d.errAt(at, field, "merge keys (<<) are not supported")
	}
	return k.Value, nil
}

// decodeScalar sets v from scalar node n; the caller words the error.
func decodeScalar(n *yaml.Node, v reflect.Value) (err error) {
	// Strings are taken verbatim, except !!binary, which yaml.v3 decodes.
	if v.Kind() == reflect.String && n.ShortTag() != "!!binary" {
		v.SetString(n.Value)
		return nil
	}
	defer func() {
		// yaml.v3 panics on a few odd scalars; that is a bad value, not a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	if v.Kind() != reflect.Int && v.Kind() != reflect.Int64 {
		return n.Decode(v.Addr().Interface())
	}
	// yaml.v3 truncates 1.5 to 1 for integer fields; refuse instead.
	var x any
	if err := n.Decode(&x); err != nil {
		return err
	}
	var i int64
	ok := false
	switch r := x.(type) {
	case int:
		i, ok = int64(r), true
	case int64:
		i, ok = r, true
	case float64:
		if r == math.Trunc(r) && r >= math.MinInt64 && r < math.MaxInt64 {
			i, ok = int64(r), true
		}
	}
	if !ok || v.OverflowInt(i) {
		return errors.New("not an integer")
	}
	v.SetInt(i)
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	default:
		return quoteShort(n.Value)
	}
}

// quoteShort quotes a value for a message, cut so that a huge scalar
// cannot make a huge error.
func quoteShort(s string) string {
	const max = 40
	if r := []rune(s); len(r) > max {
		return strconv.Quote(string(r[:max])) + "..."
	}
	return strconv.Quote(s)
}

type yamlField struct {
	name      string
	index     int
	omitempty bool
	flow      bool
}

// yamlFields lists t's fields by their yaml tag, in declaration order.
func yamlFields(t reflect.Type) []yamlField {
	var fs []yamlField
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		o := strings.Split(opts, ",")
		fs = append(fs, yamlField{name: name, index: i, omitempty: slices.Contains(o, "omitempty"), flow: slices.Contains(o, "flow")})
	}
	return fs
}

// lineOf finds the line of the node at field ("tags[2].candidates[0].isa")
// below root; when the field is absent (a missing required value) it gives
// the line of its nearest present ancestor.
func lineOf(root *yaml.Node, field string) int {
	n, line := root, root.Line
	for seg := range strings.SplitSeq(field, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if key != "" {
			if n = mapValue(n, key); n == nil {
				return line
			}
			line = n.Line
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil {
				return line
			}
			rest = strings.TrimPrefix(after, "[")
			if n = resolveAlias(n); n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	// Bounded: a YAML alias can only point at an earlier anchor.
	for range 100 {
		if n.Kind != yaml.AliasNode {
			return n
		}
		n = n.Alias
	}
	return n
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	n = resolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if resolveAlias(n.Content[i]).Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// EncodeYAML writes kb as YAML: entities sorted by name, fields in a fixed
// order, map keys sorted, so equal KBs give equal bytes. A valid KB
// round-trips through ParseYAML.
func EncodeYAML(kb *KB) ([]byte, error) {
	if kb == nil {
		return nil, errors.New("encode KB: nil knowledge base")
	}
	c := kb.clone()
	c.sortByName()
	if c.SchemaVersion == 0 {
		c.SchemaVersion = CurrentSchemaVersion
	}
	root, err := encodeValue(reflect.ValueOf(c).Elem(), false)
	if err != nil {
		return nil, fmt.Errorf("encode KB: %w", err)
	}
	doc := &yaml.Node{
		Kind:        yaml.DocumentNode,
		HeadComment: "ECRAE knowledge base (see kbstore/default_kb.yaml for the format).",
		Content:     []*yaml.Node{root},
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode KB: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode KB: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeValue builds the node for v. It is written out by hand, rather than
// left to yaml.Marshal, to print numbers like 5811114 plainly instead of
// 5.811114e+06 and to control field order and flow style.
func encodeValue(v reflect.Value, flow bool) (*yaml.Node, error) {
	switch v.Kind() {
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range yamlFields(v.Type()) {
			fv := v.Field(f.index)
			if f.omitempty && fv.IsZero() || f.omitempty && (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0 {
				continue
			}
			val, err := encodeValue(fv, f.flow)
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.name}, val)
		}
		return m, nil
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		if flow {
			s.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			item, err := encodeValue(v.Index(i), false)
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, item)
		}
		return s, nil
	case reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		for _, k := range keys {
			kn, err := encodeValue(reflect.ValueOf(k), false)
			if err != nil {
				return nil, err
			}
			vn, err := encodeValue(v.MapIndex(reflect.ValueOf(k)), false)
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, kn, vn)
		}
		return m, nil
	case reflect.Float64:
		return &yaml.Node{Kind: yaml.ScalarNode, Value: formatFloat(v.Float())}, nil
	default:
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			return nil, err
		}
		return &n, nil
	}
}

// formatFloat prints plain decimals where YAML readers expect them and
// exponents only for very large or small magnitudes; both parse back to the
// same float64.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return ".nan"
	case math.IsInf(f, 1):
		return ".inf"
	case math.IsInf(f, -1):
		return "-.inf"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e21) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// CheckYAML validates a KB document like ParseYAML (base nil) or
// ParseYAMLMerge (base the KB it merges into) but reports every problem of
// every entity, not just the first, each with file, line and field; the
// first is the one ParseYAML returns. Entries that
// do not decode (an unknown field, a wrong type) are each reported, and
// then the references are not checked; YAML that does not parse is one
// error.
func CheckYAML(file string, data []byte, base *KB) []*ValidationError {
	root, verr := parseDocument(file, data)
	if verr != nil {
		return []*ValidationError{verr}
	}
	d := &decoder{file: file, budget: 10*countNodes(root) + 1000, collect: true}
	var kb KB
	if verr := d.decode(root, reflect.ValueOf(&kb).Elem(), ""); verr != nil {
		return append(d.errs, verr)
	}
	if len(d.errs) > 0 {
		// Entries that did not decode: their references cannot be checked.
		return d.errs
	}
	var errs []*ValidationError
	if base == nil {
		errs = validateAll(&kb, indexPaths, 0)
	} else {
		errs = validateAll(merge(base, &kb), filePaths(&kb), 0)
	}
	for _, e := range errs {
		e.File = file
		e.Line = lineOf(root, e.Field)
	}
	return errs
}
