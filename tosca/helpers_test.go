package tosca

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/kbstore"
)

// memFiles serves imports and scripts from memory.
type memFiles map[string]string

func (m memFiles) read(name string) ([]byte, error) {
	if s, ok := m[name]; ok {
		return []byte(s), nil
	}
	return nil, fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
}

// parseString parses app.yaml given as text (with other files in files).
func parseString(t testing.TB, src string, files memFiles, inputs map[string]string) (*Template, error) {
	t.Helper()
	if files == nil {
		files = memFiles{}
	}
	return Parse("app.yaml", []byte(src), Options{ReadFile: files.read, Inputs: inputs})
}

func mustParse(t testing.TB, src string, files memFiles) *Template {
	t.Helper()
	tpl, err := parseString(t, src, files, nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return tpl
}

// fakePlacer answers from a table: the host, architecture and watts for
// each node by name, and records the requests.
type fakePlacer struct {
	kb      *kbstore.KB
	answers map[string]PlacementResult
	got     [][]PlacementRequest
	calls   int
}

func (f *fakePlacer) KnowledgeBase(context.Context) (*kbstore.KB, error) { return f.kb, nil }

func (f *fakePlacer) Place(_ context.Context, reqs []PlacementRequest, _ int) (*Placement, error) {
	f.calls++
	f.got = append(f.got, reqs)
	pl := &Placement{HostSource: "fake"}
	for _, r := range reqs {
		a, ok := f.answers[r.Name]
		if !ok {
			return nil, errors.New("fake placer: no answer for " + r.Name)
		}
		a.Name = r.Name
		pl.Results = append(pl.Results, a)
		pl.TotalMarginalWatts += a.MarginalWatts
	}
	return pl, nil
}

// testKB is a small KB: an x86 model and an Arm model, a hint tag whose
// first candidate names a flavor, an exact tag and plain flavors.
func testKB(t testing.TB) *kbstore.KB {
	t.Helper()
	kb, err := kbstore.ParseYAML("testKB", []byte(`
architectures:
  - {name: x86, isa: x86_64, cores: 10, threads: 20, core_mhz: 2500, memory_mb: 65536, power_watts: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200]}
  - {name: arm, isa: aarch64, cores: 10, threads: 10, core_mhz: 3000, memory_mb: 65536, power_watts: [20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70]}
tags:
  - name: web
    candidates: [{architecture: arm, performance_factor: 0.5}, {architecture: x86, performance_factor: 1}]
  - name: db
    candidates: [{architecture: x86, flavor: big, performance_factor: 1}, {architecture: arm, flavor: big, performance_factor: 0.5}]
  - name: pinned
    mode: exact
    candidates: [{architecture: arm, performance_factor: 1}]
flavors:
  - {name: small, vcpus: 1, memory_mb: 1024, root_gb: 10}
  - {name: medium, vcpus: 2, memory_mb: 4096, root_gb: 20}
  - {name: big, vcpus: 8, memory_mb: 32768, root_gb: 100, extra_specs: {"ecrae:tag": db}, tags: [db]}
  - {name: webby, vcpus: 2, memory_mb: 2048, root_gb: 20, tags: [web]}
`))
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// errText returns err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func lines(s ...string) string { return strings.Join(s, "\n") + "\n" }
