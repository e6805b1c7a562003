package tosca

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// python is Debian's interpreter, where python3-tosca-parser installs.
const python = "/usr/bin/python3"

// referenceCases pair each golden resolved template with the directory of
// its source, whose imports and scripts it refers to.
var referenceCases = []struct{ golden, srcDir string }{
	{"owncloud.resolved.yaml", "../examples/owncloud"},
	{"single.resolved.yaml", "testdata/single"},
	{"three-tier.resolved.yaml", "testdata/three-tier"},
	{"arm.resolved.yaml", "testdata/arm"},
}

// toscaParser returns a PYTHONPATH under which OpenStack's tosca-parser
// imports: Debian's package, in a temporary copy completed with the
// normative definitions file the package lacks (from ../shared/data/tosca,
// next to the repository). It skips the test when either is missing.
func toscaParser(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s not found: the tosca-parser check needs Debian's python3-tosca-parser", python)
	}
	out, err := exec.Command(python, "-c", "import importlib.util, os; s = importlib.util.find_spec('toscaparser'); print(os.path.dirname(s.origin) if s else '')").Output()
	pkg := strings.TrimSpace(string(out))
	if err != nil || pkg == "" {
		t.Skip("python3-tosca-parser is not installed (apt-get install python3-tosca-parser)")
	}
	const defs = "elements/TOSCA_definition_1_0.yaml"
	root := t.TempDir()
	dst := filepath.Join(root, "toscaparser")
	if err := os.CopyFS(dst, os.DirFS(pkg)); err != nil {
		t.Fatalf("copy %s: %v", pkg, err)
	}
	if _, err := os.Stat(filepath.Join(pkg, defs)); err != nil {
		shared := filepath.Join("..", "..", "shared", "data", "tosca", "TOSCA_definition_1_0.yaml")
		b, err := os.ReadFile(shared)
		if err != nil {
			t.Skipf("tosca-parser lacks %s and %s is absent (see ../shared/data/tosca/README.md): %v", defs, shared, err)
		}
		if err := os.WriteFile(filepath.Join(dst, defs), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// loadWithToscaParser runs tosca-parser's ToscaTemplate on path.
func loadWithToscaParser(t *testing.T, pythonPath, path string) {
	t.Helper()
	cmd := exec.Command(python, "-c", "import sys\nfrom toscaparser.tosca_template import ToscaTemplate\nToscaTemplate(sys.argv[1])", path)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pythonPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("tosca-parser rejects %s: %v\n%s", path, err, out)
	}
}

// TestToscaParserAcceptsResolved loads every resolved 1.0/1.2 golden
// template (tosca-parser 2.6 reads no 1.3) with OpenStack's tosca-parser,
// from a copy of its source directory so its imports resolve.
func TestToscaParserAcceptsResolved(t *testing.T) {
	pp := toscaParser(t)
	for _, c := range referenceCases {
		t.Run(c.golden, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "golden", c.golden))
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := Parse(c.golden, data, Options{ReadFile: func(name string) ([]byte, error) {
				return os.ReadFile(filepath.Join(c.srcDir, name))
			}})
			if err != nil {
				t.Fatalf("ECRAE cannot read its own output: %v", err)
			}
			if tpl.Version != "tosca_simple_yaml_1_0" && tpl.Version != "tosca_simple_yaml_1_2" {
				t.Skipf("%s: tosca-parser 2.6 reads 1.0 and 1.2 only", tpl.Version)
			}
			dir := filepath.Join(t.TempDir(), "app")
			if err := os.CopyFS(dir, os.DirFS(c.srcDir)); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "resolved.yaml")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			loadWithToscaParser(t, pp, path)
		})
	}
}

// TestToscaParserAcceptsEcraeTypes: ecrae-types.yaml is a definitions file
// other TOSCA tools can import (the arm example imports it).
func TestToscaParserAcceptsEcraeTypes(t *testing.T) {
	pp := toscaParser(t)
	loadWithToscaParser(t, pp, filepath.Join("testdata", "arm", "app.yaml"))
}

// TestGoldenSourcesExist keeps referenceCases in step with the goldens.
func TestGoldenSourcesExist(t *testing.T) {
	var n int
	err := filepath.WalkDir(filepath.Join("testdata", "golden"), func(p string, d fs.DirEntry, err error) error {
		if strings.HasSuffix(p, ".resolved.yaml") {
			n++
		}
		return err
	})
	if err != nil || n != len(referenceCases) {
		t.Errorf("%d resolved goldens, %d reference cases (%v)", n, len(referenceCases), err)
	}
}
