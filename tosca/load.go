package tosca

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Versions are the tosca_definitions_version values ECRAE reads. The
// resolved template keeps the input's.
var Versions = []string{"tosca_simple_yaml_1_0", "tosca_simple_yaml_1_1", "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3"}

// topLevelKeys are the keys of a TOSCA service template or definitions file.
var topLevelKeys = []string{"tosca_definitions_version", "namespace", "metadata", "template_name", "template_author",
	"template_version", "description", "dsl_definitions", "repositories", "imports", "artifact_types", "data_types",
	"capability_types", "interface_types", "relationship_types", "node_types", "group_types", "policy_types",
	"topology_template"}

// Options configures Load and Parse.
type Options struct {
	// ReadFile reads imported files and, for HOT, implementation scripts;
	// nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// Inputs are values for the template's inputs as text (from --input
	// key=value), read according to each input's type.
	Inputs map[string]string
	// AllowOutside lets imports and implementation scripts come from
	// outside the main template's folder (--allow-outside). Without it a
	// template cannot make the toolchain read, say, /etc/shadow into a
	// Heat template's user_data.
	AllowOutside bool
}

func (o Options) readFile() func(string) ([]byte, error) {
	if o.ReadFile != nil {
		return o.ReadFile
	}
	return os.ReadFile
}

// sourceFile is one file of a template: the main file or an import.
type sourceFile struct {
	name    string
	root    *yaml.Node
	version string
	builtin bool
	// ownTypes is true when the file defines types other than ECRAE's
	// built-in ones; ecraeOnly marks a copy of ecrae-types.yaml, which the
	// resolved template no longer needs.
	ownTypes, ecraeTypes bool
	imports              []*sourceFile
}

// ecraeOnly reports whether the file only restates ECRAE's built-in types.
func (f *sourceFile) ecraeOnly() bool { return f.ecraeTypes && !f.ownTypes && len(f.imports) == 0 }

type loader struct {
	read  func(string) ([]byte, error)
	reg   *registry
	files map[string]*sourceFile
	stack []string
}

// Load reads a TOSCA service template and the local files it imports.
func Load(file string, opts Options) (*Template, error) {
	data, err := opts.readFile()(file)
	if err != nil {
		return nil, &Error{File: file, Msg: "cannot read the template: " + err.Error(), Err: err}
	}
	return Parse(file, data, opts)
}

// Parse reads a TOSCA service template held in data; file names it in
// errors and anchors its relative imports.
func Parse(file string, data []byte, opts Options) (*Template, error) {
	t, err := parse(file, data, opts)
	if err != nil {
		return nil, err // never a typed nil in the interface
	}
	return t, nil
}

func parse(file string, data []byte, opts Options) (*Template, *Error) {
	l, err := newLoader(file, opts)
	if err != nil {
		return nil, err
	}
	root, err := parseYAML(file, data)
	if err != nil {
		return nil, err
	}
	return l.parseRoot(file, root, opts)
}

// ErrOutside says that a template named a file outside its folder.
var ErrOutside = errors.New("outside the template's folder (--allow-outside reads it)")

// confined wraps read so that it reads only under dir (symbolic links
// followed), unless allowed.
func confined(read func(string) ([]byte, error), dir string, allowed bool) func(string) ([]byte, error) {
	if allowed {
		return read
	}
	return func(name string) ([]byte, error) {
		base, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		target, err := filepath.Abs(name)
		if err != nil {
			return nil, err
		}
		if b, err := filepath.EvalSymlinks(base); err == nil {
			base = b
		}
		if t, err := filepath.EvalSymlinks(target); err == nil {
			target = t
		}
		rel, err := filepath.Rel(base, target)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return nil, ErrOutside
		}
		return read(name)
	}
}

// newLoader returns a loader that knows the built-in types; it reads
// other files only under the folder of file (see Options.AllowOutside).
func newLoader(file string, opts Options) (*loader, *Error) {
	dir := filepath.Dir(file)
	if file == "stdin" {
		dir = "."
	}
	l := &loader{read: confined(opts.readFile(), dir, opts.AllowOutside), reg: newRegistry(), files: map[string]*sourceFile{}}
	for _, b := range []struct{ name, text string }{{"normative types (built in)", normativeTypes}, {"ecrae-types.yaml (built in)", ecraeTypes}} {
		root, err := parseYAML(b.name, []byte(b.text))
		if err != nil {
			return nil, err
		}
		if _, err := l.loadFile(&sourceFile{name: b.name, root: root, builtin: true}); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// parseRoot builds the template from its already parsed top-level mapping;
// resolution calls it on the rewritten tree, whose untouched nodes keep
// the input's line numbers.
func (l *loader) parseRoot(file string, root *yaml.Node, opts Options) (*Template, *Error) {
	main := &sourceFile{name: file, root: root}
	l.files[filepath.Clean(file)] = main
	l.stack = []string{filepath.Clean(file)}
	top, err := l.loadFile(main)
	if err != nil {
		return nil, err
	}
	if err := l.reg.link(); err != nil {
		return nil, err
	}
	return newTemplate(l, main, top, opts)
}

// loadFile checks a file's top level, loads its imports (depth first) and
// registers its types. It returns the file's top-level entries.
func (l *loader) loadFile(f *sourceFile) ([]pair, *Error) {
	a := at{file: f.name, line: f.root.Line}
	top, err := pairs(f.root, a)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(top, a, "a TOSCA file", topLevelKeys...); err != nil {
		return nil, err
	}
	for _, p := range top {
		switch p.key {
		case "tosca_definitions_version":
			v, err := scalar(p.v, a.child(p.key, p.k.Line))
			if err != nil {
				return nil, err
			}
			if !slices.Contains(Versions, v) {
				return nil, a.child(p.key, p.k.Line).errorf("unsupported version %s (ECRAE reads %s)", quote(v), strings.Join(Versions, ", "))
			}
			f.version = v
		case "imports":
			if err := l.loadImports(f, p.v, a.child(p.key, p.k.Line)); err != nil {
				return nil, err
			}
		case "topology_template":
			if l.stack != nil && len(l.stack) > 1 {
				return nil, a.child(p.key, p.k.Line).errorf("an imported file may define types only; ECRAE reads the topology of the main template")
			}
		}
	}
	if f.version == "" {
		return nil, a.errorf("missing tosca_definitions_version (one of %s)", strings.Join(Versions, ", "))
	}
	if err := l.parseTypes(f, top); err != nil {
		return nil, err
	}
	return top, nil
}

// importPath reads one imports entry: a path, {file: path} or
// {name: path | {file: path}}.
func importPath(n *yaml.Node, a at) (string, at, *Error) {
	n = deref(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		s, err := scalar(n, a)
		return s, a, err
	}
	ps, err := pairs(n, a)
	if err != nil {
		return "", a, err
	}
	if f := mapGet(n, "file"); f != nil {
		fa := a.child("file", f.Line)
		s, err := scalar(f, fa)
		return s, fa, err
	}
	if len(ps) == 1 {
		return importPath(ps[0].v, a.child(ps[0].key, ps[0].k.Line))
	}
	return "", a, a.errorf("an import is a file path, {file: PATH} or {NAME: PATH}")
}

func (l *loader) loadImports(f *sourceFile, n *yaml.Node, a at) *Error {
	its, err := items(n, a)
	if err != nil {
		return err
	}
	for i, it := range its {
		ia := a.index(i, it.Line)
		rel, pa, err := importPath(it, ia)
		if err != nil {
			return err
		}
		if strings.Contains(rel, "://") {
			return pa.errorf("cannot import %s: ECRAE imports local files only", quote(rel))
		}
		p := rel
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(f.name), rel)
		}
		key := filepath.Clean(p)
		if j := slices.Index(l.stack, key); j >= 0 {
			cycle := append(slices.Clone(l.stack[j:]), key)
			return pa.errorf("import cycle: %s", strings.Join(cycle, " -> "))
		}
		if done := l.files[key]; done != nil {
			f.imports = append(f.imports, done)
			continue // imported twice through different files: load once
		}
		data, rerr := l.read(p)
		if rerr != nil {
			return pa.wrap(rerr, "cannot import %s", quote(rel))
		}
		root, err := parseYAML(p, data)
		if err != nil {
			return err
		}
		sf := &sourceFile{name: p, root: root}
		l.files[key] = sf
		l.stack = append(l.stack, key)
		if _, err := l.loadFile(sf); err != nil {
			return err
		}
		l.stack = l.stack[:len(l.stack)-1]
		f.imports = append(f.imports, sf)
	}
	return nil
}
