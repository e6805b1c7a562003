package kbstore

import (
	"maps"
	"slices"
	"strings"
)

// CurrentSchemaVersion is the KB format (YAML and bbolt layout) this binary
// reads and writes. A YAML file may omit it (0 means current).
const CurrentSchemaVersion = 1

// Tag modes (seed §4.2.1). An empty Mode means ModeHint.
const (
	// ModeExact pins the workload to its single candidate.
	ModeExact = "exact"
	// ModeHint makes the candidates a preference list.
	ModeHint = "hint"
)

// ISA names accepted in architectures and candidates, spelled as Nova's
// cpu_info arch reports them.
const (
	ISAx86_64  = "x86_64"
	ISAAarch64 = "aarch64"
	ISAPpc64le = "ppc64le"
	ISAS390x   = "s390x"
	ISARiscv64 = "riscv64"
)

// PowerPoints is the length of Architecture.PowerWatts: active idle, then
// 10 %, 20 %, ... 100 % load, as SPECpower_ssj2008 reports them.
const PowerPoints = 11

// ISAs returns the accepted ISA names.
func ISAs() []string {
	return []string{ISAx86_64, ISAAarch64, ISAPpc64le, ISAS390x, ISARiscv64}
}

// KB is the whole knowledge base: the unit of YAML import/export.
type KB struct {
	SchemaVersion int            `yaml:"schema_version" json:"schema_version"`
	Architectures []Architecture `yaml:"architectures" json:"architectures"`
	Tags          []Tag          `yaml:"tags" json:"tags"`
	Flavors       []Flavor       `yaml:"flavors" json:"flavors"`
	Hosts         []Host         `yaml:"hosts" json:"hosts"`
}

// Architecture is a host model with a SPECpower-style power curve.
type Architecture struct {
	Name    string  `yaml:"name" json:"name"`
	ISA     string  `yaml:"isa" json:"isa"`
	CPU     string  `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	Sockets int     `yaml:"sockets,omitempty" json:"sockets,omitempty"`
	Cores   int     `yaml:"cores" json:"cores"`
	Threads int     `yaml:"threads" json:"threads"`
	CoreMHz float64 `yaml:"core_mhz,omitempty" json:"core_mhz,omitempty"`
	// MemoryMB and DiskGB are the model's capacity.
	MemoryMB int64 `yaml:"memory_mb" json:"memory_mb"`
	DiskGB   int64 `yaml:"disk_gb,omitempty" json:"disk_gb,omitempty"`
	// PowerWatts holds average watts at active idle, then 10 % ... 100 %
	// load: PowerPoints values.
	PowerWatts []float64 `yaml:"power_watts,flow" json:"power_watts"`
	// SSJOps100 is ssj_ops at 100 % load when published, 0 otherwise.
	SSJOps100 float64 `yaml:"ssj_ops_100,omitempty" json:"ssj_ops_100,omitempty"`
	// SSJOpsPerWatt is the published overall ssj_ops/W.
	SSJOpsPerWatt float64 `yaml:"ssj_ops_per_watt,omitempty" json:"ssj_ops_per_watt,omitempty"`
	Year          int     `yaml:"year,omitempty" json:"year,omitempty"`
	Source        string  `yaml:"source,omitempty" json:"source,omitempty"`
	// Estimate is true when the curve is not a measurement.
	Estimate bool   `yaml:"estimate,omitempty" json:"estimate,omitempty"`
	Note     string `yaml:"note,omitempty" json:"note,omitempty"`
}

// Candidate is one architecture (by KB name) or, when Architecture is
// empty, any host of ISA, that a tag may run on.
type Candidate struct {
	Architecture string `yaml:"architecture,omitempty" json:"architecture,omitempty"`
	ISA          string `yaml:"isa,omitempty" json:"isa,omitempty"`
	// Flavor optionally names the flavor to use on this architecture.
	Flavor string `yaml:"flavor,omitempty" json:"flavor,omitempty"`
	// PerformanceFactor is the work done per core-second relative to the
	// tag's reference (1.0).
	PerformanceFactor float64 `yaml:"performance_factor" json:"performance_factor"`
	// UtilizationCeiling is the highest host CPU utilisation (0..1] this
	// workload tolerates here; 0 means the tag's.
	UtilizationCeiling float64 `yaml:"utilization_ceiling,omitempty" json:"utilization_ceiling,omitempty"`
	Note               string  `yaml:"note,omitempty" json:"note,omitempty"`
}

// Tag is a workload class and its candidate architectures, in order of
// preference.
type Tag struct {
	Name        string      `yaml:"name" json:"name"`
	Description string      `yaml:"description,omitempty" json:"description,omitempty"`
	Mode        string      `yaml:"mode,omitempty" json:"mode,omitempty"`
	Candidates  []Candidate `yaml:"candidates" json:"candidates"`
	// UtilizationCeiling is the default for candidates that set none; 0 = no
	// ceiling.
	UtilizationCeiling float64 `yaml:"utilization_ceiling,omitempty" json:"utilization_ceiling,omitempty"`
	// CPULoad is the expected busy share of each vCPU (0..1]; 0 means 1.
	CPULoad float64 `yaml:"cpu_load,omitempty" json:"cpu_load,omitempty"`
	// Source says where the factors come from and what is assumed.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
}

// IsExact reports whether the tag pins its single candidate.
func (t *Tag) IsExact() bool { return t.Mode == ModeExact }

// Flavor mirrors a Nova flavor, with the tags it serves.
type Flavor struct {
	Name        string            `yaml:"name" json:"name"`
	VCPUs       int               `yaml:"vcpus" json:"vcpus"`
	MemoryMB    int64             `yaml:"memory_mb" json:"memory_mb"`
	RootGB      int64             `yaml:"root_gb,omitempty" json:"root_gb,omitempty"`
	EphemeralGB int64             `yaml:"ephemeral_gb,omitempty" json:"ephemeral_gb,omitempty"`
	SwapMB      int64             `yaml:"swap_mb,omitempty" json:"swap_mb,omitempty"`
	ExtraSpecs  map[string]string `yaml:"extra_specs,omitempty" json:"extra_specs,omitempty"`
	Tags        []string          `yaml:"tags,omitempty,flow" json:"tags,omitempty"`
}

// Host maps a compute host name to its model.
type Host struct {
	Name          string  `yaml:"name" json:"name"`
	Architecture  string  `yaml:"architecture" json:"architecture"`
	Rack          string  `yaml:"rack,omitempty" json:"rack,omitempty"`
	PowerCapWatts float64 `yaml:"power_cap_watts,omitempty" json:"power_cap_watts,omitempty"`
	Note          string  `yaml:"note,omitempty" json:"note,omitempty"`
	// Power is the host's power endpoint (ipmi://ADDR:PORT,
	// redfish://ADDR/Systems/ID or ironic://NODE_UUID); never credentials,
	// which live only in serve's --power-credentials file.
	Power string `yaml:"power,omitempty" json:"power,omitempty"`
}

// clone returns a deep copy so callers never share slices or maps with the
// store or with each other.
func (kb *KB) clone() *KB {
	c := &KB{SchemaVersion: kb.SchemaVersion}
	for _, a := range kb.Architectures {
		a.PowerWatts = slices.Clone(a.PowerWatts)
		c.Architectures = append(c.Architectures, a)
	}
	for _, t := range kb.Tags {
		t.Candidates = slices.Clone(t.Candidates)
		c.Tags = append(c.Tags, t)
	}
	for _, f := range kb.Flavors {
		f.ExtraSpecs = maps.Clone(f.ExtraSpecs)
		f.Tags = slices.Clone(f.Tags)
		c.Flavors = append(c.Flavors, f)
	}
	c.Hosts = slices.Clone(kb.Hosts)
	return c
}

// sortByName orders every entity list by name, the export and snapshot
// order. Candidate and flavor-tag order is meaning (preference), so it stays.
func (kb *KB) sortByName() {
	slices.SortStableFunc(kb.Architectures, func(a, b Architecture) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(kb.Tags, func(a, b Tag) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(kb.Flavors, func(a, b Flavor) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(kb.Hosts, func(a, b Host) int { return strings.Compare(a.Name, b.Name) })
}
