package optimizer

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
)

// Cluster is a snapshot of the hosts and instances a rebalance works on.
type Cluster struct {
	Hosts     []ClusterHost
	Instances []ClusterInstance
	Groups    []ServerGroup
}

// HostState says what a host may take part in.
type HostState int

const (
	// HostUp: gives and receives instances.
	HostUp HostState = iota
	// HostDisabled: its compute service is disabled; its instances may
	// leave, nothing new arrives.
	HostDisabled
	// HostStale: the view of it is out of date; nothing moves to or from it.
	HostStale
	// HostDown: its compute service is down; nothing moves to or from it.
	HostDown
)

func (s HostState) String() string {
	switch s {
	case HostUp:
		return "up"
	case HostDisabled:
		return "disabled"
	case HostStale:
		return "stale"
	case HostDown:
		return "down"
	}
	return fmt.Sprintf("HostState(%d)", int(s))
}

// ClusterHost is one compute node.
type ClusterHost struct {
	Name  string
	ISA   string // "" = the model's
	Model *Model // power curve and cores; required
	// Totals, before allocation ratios; Reserved* are subtracted first, as
	// Placement does: capacity = (total − reserved) × ratio.
	VCPUs                         int
	MemoryMB                      int64
	DiskGB                        int64
	ReservedVCPUs                 int
	ReservedMemoryMB              int64
	ReservedDiskGB                int64
	CPURatio, RAMRatio, DiskRatio float64 // 0 = 1
	State                         HostState
	// NoTarget excludes the host as a destination (an operator's choice),
	// whatever its state.
	NoTarget bool
	// Draining is the ID of the running rebalance plan that is emptying the
	// host, "" when none: no other plan moves anything there.
	Draining string
}

// ClusterInstance is one running instance.
type ClusterInstance struct {
	ID       string // Nova's uuid
	Name     string
	Host     string // the host it runs on now (ClusterHost.Name)
	VCPUs    int
	MemoryMB int64
	DiskGB   int64
	// CPUUtil is the measured busy share of its vCPUs, in [0, 1], when
	// CPUUtilKnown; otherwise its profile's CPULoad stands in (1 when none).
	CPUUtil      float64
	CPUUtilKnown bool
	ISA          string // the image's hw_architecture; "" = its host's
	Group        string // server group name, "" = none
	// Pinned instances never move.
	Pinned bool
	// Profile is its resolved tag: the utilisation ceilings, and in exact
	// mode the architectures it may run on.
	Profile Profile
}

// GroupPolicy is a server group's rule.
type GroupPolicy int

const (
	// PolicyNone: no rule (soft policies are weigher preferences, not
	// constraints).
	PolicyNone GroupPolicy = iota
	// PolicyAffinity: all members on one host.
	PolicyAffinity
	// PolicyAntiAffinity: no two members on one host.
	PolicyAntiAffinity
)

// ServerGroup is a Nova server group.
type ServerGroup struct {
	Name   string
	Policy GroupPolicy
}

// Why an instance does not move, in Plan.Fixed.
const (
	FixedPinned   = "pinned"
	FixedHost     = "its host is stale or down"
	FixedAffinity = "affinity group: Nova refuses to move one member away from the others"
)

// compiled is a Cluster turned into a problem, with what is needed to map
// back.
type compiled struct {
	p         *problem
	hostIndex map[string]int
	fixedWhy  []string // per instance: why it cannot move, "" = movable
	isa       []string // per instance: its effective ISA
	busy      []float64
}

// ErrBadSnapshot marks a snapshot that cannot be planned on.
var ErrBadSnapshot = errors.New("invalid snapshot")

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
}

// dims of a consolidation problem.
const (
	dimVCPU = iota
	dimRAM
	dimDisk
	dimBusy
	clusterDims
)

// HostCapacity returns the capacity of h per dimension after reservations
// and allocation ratios: vCPUs, RAM MB, disk GB.
func (h *ClusterHost) HostCapacity() (vcpus, ramMB, diskGB float64) {
	vcpus = math.Max(0, float64(h.VCPUs-h.ReservedVCPUs)) * ratio(h.CPURatio)
	ramMB = math.Max(0, float64(h.MemoryMB-h.ReservedMemoryMB)) * ratio(h.RAMRatio)
	diskGB = math.Max(0, float64(h.DiskGB-h.ReservedDiskGB)) * ratio(h.DiskRatio)
	return
}

// hostISA is the host's normalised instruction set.
func (h *ClusterHost) hostISA() string {
	if isa := NormalizeISA(h.ISA); isa != "" {
		return isa
	}
	if h.Model != nil {
		return NormalizeISA(h.Model.ISA)
	}
	return ""
}

// Cores is the number of hardware threads utilisation is measured against:
// the model's, else the host's vCPUs, else 1.
func (h *ClusterHost) Cores() float64 {
	if h.Model != nil && h.Model.Cores > 0 {
		return float64(h.Model.Cores)
	}
	if h.VCPUs > 0 {
		return float64(h.VCPUs)
	}
	return 1
}

// Busy is the instance's expected busy cores: vCPUs × measured utilisation,
// or × its profile's CPU load when not measured.
func (in *ClusterInstance) Busy() float64 {
	u := share(in.Profile.CPULoad)
	if in.CPUUtilKnown && finite(in.CPUUtil) {
		u = clamp01(in.CPUUtil)
	}
	return float64(max(in.VCPUs, 0)) * u
}

// compile checks the snapshot and builds its problem. cost is the
// migration cost of an instance (in watts).
func (c *Cluster) compile(cost func(*ClusterInstance) float64) (*compiled, error) {
	nh, ni := len(c.Hosts), len(c.Instances)
	cc := &compiled{hostIndex: make(map[string]int, nh), fixedWhy: make([]string, ni),
		isa: make([]string, ni), busy: make([]float64, ni)}
	for j := range c.Hosts {
		h := &c.Hosts[j]
		if h.Name == "" {
			return nil, badSnapshot("host %d has no name", j)
		}
		if _, dup := cc.hostIndex[h.Name]; dup {
			return nil, badSnapshot("host %s appears twice", quote.Value(h.Name))
		}
		if h.Model == nil {
			return nil, badSnapshot("host %s has no model", quote.Value(h.Name))
		}
		if h.VCPUs < 0 || h.MemoryMB < 0 || h.DiskGB < 0 {
			return nil, badSnapshot("host %s has a negative capacity", quote.Value(h.Name))
		}
		cc.hostIndex[h.Name] = j
	}
	groups := map[string]GroupPolicy{}
	for _, g := range c.Groups {
		if _, dup := groups[g.Name]; dup {
			return nil, badSnapshot("server group %s appears twice", quote.Value(g.Name))
		}
		groups[g.Name] = g.Policy
	}
	members := map[string]int{}
	ids := make(map[string]bool, ni)
	for i := range c.Instances {
		in := &c.Instances[i]
		if in.ID == "" {
			return nil, badSnapshot("instance %d has no id", i)
		}
		if ids[in.ID] {
			return nil, badSnapshot("instance %s appears twice", quote.Value(in.ID))
		}
		ids[in.ID] = true
		if _, ok := cc.hostIndex[in.Host]; !ok {
			return nil, badSnapshot("instance %s is on host %s, which the snapshot does not list", quote.Value(in.ID), quote.Value(in.Host))
		}
		if in.VCPUs < 0 || in.MemoryMB < 0 || in.DiskGB < 0 {
			return nil, badSnapshot("instance %s has a negative size", quote.Value(in.ID))
		}
		if in.Group != "" {
			if _, ok := groups[in.Group]; !ok {
				return nil, badSnapshot("instance %s is in server group %s, which the snapshot does not list", quote.Value(in.ID), quote.Value(in.Group))
			}
			members[in.Group]++
		}
	}

	p := &problem{d: clusterDims, n: ni, m: nh, util: dimBusy,
		size: make([]float64, ni*clusterDims), cap: make([]float64, nh*clusterDims),
		cores: make([]float64, nh), curve: make([]*PowerCurve, nh),
		target: make([]bool, nh), fixed: make([]int32, ni),
		home: make([]int32, ni), mig: make([]float64, ni),
		binKind: make([]int32, nh), itemKind: make([]int32, ni)}
	binKinds := map[string]int32{}
	kindHost := []int{} // bin kind → a host of that kind
	for j := range c.Hosts {
		h := &c.Hosts[j]
		v, r, d := h.HostCapacity()
		p.cap[j*clusterDims+dimVCPU] = v
		p.cap[j*clusterDims+dimRAM] = r
		p.cap[j*clusterDims+dimDisk] = d
		p.cap[j*clusterDims+dimBusy] = math.Inf(1) // ceilings apply per item
		p.cores[j] = h.Cores()
		p.curve[j] = &h.Model.Curve
		p.target[j] = h.Receives()
		key := h.Model.Name + "\x00" + h.hostISA()
		k, ok := binKinds[key]
		if !ok {
			k = int32(len(kindHost))
			binKinds[key] = k
			kindHost = append(kindHost, j)
		}
		p.binKind[j] = k
	}
	p.nBinKinds = len(kindHost)

	anti := map[string]int32{}
	itemKinds := map[string]int32{}
	var kindInst []int // item kind → an instance of that kind
	for i := range c.Instances {
		in := &c.Instances[i]
		hj := cc.hostIndex[in.Host]
		h := &c.Hosts[hj]
		isa := NormalizeISA(in.ISA)
		if isa == "" {
			isa = h.hostISA()
		}
		cc.isa[i] = isa
		sz := p.size[i*clusterDims : i*clusterDims+clusterDims]
		sz[dimVCPU] = float64(in.VCPUs)
		sz[dimRAM] = float64(in.MemoryMB)
		sz[dimDisk] = float64(in.DiskGB)
		cc.busy[i] = in.Busy()
		sz[dimBusy] = cc.busy[i]
		p.home[i] = int32(hj)
		p.mig[i] = cost(in)
		p.fixed[i] = -1
		switch {
		case in.Pinned:
			cc.fixedWhy[i] = FixedPinned
		case h.State == HostStale || h.State == HostDown:
			cc.fixedWhy[i] = FixedHost
		case in.Group != "" && groups[in.Group] == PolicyAffinity && members[in.Group] > 1:
			cc.fixedWhy[i] = FixedAffinity
		}
		if cc.fixedWhy[i] != "" {
			p.fixed[i] = int32(hj)
		}
		if in.Group != "" && groups[in.Group] == PolicyAntiAffinity {
			if p.anti == nil {
				p.anti = make([]int32, ni)
				for k := range p.anti {
					p.anti[k] = -1
				}
			}
			g, ok := anti[in.Group]
			if !ok {
				g = int32(len(anti))
				anti[in.Group] = g
			}
			p.anti[i] = g
		}
		// Instances with the same ISA and profile share a kind.
		key := isa + "\x00" + profileKey(&in.Profile)
		k, ok := itemKinds[key]
		if !ok {
			k = int32(len(kindInst))
			itemKinds[key] = k
			kindInst = append(kindInst, i)
		}
		p.itemKind[i] = k
	}
	nik := len(kindInst)
	p.allow = make([]bool, nik*p.nBinKinds)
	p.ceil = make([]float64, nik*p.nBinKinds)
	for a, i := range kindInst {
		in := &c.Instances[i]
		for b, j := range kindHost {
			ok, ceil := in.AllowedOn(cc.isa[i], &c.Hosts[j])
			p.allow[a*p.nBinKinds+b] = ok
			if !ok {
				// Where it may not go it may still be (its home): there
				// it sets the profile's ceiling, as FilterHosts uses for a
				// host that is no candidate.
				ceil = positive(in.Profile.UtilizationCeiling)
			}
			if ceil == 0 {
				ceil = math.Inf(1)
			}
			p.ceil[a*p.nBinKinds+b] = ceil
		}
	}
	p.finish()
	cc.p = p
	return cc, nil
}

// profileKey identifies a profile's constraint content.
func profileKey(p *Profile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%d|%g|%g", p.Tag, p.Mode, p.UtilizationCeiling, p.CPULoad)
	for _, c := range p.Candidates {
		fmt.Fprintf(&b, "|%s/%s/%g", c.Architecture, NormalizeISA(c.ISA), c.UtilizationCeiling)
	}
	return b.String()
}
