package tosca

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestImportsStayInTheTemplateFolder: an import outside the main
// template's folder (by a relative path, an absolute one, or a symbolic
// link inside that points out) is refused unless AllowOutside.
func TestImportsStayInTheTemplateFolder(t *testing.T) {
	root := t.TempDir()
	app := filepath.Join(root, "app")
	if err := os.MkdirAll(filepath.Join(app, "types"), 0o755); err != nil {
		t.Fatal(err)
	}
	types := "tosca_definitions_version: tosca_simple_yaml_1_3\nnode_types:\n  my.nodes.Thing:\n    derived_from: tosca.nodes.Root\n"
	for _, f := range []string{filepath.Join(root, "outside.yaml"), filepath.Join(app, "types", "inside.yaml")} {
		if err := os.WriteFile(f, []byte(types), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "outside.yaml"), filepath.Join(app, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	template := func(imp string) string {
		return "tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - " + imp + "\ntopology_template:\n  node_templates:\n    t:\n      type: my.nodes.Thing\n"
	}
	main := filepath.Join(app, "app.yaml")
	for _, tc := range []struct {
		imp     string
		outside bool
	}{
		{"types/inside.yaml", false},
		{"../outside.yaml", true},
		{filepath.Join(root, "outside.yaml"), true},
		{"link.yaml", true},
		{"types/../../outside.yaml", true},
	} {
		for _, allow := range []bool{false, true} {
			_, err := Parse(main, []byte(template(tc.imp)), Options{AllowOutside: allow})
			refused := errors.Is(err, ErrOutside)
			if refused != (tc.outside && !allow) {
				t.Errorf("import %s, allow %v: %v", tc.imp, allow, err)
			}
			if !refused && err != nil {
				t.Errorf("import %s, allow %v: unexpected %v", tc.imp, allow, err)
			}
		}
	}
}
