package kbstore

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// validateCase mutates testKB() into an invalid KB; want is the exact error.
type validateCase struct {
	name   string
	mutate func(kb *KB)
	want   string
}

func validateCases() []validateCase {
	return []validateCase{
		{
			// A newer format may mean things this binary does not know.
			name:   "schema version from the future",
			mutate: func(kb *KB) { kb.SchemaVersion = 2 },
			want:   "schema_version: unsupported schema version 2 (this binary reads 1; 0 or absent means 1)",
		},
		{
			// Names are bbolt keys; empty keys are impossible.
			name:   "empty architecture name",
			mutate: func(kb *KB) { kb.Architectures[1].Name = "" },
			want:   "architectures[1].name: must not be empty",
		},
		{
			// Spaces are outside [A-Za-z0-9._-].
			name:   "architecture name with a space",
			mutate: func(kb *KB) { kb.Architectures[0].Name = "x86 a" },
			want:   `architectures[0].name: "x86 a" may only contain letters, digits, '.', '_' and '-'`,
		},
		{
			// Names are keys, so they must be unique per kind.
			name:   "duplicate architecture",
			mutate: func(kb *KB) { kb.Architectures[1].Name = "x86-a" },
			want:   `architectures[1].name: duplicate architecture name "x86-a" (first defined at architectures[0])`,
		},
		{
			// Aliases are refused: one spelling per ISA keeps matching exact.
			name:   "isa alias amd64",
			mutate: func(kb *KB) { kb.Architectures[0].ISA = "amd64" },
			want:   `architectures[0].isa: unknown ISA "amd64"; must be one of x86_64, aarch64, ppc64le, s390x, riscv64`,
		},
		{
			// Capacity is counted in cores; zero cores cannot host anything.
			name:   "zero cores",
			mutate: func(kb *KB) { kb.Architectures[0].Cores = 0 },
			want:   "architectures[0].cores: must be > 0, got 0",
		},
		{
			// Every core runs at least one hardware thread.
			name:   "fewer threads than cores",
			mutate: func(kb *KB) { kb.Architectures[0].Threads = 4 },
			want:   "architectures[0].threads: must be >= cores (8), got 4",
		},
		{
			// A model without memory cannot take any flavor.
			name:   "zero memory",
			mutate: func(kb *KB) { kb.Architectures[1].MemoryMB = 0 },
			want:   "architectures[1].memory_mb: must be > 0, got 0",
		},
		{
			// The curve must have the 11 SPECpower load levels.
			name:   "curve too short",
			mutate: func(kb *KB) { kb.Architectures[0].PowerWatts = kb.Architectures[0].PowerWatts[:10] },
			want:   "architectures[0].power_watts: must have 11 values (active idle, then 10 % ... 100 % load), got 10",
		},
		{
			// More load never costs less power; a dip is a typo.
			name:   "curve decreases",
			mutate: func(kb *KB) { kb.Architectures[0].PowerWatts[5] = 100 },
			want:   "architectures[0].power_watts[5]: 100 W is below the previous point 130 W; the curve must not decrease",
		},
		{
			// Negative watts are meaningless.
			name:   "negative idle power",
			mutate: func(kb *KB) { kb.Architectures[1].PowerWatts[0] = -1 },
			want:   "architectures[1].power_watts[0]: must be >= 0, got -1",
		},
		{
			// NaN passes every comparison and cannot be stored as JSON.
			name:   "NaN in curve",
			mutate: func(kb *KB) { kb.Architectures[1].PowerWatts[3] = math.NaN() },
			want:   "architectures[1].power_watts[3]: must be a finite number, got NaN",
		},
		{
			// An all-zero curve would make the model look free.
			name:   "zero curve",
			mutate: func(kb *KB) { kb.Architectures[1].PowerWatts = make([]float64, PowerPoints) },
			want:   "architectures[1].power_watts[10]: power at 100 % load must be > 0",
		},
		{
			// Published throughput is never negative.
			name:   "negative ssj_ops",
			mutate: func(kb *KB) { kb.Architectures[0].SSJOps100 = -5 },
			want:   "architectures[0].ssj_ops_100: must be >= 0, got -5",
		},
		{
			// Only exact and hint exist (seed §4.2.1).
			name:   "unknown mode",
			mutate: func(kb *KB) { kb.Tags[0].Mode = "strict" },
			want:   `tags[0].mode: unknown mode "strict"; must be "exact" or "hint" (empty means "hint")`,
		},
		{
			// A tag that names nothing cannot steer placement.
			name:   "no candidates",
			mutate: func(kb *KB) { kb.Tags[2].Candidates = nil },
			want:   "tags[2].candidates: must list at least one candidate",
		},
		{
			// Exact mode forces one architecture; two is ambiguous.
			name: "exact with two candidates",
			mutate: func(kb *KB) {
				kb.Tags[1].Candidates = append(kb.Tags[1].Candidates, Candidate{Architecture: "arm-b", PerformanceFactor: 1})
			},
			want: "tags[1].candidates: an exact tag pins one architecture, so it needs exactly 1 candidate, got 2",
		},
		{
			// A candidate must say where the workload may run.
			name:   "candidate with neither architecture nor isa",
			mutate: func(kb *KB) { kb.Tags[0].Candidates[1].Architecture = "" },
			want:   "tags[0].candidates[1]: needs an architecture or an isa",
		},
		{
			// Referential integrity: tag → architecture.
			name:   "candidate names a missing architecture",
			mutate: func(kb *KB) { kb.Tags[0].Candidates[0].Architecture = "power9" },
			want:   `tags[0].candidates[0].architecture: architecture "power9" does not exist`,
		},
		{
			// An isa that disagrees with the named architecture is a mistake.
			name:   "candidate isa contradicts architecture",
			mutate: func(kb *KB) { kb.Tags[1].Candidates[0].ISA = ISAAarch64 },
			want:   `tags[1].candidates[0].isa: "aarch64" contradicts architecture "x86-a", whose isa is "x86_64"`,
		},
		{
			// Candidate ISAs follow the same closed list.
			name:   "candidate isa unknown",
			mutate: func(kb *KB) { kb.Tags[2].Candidates[0].ISA = "sparc64" },
			want:   `tags[2].candidates[0].isa: unknown ISA "sparc64"; must be one of x86_64, aarch64, ppc64le, s390x, riscv64`,
		},
		{
			// Referential integrity: candidate → flavor.
			name:   "candidate names a missing flavor",
			mutate: func(kb *KB) { kb.Tags[0].Candidates[1].Flavor = "huge" },
			want:   `tags[0].candidates[1].flavor: flavor "huge" does not exist`,
		},
		{
			// Zero work per second would make energy per work infinite.
			name:   "zero performance factor",
			mutate: func(kb *KB) { kb.Tags[0].Candidates[0].PerformanceFactor = 0 },
			want:   "tags[0].candidates[0].performance_factor: must be > 0 (1 = the tag's reference)",
		},
		{
			// Negative work is meaningless.
			name:   "negative performance factor",
			mutate: func(kb *KB) { kb.Tags[2].Candidates[0].PerformanceFactor = -1 },
			want:   "tags[2].candidates[0].performance_factor: must be >= 0, got -1",
		},
		{
			// Utilisation is a share of the host.
			name:   "candidate ceiling above 1",
			mutate: func(kb *KB) { kb.Tags[0].Candidates[0].UtilizationCeiling = 1.5 },
			want:   "tags[0].candidates[0].utilization_ceiling: must be between 0 and 1, got 1.5",
		},
		{
			// CPU load is a share of a vCPU.
			name:   "negative cpu load",
			mutate: func(kb *KB) { kb.Tags[0].CPULoad = -0.1 },
			want:   "tags[0].cpu_load: must be >= 0, got -0.1",
		},
		{
			// The same candidate twice would be counted twice.
			name: "duplicate candidate",
			mutate: func(kb *KB) {
				kb.Tags[0].Candidates = append(kb.Tags[0].Candidates, Candidate{Architecture: "arm-b", PerformanceFactor: 2})
			},
			want: "tags[0].candidates[2]: duplicates tags[0].candidates[0]",
		},
		{
			// A flavor without vCPUs cannot be scheduled.
			name:   "flavor without vcpus",
			mutate: func(kb *KB) { kb.Flavors[0].VCPUs = 0 },
			want:   "flavors[0].vcpus: must be > 0, got 0",
		},
		{
			// Nor without memory.
			name:   "flavor without memory",
			mutate: func(kb *KB) { kb.Flavors[0].MemoryMB = -1 },
			want:   "flavors[0].memory_mb: must be > 0, got -1",
		},
		{
			// Disk sizes are never negative.
			name:   "negative swap",
			mutate: func(kb *KB) { kb.Flavors[0].SwapMB = -1 },
			want:   "flavors[0].swap_mb: must be >= 0, got -1",
		},
		{
			// Nova rejects empty extra_spec keys.
			name:   "empty extra_spec key",
			mutate: func(kb *KB) { kb.Flavors[0].ExtraSpecs[""] = "x" },
			want:   "flavors[0].extra_specs: keys must not be empty",
		},
		{
			// Referential integrity: flavor → tag.
			name:   "flavor names a missing tag",
			mutate: func(kb *KB) { kb.Flavors[0].Tags[1] = "db" },
			want:   `flavors[0].tags[1]: tag "db" does not exist`,
		},
		{
			// A repeated tag is a copy-paste slip.
			name:   "flavor repeats a tag",
			mutate: func(kb *KB) { kb.Flavors[0].Tags[1] = "web" },
			want:   "flavors[0].tags[1]: duplicates flavors[0].tags[0]",
		},
		{
			// Referential integrity: host → architecture.
			name:   "host names a missing architecture",
			mutate: func(kb *KB) { kb.Hosts[0].Architecture = "mystery" },
			want:   `hosts[0].architecture: architecture "mystery" does not exist`,
		},
		{
			// A host without a model cannot be scored.
			name:   "host without architecture",
			mutate: func(kb *KB) { kb.Hosts[0].Architecture = "" },
			want:   "hosts[0].architecture: must name an architecture",
		},
		{
			// Infinity is not a power cap.
			name:   "infinite power cap",
			mutate: func(kb *KB) { kb.Hosts[0].PowerCapWatts = math.Inf(1) },
			want:   "hosts[0].power_cap_watts: must be a finite number, got +Inf",
		},
		{
			// Credentials in the KB would leak through every export.
			name:   "power endpoint with credentials",
			mutate: func(kb *KB) { kb.Hosts[0].Power = "ipmi://admin:pw@10.0.0.5:623" },
			want:   "hosts[0].power: must not carry credentials (put them in serve's --power-credentials file)",
		},
		{
			name:   "power endpoint with an unknown scheme",
			mutate: func(kb *KB) { kb.Hosts[0].Power = "wol://10.0.0.5" },
			want:   `hosts[0].power: "wol://10.0.0.5": scheme must be ipmi, redfish or ironic`,
		},
		{
			// A Redfish endpoint names the ComputerSystem to reset.
			name:   "redfish endpoint without a system",
			mutate: func(kb *KB) { kb.Hosts[0].Power = "redfish://bmc-1/redfish/v1" },
			want:   `hosts[0].power: "redfish://bmc-1/redfish/v1": want redfish://ADDR[:PORT]/Systems/ID`,
		},
		{
			name:   "ipmi port out of range",
			mutate: func(kb *KB) { kb.Hosts[0].Power = "ipmi://10.0.0.5:70000" },
			want:   `hosts[0].power: "ipmi://10.0.0.5:70000": port must be 1-65535`,
		},
		{
			name:   "ironic endpoint with a path",
			mutate: func(kb *KB) { kb.Hosts[0].Power = "ironic://node/x" },
			want:   `hosts[0].power: "ironic://node/x": want ironic://NODE_UUID`,
		},
		{
			// Host names are Nova compute names: unique.
			name:   "duplicate host",
			mutate: func(kb *KB) { kb.Hosts = append(kb.Hosts, Host{Name: "node-1", Architecture: "arm-b"}) },
			want:   `hosts[1].name: duplicate host name "node-1" (first defined at hosts[0])`,
		},
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range validateCases() {
		t.Run(tc.name, func(t *testing.T) {
			kb := testKB()
			tc.mutate(kb)
			err := Validate(kb)
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Validate() error\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		kb   *KB
	}{
		{"test KB", testKB()},
		{"default KB", def},
		{"empty KB", &KB{}},
		// 0 means "current": hand-written files may omit the version.
		{"schema version omitted", func() *KB { kb := testKB(); kb.SchemaVersion = 0; return kb }()},
		// An empty mode means hint.
		{"mode omitted", func() *KB { kb := testKB(); kb.Tags[0].Mode = ""; return kb }()},
		// Ceilings and loads of exactly 0 and 1 are inside [0,1].
		{"share bounds", func() *KB {
			kb := testKB()
			kb.Tags[0].UtilizationCeiling, kb.Tags[0].CPULoad = 1, 0
			return kb
		}()},
		// The three power endpoint forms.
		{"power endpoints", func() *KB {
			kb := testKB()
			kb.Hosts[0].Power = "ipmi://10.0.0.5:623"
			kb.Hosts = append(kb.Hosts,
				Host{Name: "node-r", Architecture: "arm-b", Power: "redfish://bmc-r/Systems/1"},
				Host{Name: "node-i", Architecture: "arm-b", Power: "ironic://1be26c0b-03f2-4d2e-ae87-c02d7f33c123"})
			return kb
		}()},
		// A flat curve is non-decreasing.
		{"flat curve", func() *KB { kb := testKB(); kb.Architectures[0].PowerWatts = linearCurve(100, 100); return kb }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate(tc.kb); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidationErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  ValidationError
		want string
	}{
		{ValidationError{File: "kb.yaml", Line: 3, Field: "tags[0].name", Msg: "bad"}, "kb.yaml:3: tags[0].name: bad"},
		{ValidationError{File: "kb.yaml", Field: "tags[0].name", Msg: "bad"}, "kb.yaml: tags[0].name: bad"},
		{ValidationError{Line: 7, Msg: "bad"}, "line 7: bad"},
		{ValidationError{Field: "tag.mode", Msg: "bad"}, "tag.mode: bad"},
		{ValidationError{Msg: "bad"}, "bad"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// CheckYAML reports every invalid entity, with a suggestion for a
// misspelt reference, where ParseYAML stops at the first.
func TestCheckYAMLEveryError(t *testing.T) {
	doc := `
architectures:
  - {name: a1, isa: x86_64, cpu: c, sockets: 1, cores: 2, threads: 4, core_mhz: 2000, memory_mb: 1024, disk_gb: 10,
     power_watts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
tags:
  - {name: web, candidates: [{architecture: a11, performance_factor: 1}]}
flavors:
  - {name: small, vcpus: 1, memory_mb: 512, tags: [webb]}
hosts:
  - {name: h1, architecture: a1x}
  - {name: h2, architecture: a1}
`
	errs := CheckYAML("kb.yaml", []byte(doc), nil)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`kb.yaml:6: tags[0].candidates[0].architecture: architecture "a11" does not exist (did you mean "a1"?)`,
		`kb.yaml:8: flavors[0].tags[0]: tag "webb" does not exist (did you mean "web"?)`,
		`kb.yaml:10: hosts[0].architecture: architecture "a1x" does not exist (did you mean "a1"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := ParseYAML("kb.yaml", []byte(doc)); err == nil || err.Error() != want[0] {
		t.Errorf("ParseYAML: %v, want the first of them", err)
	}
}

// Entries that do not decode are each reported, a misspelt field with a
// suggestion.
func TestCheckYAMLEveryDecodeError(t *testing.T) {
	doc := "hosts:\n  - {name: h1, architecure: a1}\n  - {name: h2, architecture: a1}\n  - {name: h3, power_cap_watts: lots}\n"
	var got []string
	for _, e := range CheckYAML("kb.yaml", []byte(doc), nil) {
		got = append(got, e.Error())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], `kb.yaml:2: hosts[0].architecure: unknown field "architecure" (did you mean "architecture"?`) ||
		!strings.HasPrefix(got[1], "kb.yaml:4: hosts[2].power_cap_watts: expected a number") {
		t.Errorf("got\n%s", strings.Join(got, "\n"))
	}
}

// validateAll reports every independent problem of an entity, in check
// order, and skips a check that depends on one that failed; Validate
// (writes) still returns the first of them.
func TestValidateAllReportsEveryProblem(t *testing.T) {
	const isas = "must be one of x86_64, aarch64, ppc64le, s390x, riscv64"
	for _, tc := range []struct {
		name   string
		mutate func(kb *KB)
		want   []string
	}{
		{
			// threads (16) >= cores is not checked against cores 0; the
			// tag pinning x86-a with isa x86_64 now contradicts it.
			name: "architecture with a bad isa, no cores and a short curve",
			mutate: func(kb *KB) {
				a := &kb.Architectures[0]
				a.ISA, a.Cores, a.PowerWatts = "amd64", 0, a.PowerWatts[:10]
			},
			want: []string{
				`architectures[0].isa: unknown ISA "amd64"; ` + isas,
				"architectures[0].cores: must be > 0, got 0",
				"architectures[0].power_watts: must have 11 values (active idle, then 10 % ... 100 % load), got 10",
				`tags[1].candidates[0].isa: "x86_64" contradicts architecture "x86-a", whose isa is "amd64"`,
			},
		},
		{
			// linearCurve(50, 250) is 50, 70, ..., 250. [2] = 90 is not
			// compared with the bad [1], nor [4] = 130 with the NaN [3];
			// [5] = 10 < 130 and [10] = 0 < 230 decrease, and [10] gets
			// that one problem, not also "must be > 0".
			name: "curve with several bad points",
			mutate: func(kb *KB) {
				w := kb.Architectures[0].PowerWatts
				w[1], w[3], w[5], w[10] = -1, math.NaN(), 10, 0
			},
			want: []string{
				"architectures[0].power_watts[1]: must be >= 0, got -1",
				"architectures[0].power_watts[3]: must be a finite number, got NaN",
				"architectures[0].power_watts[5]: 10 W is below the previous point 130 W; the curve must not decrease",
				"architectures[0].power_watts[10]: 0 W is below the previous point 230 W; the curve must not decrease",
			},
		},
		{
			// A bad name still lets the host's other fields be checked.
			name: "host with a bad name, a missing architecture and a NaN cap",
			mutate: func(kb *KB) {
				h := &kb.Hosts[0]
				h.Name, h.Architecture, h.PowerCapWatts, h.Power = "node 1", "mystery", math.NaN(), "wol://x"
			},
			want: []string{
				`hosts[0].name: "node 1" may only contain letters, digits, '.', '_' and '-'`,
				`hosts[0].architecture: architecture "mystery" does not exist`,
				"hosts[0].power_cap_watts: must be a finite number, got NaN",
				`hosts[0].power: "wol://x": scheme must be ipmi, redfish or ironic`,
			},
		},
		{
			// The unknown isa hides the contradiction with arm-b (aarch64).
			name: "tag with a bad mode, load and candidates",
			mutate: func(kb *KB) {
				tg := &kb.Tags[0]
				tg.Mode, tg.CPULoad = "strict", -0.1
				tg.Candidates[0].ISA, tg.Candidates[0].PerformanceFactor = "sparc64", 0
				tg.Candidates[1].Flavor = "huge"
			},
			want: []string{
				`tags[0].mode: unknown mode "strict"; must be "exact" or "hint" (empty means "hint")`,
				"tags[0].cpu_load: must be >= 0, got -0.1",
				`tags[0].candidates[0].isa: unknown ISA "sparc64"; ` + isas,
				"tags[0].candidates[0].performance_factor: must be > 0 (1 = the tag's reference)",
				`tags[0].candidates[1].flavor: flavor "huge" does not exist`,
			},
		},
		{
			// A broken candidate is not also called a duplicate; a sound
			// one is.
			name: "tag with duplicate candidates",
			mutate: func(kb *KB) {
				tg := &kb.Tags[0]
				tg.Candidates = append(tg.Candidates,
					Candidate{Architecture: "arm-b", PerformanceFactor: -1},
					Candidate{Architecture: "arm-b", PerformanceFactor: 2})
			},
			want: []string{
				"tags[0].candidates[2].performance_factor: must be >= 0, got -1",
				"tags[0].candidates[3]: duplicates tags[0].candidates[0]",
			},
		},
		{
			name: "flavor with bad sizes and tags",
			mutate: func(kb *KB) {
				f := &kb.Flavors[0]
				f.VCPUs, f.SwapMB, f.Tags = 0, -1, []string{"web", "db", "", "web"}
			},
			want: []string{
				"flavors[0].vcpus: must be > 0, got 0",
				"flavors[0].swap_mb: must be >= 0, got -1",
				`flavors[0].tags[1]: tag "db" does not exist`,
				"flavors[0].tags[2]: must not be empty",
				"flavors[0].tags[3]: duplicates flavors[0].tags[0]",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kb := testKB()
			tc.mutate(kb)
			var got []string
			for _, e := range validateAll(kb, indexPaths, 0) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if err := Validate(kb); err == nil || err.Error() != tc.want[0] {
				t.Errorf("Validate() = %v, want the first: %s", err, tc.want[0])
			}
			if capped := validateAll(kb, indexPaths, 2); len(capped) != 2 || capped[1].Error() != tc.want[1] {
				t.Errorf("max 2: got %v, want the first two", capped)
			}
		})
	}
}

// CheckYAML gives each of an entity's problems its own line, in check
// order; a missing field gets the entity's line. ParseYAML (import) stops
// at the first.
func TestCheckYAMLEveryProblemOfAnEntity(t *testing.T) {
	doc := `architectures:
  - name: a1
    isa: amd64
    cores: 0
    threads: 4
    power_watts: [1, 2, 3]
hosts:
  - {name: h1, architecture: a1, power_cap_watts: -5}
`
	var got []string
	for _, e := range CheckYAML("kb.yaml", []byte(doc), nil) {
		got = append(got, e.Error())
	}
	want := []string{
		`kb.yaml:3: architectures[0].isa: unknown ISA "amd64"; must be one of x86_64, aarch64, ppc64le, s390x, riscv64`,
		"kb.yaml:4: architectures[0].cores: must be > 0, got 0",
		"kb.yaml:2: architectures[0].memory_mb: must be > 0, got 0",
		"kb.yaml:6: architectures[0].power_watts: must have 11 values (active idle, then 10 % ... 100 % load), got 3",
		"kb.yaml:8: hosts[0].power_cap_watts: must be >= 0, got -5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := ParseYAML("kb.yaml", []byte(doc)); err == nil || err.Error() != want[0] {
		t.Errorf("ParseYAML: %v, want the first of them", err)
	}
}
