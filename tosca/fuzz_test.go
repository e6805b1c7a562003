package tosca

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// anyPlacer places every node on one x86 host of testKB.
type anyPlacer struct{ fakePlacer }

func (p *anyPlacer) Place(_ context.Context, reqs []PlacementRequest, _ int) (*Placement, error) {
	pl := &Placement{HostSource: "fuzz"}
	for _, r := range reqs {
		pl.Results = append(pl.Results, PlacementResult{Name: r.Name, Host: "h", Architecture: "x86", MarginalWatts: 1})
	}
	return pl, nil
}

// checkError asserts the contract of every error: a *Error that names the
// file and a line or a path (a YAML syntax error may lack both).
func checkError(t *testing.T, err error) {
	t.Helper()
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %T %q is not a *tosca.Error", err, err)
	}
	if te.File == "" || te.Line <= 0 && te.Path == "" && !strings.HasPrefix(te.Msg, "invalid YAML") {
		t.Fatalf("error without a location: %q (%+v)", err, te)
	}
}

// FuzzParse: no input panics the parser, the resolver or the HOT
// generator; every error is located; a resolved template parses again.
func FuzzParse(f *testing.F) {
	seeds := []string{base, tagged, twoServers, scripted,
		taggedWith("{tag: web, mode: exact}", "{host: {properties: {mem_size: 2 GB}}}")}
	for _, c := range errorCases {
		seeds = append(seeds, c.src)
	}
	for _, p := range []string{"../examples/owncloud/owncloud.yaml", "testdata/single/app.yaml", "testdata/three-tier/app.yaml", "testdata/arm/app.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, string(b))
	}
	for _, s := range seeds {
		f.Add(s)
	}
	types, err := os.ReadFile("../examples/owncloud/types/owncloud.yaml")
	if err != nil {
		f.Fatal(err)
	}
	files := memFiles{
		"types/owncloud.yaml":    string(types),
		"../../ecrae-types.yaml": string(EcraeTypesYAML()),
		"types/a.yaml":           "tosca_definitions_version: tosca_simple_yaml_1_0\nimports: [b.yaml]\n",
		"types/b.yaml":           "tosca_definitions_version: tosca_simple_yaml_1_0\n",
	}
	read := func(name string) ([]byte, error) {
		if b, err := files.read(filepath.ToSlash(name)); err == nil {
			return b, nil
		}
		// Scripts: any other file exists and is short.
		if strings.HasSuffix(name, ".yaml") {
			return files.read(name)
		}
		return []byte("echo " + filepath.Base(name) + "\n"), nil
	}
	kb := testKB(f)
	f.Fuzz(func(t *testing.T, src string) {
		opts := Options{ReadFile: read, Inputs: map[string]string{"db_password": "password1", "pw": "password1"}}
		tpl, err := Parse("app.yaml", []byte(src), opts)
		if err != nil {
			checkError(t, err)
			return
		}
		r, err := Resolve(context.Background(), tpl, &anyPlacer{fakePlacer{kb: kb}})
		if err != nil {
			checkError(t, err)
			return
		}
		out, err := r.YAML()
		if err != nil {
			t.Fatalf("render the resolved template: %v", err)
		}
		if _, err := Parse("app.yaml", out, opts); err != nil {
			t.Fatalf("the resolved template does not parse: %v\n%s", err, out)
		}
		if _, err := HOT(r.Template, HOTOptions{KB: kb}); err != nil {
			checkError(t, err)
		}
	})
}
