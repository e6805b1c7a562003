package sim

import (
	"errors"
	"fmt"
	"math"

	"github.com/ecrae/ecrae/optimizer"
)

// Mode says which semantics a run follows. Results say which mode they come
// from: the two are not comparable.
type Mode int

const (
	// ModeCloudSim follows CloudSim 3.0.3's PlanetLab experiment to the
	// letter, quirks included (../shared/notes/cloudsim-planetlab.md): RAM
	// and bandwidth limit only the initial placement (the VMs' RAM model
	// requests nothing afterwards), and a VM whose demand reaches exactly 0
	// at an update is taken for finished and leaves the data center for
	// good. This is the mode whose numbers compare with CloudSim's.
	ModeCloudSim Mode = iota
	// ModeStrict is what a real cloud would see: every placement and
	// migration must fit the destination's RAM, and VMs run all day.
	ModeStrict
)

func (m Mode) String() string {
	switch m {
	case ModeCloudSim:
		return "cloudsim"
	case ModeStrict:
		return "strict"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a mode name: "cloudsim" or "strict".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "cloudsim", "":
		return ModeCloudSim, nil
	case "strict":
		return ModeStrict, nil
	}
	return 0, fmt.Errorf("%w: unknown mode %q (known: cloudsim, strict)", ErrSetup, s)
}

// ErrSetup marks a setup that cannot be simulated.
var ErrSetup = errors.New("bad setup")

// HostModel is a server model: its processing elements (cores or hardware
// threads), their speed, memory, network and power curve.
type HostModel struct {
	Name string
	ISA  string
	// PEs is the number of processing elements, each of PEMIPS; a VM's
	// processing element never gets more than one host PE.
	PEs    int
	PEMIPS float64
	RAMMB  int64
	// BandwidthMbps is the network; half of it carries live migrations.
	BandwidthMbps float64
	Curve         optimizer.PowerCurve
	// Estimate marks a power curve that is not a measurement.
	Estimate bool
}

// TotalMIPS is the model's capacity.
func (m *HostModel) TotalMIPS() float64 { return float64(m.PEs) * m.PEMIPS }

// VMType is a VM size: PEs of MIPS each, RAM and network.
type VMType struct {
	Name          string
	PEs           int
	MIPS          float64 // per PE
	RAMMB         int64
	BandwidthMbps float64
}

// Setup is the simulated data center.
type Setup struct {
	Name   string
	Models []HostModel
	// Hosts holds each host's model, as an index in Models.
	Hosts   []int
	VMTypes []VMType
	Mode    Mode
	// Interval is the time between trace samples and scheduling steps, in
	// seconds (300). Offset is the time of the first event: CloudSim's
	// data center starts its 300 s clock at 0.1 s, when the VMs' creation
	// is acknowledged, so its steps fall at 300.1, 600.1, ...
	Interval float64
	Offset   float64
	// Transitions: boot, shutdown and standby costs (zero: CloudSim's
	// instant, free on and off).
	Transitions Transitions
}

// CloudSim's PlanetLab setup (Constants.java, PlanetLabConstants.java).
const (
	CloudSimHosts     = 800
	cloudSimBandwidth = 1000 // Mbit/s per host
	cloudSimVMBW      = 100  // Mbit/s per VM
)

// HP ProLiant ML110 G4 and G5 SPECpower curves, as CloudSim has them
// (functions, not variables: nothing shared can be changed).
func curveML110G4() optimizer.PowerCurve {
	return optimizer.PowerCurve{86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117}
}

func curveML110G5() optimizer.PowerCurve {
	return optimizer.PowerCurve{93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135}
}

// CloudSimSetup is the reference experiment: 800 hosts alternating HP
// ProLiant ML110 G4 (2 × 1860 MIPS) and G5 (2 × 2660 MIPS), 4 GB each,
// 1 Gbit/s; four VM types (2500, 2000, 1000, 500 MIPS; 870, 1740, 1740,
// 613 MB), handed out in four contiguous quarters of the VM list.
func CloudSimSetup() Setup {
	s := Setup{
		Name: "cloudsim",
		Models: []HostModel{
			{Name: "hp-ml110-g4-xeon-3040", ISA: "x86_64", PEs: 2, PEMIPS: 1860, RAMMB: 4096, BandwidthMbps: cloudSimBandwidth, Curve: curveML110G4()},
			{Name: "hp-ml110-g5-xeon-3075", ISA: "x86_64", PEs: 2, PEMIPS: 2660, RAMMB: 4096, BandwidthMbps: cloudSimBandwidth, Curve: curveML110G5()},
		},
		VMTypes: []VMType{
			{Name: "high-cpu-medium", PEs: 1, MIPS: 2500, RAMMB: 870, BandwidthMbps: cloudSimVMBW},
			{Name: "extra-large", PEs: 1, MIPS: 2000, RAMMB: 1740, BandwidthMbps: cloudSimVMBW},
			{Name: "small", PEs: 1, MIPS: 1000, RAMMB: 1740, BandwidthMbps: cloudSimVMBW},
			{Name: "micro", PEs: 1, MIPS: 500, RAMMB: 613, BandwidthMbps: cloudSimVMBW},
		},
		Mode:     ModeCloudSim,
		Interval: 300,
		Offset:   0.1,
	}
	s.Hosts = make([]int, CloudSimHosts)
	for i := range s.Hosts {
		s.Hosts[i] = i % len(s.Models)
	}
	return s
}

// RoundRobinHosts gives n hosts the models in turn (host i gets model
// i mod len(Models)), as CloudSim does with its two.
func (s *Setup) RoundRobinHosts(n int) {
	s.Hosts = make([]int, n)
	for i := range s.Hosts {
		s.Hosts[i] = i % max(len(s.Models), 1)
	}
}

// Validate checks the setup.
func (s *Setup) Validate() error {
	if len(s.Models) == 0 || len(s.Hosts) == 0 {
		return fmt.Errorf("%w: no hosts", ErrSetup)
	}
	if len(s.VMTypes) == 0 {
		return fmt.Errorf("%w: no VM types", ErrSetup)
	}
	if !(s.Interval > 0) || math.IsInf(s.Interval, 0) || s.Interval != math.Trunc(s.Interval) {
		return fmt.Errorf("%w: interval %v s: want a positive whole number of seconds", ErrSetup, s.Interval)
	}
	if !(s.Offset >= 0) || s.Offset >= s.Interval {
		return fmt.Errorf("%w: offset %v s: want 0 <= offset < interval", ErrSetup, s.Offset)
	}
	for _, m := range s.Models {
		switch {
		case m.PEs <= 0 || !(m.PEMIPS > 0) || math.IsInf(m.PEMIPS, 0):
			return fmt.Errorf("%w: host model %q: needs PEs > 0 and MIPS > 0", ErrSetup, m.Name)
		case m.RAMMB <= 0:
			return fmt.Errorf("%w: host model %q: needs RAM > 0", ErrSetup, m.Name)
		case !(m.BandwidthMbps > 0):
			return fmt.Errorf("%w: host model %q: needs bandwidth > 0", ErrSetup, m.Name)
		}
		for j, w := range m.Curve {
			if !(w >= 0) || math.IsInf(w, 0) || (j > 0 && w < m.Curve[j-1]) {
				return fmt.Errorf("%w: host model %q: power curve must be finite, >= 0 and never decreasing (point %d)", ErrSetup, m.Name, j)
			}
		}
	}
	if tr := s.Transitions; tr.Enabled && !(tr.Boot >= 0 && tr.Shutdown >= 0 && tr.StandbyW >= 0 && tr.Hold >= 0 &&
		!math.IsInf(tr.Boot+tr.Shutdown+tr.StandbyW+tr.Hold, 0)) {
		return fmt.Errorf("%w: transitions: boot, shutdown, standby and hold must be finite and >= 0", ErrSetup)
	}
	for i, h := range s.Hosts {
		if h < 0 || h >= len(s.Models) {
			return fmt.Errorf("%w: host %d: model index %d out of range", ErrSetup, i, h)
		}
	}
	for _, t := range s.VMTypes {
		if t.PEs <= 0 || !(t.MIPS > 0) || math.IsInf(t.MIPS, 0) || t.RAMMB < 0 || !(t.BandwidthMbps >= 0) {
			return fmt.Errorf("%w: VM type %q: needs PEs > 0, MIPS > 0, RAM and bandwidth >= 0", ErrSetup, t.Name)
		}
	}
	return nil
}

// vmTypeOf is CloudSim's rule: VM i of n gets type i / ceil(n / types),
// four contiguous quarters with four types.
func vmTypeOf(i, n, types int) int {
	per := (n + types - 1) / types
	return min(i/max(per, 1), types-1)
}
