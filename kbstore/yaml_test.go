package kbstore

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// archYAML is a valid architecture entry, to build test documents from.
const archYAML = `  - name: x86-a
    isa: x86_64
    cores: 8
    threads: 16
    memory_mb: 65536
    power_watts: [50, 70, 90, 110, 130, 150, 170, 190, 210, 230, 250]
`

// parseCase is one invalid YAML document and the exact error it must give.
type parseCase struct {
	name string
	yaml string
	want string
}

func parseCases() []parseCase {
	return []parseCase{
		{
			// Strict: a typo must not be silently ignored.
			name: "unknown field",
			yaml: "schema_version: 1\narchitectures:\n" + archYAML + "    cpus: 4\n",
			want: `kb.yaml:9: architectures[0].cpus: unknown field "cpus" (did you mean "cpu"?) (known: name, isa, cpu, sockets, cores, threads, core_mhz, memory_mb, disk_gb, power_watts, ssj_ops_100, ssj_ops_per_watt, year, source, estimate, note)`,
		},
		{
			// Top-level keys are checked too.
			name: "unknown top-level field",
			yaml: "schema_version: 1\nmachines: []\n",
			want: `kb.yaml:2: machines: unknown field "machines" (known: schema_version, architectures, tags, flavors, hosts)`,
		},
		{
			// Wrong scalar type, reported at the value's line.
			name: "string for an integer",
			yaml: "architectures:\n  - name: a\n    isa: x86_64\n    cores: many\n",
			want: `kb.yaml:4: architectures[0].cores: expected an integer, got "many"`,
		},
		{
			// yaml.v3 alone would truncate 1.5 to 1.
			name: "fraction for an integer",
			yaml: "flavors:\n  - name: f\n    vcpus: 1.5\n    memory_mb: 1024\n",
			want: `kb.yaml:3: flavors[0].vcpus: expected an integer, got "1.5"`,
		},
		{
			// A scalar where a list belongs.
			name: "scalar for a list",
			yaml: "architectures:\n" + strings.Replace(archYAML, "[50, 70, 90, 110, 130, 150, 170, 190, 210, 230, 250]", "250", 1),
			want: `kb.yaml:7: architectures[0].power_watts: expected a list, got "250"`,
		},
		{
			// yaml.v3's Node API does not reject duplicate keys; we do.
			name: "duplicate key",
			yaml: "architectures:\n" + archYAML + "    cores: 4\n",
			want: "kb.yaml:8: architectures[0].cores: duplicate key (first at line 4)",
		},
		{
			// Validation errors are mapped back to the offending node's line.
			name: "validation error mapped to its line",
			yaml: "architectures:\n" + archYAML + "tags:\n  - name: web\n    candidates:\n      - architecture: x86-a\n        performance_factor: 0\n",
			want: "kb.yaml:12: tags[0].candidates[0].performance_factor: must be > 0 (1 = the tag's reference)",
		},
		{
			// An element of a flow list has its own position; the line is the list's.
			name: "decreasing curve",
			yaml: "architectures:\n" + strings.Replace(archYAML, "110, 130", "110, 100", 1),
			want: "kb.yaml:7: architectures[0].power_watts[4]: 100 W is below the previous point 110 W; the curve must not decrease",
		},
		{
			// A missing required field points at the entity.
			name: "missing field points at the entity",
			yaml: "architectures:\n" + strings.Replace(archYAML, "    cores: 8\n", "", 1),
			want: "kb.yaml:2: architectures[0].cores: must be > 0, got 0",
		},
		{
			// A dangling reference, found after decoding, still gets a line.
			name: "dangling flavor tag",
			yaml: "flavors:\n  - name: f\n    vcpus: 1\n    memory_mb: 1024\n    tags: [web]\n",
			want: `kb.yaml:5: flavors[0].tags[0]: tag "web" does not exist`,
		},
		{
			// Strict ISA names, with the allowed list in the message.
			name: "isa alias",
			yaml: "architectures:\n" + strings.Replace(archYAML, "x86_64", "amd64", 1),
			want: `kb.yaml:3: architectures[0].isa: unknown ISA "amd64"; must be one of x86_64, aarch64, ppc64le, s390x, riscv64`,
		},
		{
			// Syntax errors keep yaml.v3's line, which for this error is
			// where the broken block (the list item) starts.
			name: "syntax error",
			yaml: "architectures:\n  - name: a\n\tisa: x\n",
			want: "kb.yaml:2: invalid YAML: found a tab character that violates indentation",
		},
		{
			// An empty file is more likely a mistake than a wish to import nothing.
			name: "empty file",
			yaml: "# only a comment\n",
			want: "kb.yaml: empty document: expected a mapping with schema_version, architectures, tags, flavors and hosts",
		},
		{
			// Only one document per file, so nothing is silently ignored.
			name: "two documents",
			yaml: "schema_version: 1\n---\nschema_version: 1\n",
			want: "kb.yaml:2: a second YAML document; a KB file holds exactly one",
		},
		{
			// The top level is a mapping.
			name: "top-level list",
			yaml: "- a\n- b\n",
			want: `kb.yaml:1: the top level must be a mapping, got a list`,
		},
		{
			// A newer format is refused even in YAML.
			name: "schema from the future",
			yaml: "schema_version: 7\n",
			want: "kb.yaml:1: schema_version: unsupported schema version 7 (this binary reads 1; 0 or absent means 1)",
		},
		{
			// An alias that contains itself must fail cleanly, at the alias.
			name: "self-referencing alias",
			yaml: "tags: &t\n  - *t\n",
			want: "kb.yaml:2: tags[0]: expected a mapping, got a list",
		},
		{
			// A password in a power endpoint is refused at its line, and
			// not quoted back.
			name: "power endpoint with credentials",
			yaml: "architectures:\n  - {name: a, isa: x86_64, cores: 1, threads: 1, memory_mb: 1, power_watts: [1,2,3,4,5,6,7,8,9,10,11]}\nhosts:\n  - name: h\n    architecture: a\n    power: ipmi://admin:s3cret@10.0.0.1\n",
			want: "kb.yaml:6: hosts[0].power: must not carry credentials (put them in serve's --power-credentials file)",
		},
		{
			// Merge keys would hide where a value came from.
			name: "merge key",
			yaml: "hosts:\n  - &h {name: a, architecture: b}\n  - <<: *h\n    name: c\n",
			want: "kb.yaml:3: hosts[1]: merge keys (<<) are not supported",
		},
	}
}

func TestParseYAMLErrors(t *testing.T) {
	for _, tc := range parseCases() {
		t.Run(tc.name, func(t *testing.T) {
			kb, err := ParseYAML("kb.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseYAML() = %+v, want error %q", kb, tc.want)
			}
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("ParseYAML() error %T %v, want *ValidationError", err, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("ParseYAML() error\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestParseYAMLAliases(t *testing.T) {
	// Anchors are handy to share a curve between similar models.
	doc := `schema_version: 1
architectures:
  - name: a
    isa: x86_64
    cores: 8
    threads: 16
    memory_mb: 1024
    power_watts: &curve [50, 70, 90, 110, 130, 150, 170, 190, 210, 230, 250]
  - name: b
    isa: x86_64
    cores: 8
    threads: 8
    memory_mb: 1024
    power_watts: *curve
`
	kb, err := ParseYAML("kb.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kb.Architectures[0].PowerWatts, kb.Architectures[1].PowerWatts); diff != "" {
		t.Errorf("aliased curve differs (-a +b):\n%s", diff)
	}
}

func TestParseYAMLAliasBomb(t *testing.T) {
	// "Billion laughs": each level doubles; without a budget this expands
	// to 2^30 nodes.
	var b strings.Builder
	b.WriteString("x0: &a0 [1, 1]\n")
	for i := 1; i <= 30; i++ {
		b.WriteString("x" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [*a" + strconv.Itoa(i-1) + ", *a" + strconv.Itoa(i-1) + "]\n")
	}
	b.WriteString("tags: *a30\n")
	start := time.Now()
	_, err := ParseYAML("bomb.yaml", []byte(b.String()))
	if err == nil {
		t.Fatal("ParseYAML accepted an alias bomb")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("ParseYAML took %v on an alias bomb", time.Since(start))
	}
}

func TestParseYAMLNormalises(t *testing.T) {
	// Empty lists and maps decode to nil and a missing version to the
	// current one, so parsed and stored KBs compare equal.
	doc := `architectures: []
tags: []
flavors:
  - {name: f, vcpus: 1, memory_mb: 512, extra_specs: {}, tags: []}
hosts: ~
`
	kb, err := ParseYAML("kb.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := &KB{SchemaVersion: CurrentSchemaVersion, Flavors: []Flavor{{Name: "f", VCPUs: 1, MemoryMB: 512}}}
	if diff := cmp.Diff(want, kb); diff != "" {
		t.Errorf("ParseYAML (-want +got):\n%s", diff)
	}
}

func TestRoundTripThroughStore(t *testing.T) {
	ctx := context.Background()
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, tempDB(t))
	if err := s.Import(ctx, def, true); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(def), snap); diff != "" {
		t.Fatalf("Snapshot differs from the imported default (-want +got):\n%s", diff)
	}
	out, err := EncodeYAML(snap)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseYAML("export.yaml", out)
	if err != nil {
		t.Fatalf("ParseYAML(EncodeYAML(snapshot)): %v\n%s", err, out)
	}
	if diff := cmp.Diff(snap, back); diff != "" {
		t.Errorf("EncodeYAML→ParseYAML changed the KB (-snapshot +parsed):\n%s", diff)
	}
}

func TestEncodeYAMLDeterministic(t *testing.T) {
	kb := testKB()
	a, err := EncodeYAML(kb)
	if err != nil {
		t.Fatal(err)
	}
	// Reverse every list: the output is sorted by name, so it must not change.
	rev := kb.clone()
	for i, j := 0, len(rev.Tags)-1; i < j; i, j = i+1, j-1 {
		rev.Tags[i], rev.Tags[j] = rev.Tags[j], rev.Tags[i]
	}
	rev.Architectures[0], rev.Architectures[1] = rev.Architectures[1], rev.Architectures[0]
	b, err := EncodeYAML(rev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("EncodeYAML depends on input order:\n%s\n---\n%s", a, b)
	}
	// Candidate order is preference, so it must survive.
	back, err := ParseYAML("t.yaml", a)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(kb), back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Large numbers print plainly, not as 8e+05.
	if !bytes.Contains(a, []byte("ssj_ops_100: 800000\n")) {
		t.Errorf("EncodeYAML printed ssj_ops_100 oddly:\n%s", a)
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{5811114, "5811114"}, {0.1, "0.1"}, {49.8, "49.8"}, {0, "0"}, {-2.5, "-2.5"},
		{1e-7, "1e-07"}, {1e21, "1e+21"}, {math.Inf(1), ".inf"}, {math.NaN(), ".nan"},
	} {
		if got := formatFloat(tc.in); got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDefaultKB checks the embedded KB against the brief and its own
// derivation: factors are (ssj_ops_100 / threads) relative to the R740.
func TestDefaultKB(t *testing.T) {
	kb, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	archs := map[string]Architecture{}
	isas := map[string]int{}
	for _, a := range kb.Architectures {
		archs[a.Name] = a
		isas[a.ISA]++
		if a.Source == "" {
			t.Errorf("architecture %s has no source", a.Name)
		}
		if !a.Estimate && !strings.Contains(a.Source, "https://www.spec.org/power_ssj2008/results/") {
			t.Errorf("architecture %s: measured curve without a SPEC result URL in source", a.Name)
		}
		if a.Estimate && !strings.Contains(a.Note, "ASSUMPTION") {
			t.Errorf("architecture %s: estimate without its assumptions in note", a.Name)
		}
	}
	if isas[ISAx86_64] < 4 || isas[ISAAarch64] < 1 || isas[ISAPpc64le] < 1 {
		t.Errorf("ISA mix = %v, want >= 4 x86_64, an aarch64 and a ppc64le", isas)
	}
	for _, name := range []string{"default", "cpu-intensive", "memory-intensive", "io-intensive", "web-frontend", "database", "batch", "arm-native"} {
		if !slices.ContainsFunc(kb.Tags, func(tg Tag) bool { return tg.Name == name && tg.Source != "" }) {
			t.Errorf("default KB lacks tag %q with a source", name)
		}
	}
	if len(kb.Hosts) != 0 {
		t.Errorf("default KB has %d hosts, want none", len(kb.Hosts))
	}

	// Every data-derived factor must follow from the curves it cites.
	ref := archs["dell-r740-xeon-8280"]
	perThread := func(a Architecture) float64 {
		ops := a.SSJOps100
		if ops == 0 { // unpublished: overall ssj_ops/W × Σ power / 5.5
			var sum float64
			for _, w := range a.PowerWatts {
				sum += w
			}
			ops = a.SSJOpsPerWatt * sum / 5.5
		}
		return ops / float64(a.Threads)
	}
	for _, tg := range kb.Tags {
		if !strings.HasPrefix(tg.Source, "Factors: data") {
			continue
		}
		for _, c := range tg.Candidates {
			a := archs[c.Architecture]
			if a.Estimate {
				continue
			}
			want := math.Round(perThread(a)/perThread(ref)*100) / 100
			if c.PerformanceFactor != want {
				t.Errorf("tag %s, %s: performance_factor %v, data gives %v", tg.Name, a.Name, c.PerformanceFactor, want)
			}
		}
	}
}

// TestPowerEndpointRoundTrip: the endpoint survives the store, the export
// and the import.
func TestPowerEndpointRoundTrip(t *testing.T) {
	ctx := context.Background()
	kb := testKB()
	kb.Hosts[0].Power = "redfish://bmc-1:8443/Systems/1"
	s := openStore(t, tempDB(t))
	if err := s.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := EncodeYAML(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "power: redfish://bmc-1:8443/Systems/1") {
		t.Errorf("export lacks the endpoint:\n%s", out)
	}
	back, err := ParseYAML("export.yaml", out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap, back); diff != "" {
		t.Errorf("round trip (-snapshot +parsed):\n%s", diff)
	}
}
