package catalog

import (
	"fmt"
	"math"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// MaxSnapshotInstances bounds a request snapshot.
const MaxSnapshotInstances = 200_000

// LiveView is what the cluster is built from of the live host view.
type LiveView interface {
	// Snapshot is the current hosts; shared, never modified.
	Snapshot() *hostview.Snapshot
	Freshness(h *hostview.Host, now time.Time) hostview.Freshness
	Now() time.Time
	// SnapshotWithInstances is the current hosts (shared, never modified)
	// and every instance, at one instant.
	SnapshotWithInstances() (*hostview.Snapshot, []hostview.Instance)
}

// SnapshotCluster turns a request snapshot into the optimizer's input,
// resolving models and tags from the knowledge base.
func (c *Catalog) SnapshotCluster(s *ecraev1.ClusterSnapshot, defaultTag string, maxHosts int) (optimizer.Cluster, error) {
	var cl optimizer.Cluster
	if len(s.GetHosts()) == 0 {
		return cl, Invalid("snapshot.hosts", "at least one host is required")
	}
	if len(s.GetHosts()) > maxHosts {
		return cl, Invalid("snapshot.hosts", "%d hosts exceed the limit of %d", len(s.GetHosts()), maxHosts)
	}
	if len(s.GetInstances()) > MaxSnapshotInstances {
		return cl, Invalid("snapshot.instances", "%d instances exceed the limit of %d", len(s.GetInstances()), MaxSnapshotInstances)
	}
	for i, h := range s.GetHosts() {
		f := func(n string) string { return fmt.Sprintf("snapshot.hosts[%d].%s", i, n) }
		switch {
		case h.GetName() == "":
			return cl, Invalid(f("name"), "required")
		case h.GetVcpus() < 0 || h.GetMemoryMb() < 0 || h.GetDiskGb() < 0 ||
			h.GetReservedVcpus() < 0 || h.GetReservedMemoryMb() < 0 || h.GetReservedDiskGb() < 0:
			return cl, Invalid(f("vcpus"), "capacities must not be negative")
		}
		for _, r := range []float64{h.GetCpuAllocationRatio(), h.GetRamAllocationRatio(), h.GetDiskAllocationRatio()} {
			if math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
				return cl, Invalid(f("cpu_allocation_ratio"), "allocation ratios must be finite and >= 0")
			}
		}
		var m *optimizer.Model
		if a := h.GetArchitecture(); a != "" {
			if m = c.archModels[a]; m == nil {
				return cl, Invalid(f("architecture"), "unknown architecture %s", quote.Value(a))
			}
		} else {
			m = c.ModelFor(h.GetName(), h.GetName(), optimizer.NormalizeISA(h.GetIsa()), int(h.GetVcpus()-h.GetReservedVcpus()))
		}
		if pw := h.GetPowerWatts(); len(pw) > 0 {
			if len(pw) != optimizer.CurvePoints {
				return cl, Invalid(f("power_watts"), "want %d points (idle, 10 %% … 100 %%), got %d", optimizer.CurvePoints, len(pw))
			}
			cp := *m // a private copy: the catalog's models are shared
			for k, w := range pw {
				if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
					return cl, Invalid(f("power_watts"), "point %d must be finite and >= 0, got %v", k, w)
				}
				cp.Curve[k] = w
			}
			m = &cp
		}
		cl.Hosts = append(cl.Hosts, optimizer.ClusterHost{
			Name: h.GetName(), ISA: h.GetIsa(), Model: m,
			VCPUs: int(h.GetVcpus()), MemoryMB: h.GetMemoryMb(), DiskGB: h.GetDiskGb(),
			ReservedVCPUs: int(h.GetReservedVcpus()), ReservedMemoryMB: h.GetReservedMemoryMb(), ReservedDiskGB: h.GetReservedDiskGb(),
			CPURatio: h.GetCpuAllocationRatio(), RAMRatio: h.GetRamAllocationRatio(), DiskRatio: h.GetDiskAllocationRatio(),
			State: hostState(h.GetState()), NoTarget: h.GetExclude(),
		})
	}
	for i, in := range s.GetInstances() {
		f := func(n string) string { return fmt.Sprintf("snapshot.instances[%d].%s", i, n) }
		if in.GetId() == "" {
			return cl, Invalid(f("id"), "required")
		}
		if in.GetVcpus() < 0 || in.GetMemoryMb() < 0 || in.GetDiskGb() < 0 {
			return cl, Invalid(f("vcpus"), "sizes must not be negative")
		}
		ci := optimizer.ClusterInstance{
			ID: in.GetId(), Name: in.GetName(), Host: in.GetHost(),
			VCPUs: int(in.GetVcpus()), MemoryMB: in.GetMemoryMb(), DiskGB: in.GetDiskGb(),
			ISA: in.GetIsa(), Group: in.GetServerGroup(), Pinned: in.GetPinned(),
		}
		if in.CpuUtilization != nil {
			u := in.GetCpuUtilization()
			if math.IsNaN(u) || u < 0 || u > 1 {
				return cl, Invalid(f("cpu_utilization"), "must be in [0, 1], got %v", u)
			}
			ci.CPUUtil, ci.CPUUtilKnown = u, true
		}
		prof, err := c.ProfileOrDefault(in.GetTag(), defaultTag)
		if err != nil {
			return cl, Invalid(f("tag"), "%v", err)
		}
		ci.Profile = prof
		cl.Instances = append(cl.Instances, ci)
	}
	for i, g := range s.GetServerGroups() {
		if g.GetName() == "" {
			return cl, Invalid(fmt.Sprintf("snapshot.server_groups[%d].name", i), "required")
		}
		cl.Groups = append(cl.Groups, optimizer.ServerGroup{Name: g.GetName(), Policy: groupPolicy(g.GetPolicy())})
	}
	return cl, nil
}

// ProfileOrDefault resolves an instance's tag ("" = the default).
func (c *Catalog) ProfileOrDefault(tag, defaultTag string) (optimizer.Profile, error) {
	if tag == "" {
		if p, ok := c.profiles[defaultTag]; ok {
			return p, nil
		}
		return optimizer.Profile{Tag: defaultTag}, nil
	}
	p, ok := c.profiles[tag]
	if !ok {
		return p, fmt.Errorf("unknown tag %s", quote.Value(tag))
	}
	return p, nil
}

func hostState(s ecraev1.SnapshotHostState) optimizer.HostState {
	switch s {
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_DISABLED:
		return optimizer.HostDisabled
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_STALE:
		return optimizer.HostStale
	case ecraev1.SnapshotHostState_SNAPSHOT_HOST_STATE_DOWN:
		return optimizer.HostDown
	}
	return optimizer.HostUp
}

func groupPolicy(p ecraev1.ServerGroupPolicy) optimizer.GroupPolicy {
	switch p {
	case ecraev1.ServerGroupPolicy_SERVER_GROUP_POLICY_AFFINITY:
		return optimizer.PolicyAffinity
	case ecraev1.ServerGroupPolicy_SERVER_GROUP_POLICY_ANTI_AFFINITY:
		return optimizer.PolicyAntiAffinity
	}
	return optimizer.PolicyNone
}

// LiveCluster builds the optimizer's input from the live host view: hosts
// sized by Placement (or their KB architecture), every instance that holds
// resources, each instance's CPU share from its host's measured utilisation
// when fresh (split by the tags' expected loads), and the server groups
// gs (groups maps an instance to its group).
func (c *Catalog) LiveCluster(lv LiveView, defaultTag string, gs []optimizer.ServerGroup, groups map[string]string) optimizer.Cluster {
	cl := optimizer.Cluster{Groups: gs}
	snap, all := lv.SnapshotWithInstances()
	now := lv.Now()
	load := c.Load(defaultTag)
	byHost := map[string][]hostview.Instance{}
	for _, in := range all {
		if in.Host == "" || in.State == "deleted" || in.State == "shelved_offloaded" {
			continue
		}
		byHost[in.Host] = append(byHost[in.Host], in)
	}
	listed := map[string]bool{}
	for i := range snap.Hosts {
		h := &snap.Hosts[i]
		if !h.Compute && !h.Containers && len(byHost[h.Name]) == 0 {
			continue // a node agent's samples only
		}
		listed[h.Name] = true
		m := c.ModelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved)
		sized := h.Capacity.Known() || c.hostModels[h.Name] != nil || c.hostModels[h.Nodename] != nil
		oh := hostview.Base(h, m)
		fr := lv.Freshness(h, now)
		ch := optimizer.ClusterHost{
			Name: h.Name, ISA: h.ISA, Model: m,
			VCPUs: oh.VCPUsTotal, MemoryMB: oh.TotalRAMMB, DiskGB: oh.TotalDiskGB,
			CPURatio: oh.CPURatio, RAMRatio: oh.RAMRatio, DiskRatio: oh.DiskRatio,
			Draining: h.Draining, // another plan is emptying it: no destination
		}
		switch {
		case !sized || fr.Stale:
			ch.State = optimizer.HostStale
		case h.Service == hostview.StateDisabled:
			ch.State = optimizer.HostDisabled
		case h.Service == hostview.StateDown || h.Service == hostview.StateDeleted:
			ch.State = optimizer.HostDown
		}
		// Measured utilisation, split among the instances by their tags'
		// expected loads: the best per-instance estimate the view allows.
		scale := 0.0
		if util, ok := measuredUtil(h, fr); ok {
			expected := 0.0
			for _, in := range byHost[h.Name] {
				if running(in) {
					expected += float64(in.Flavor.VCPUs) * share01(load(in.Tag))
				}
			}
			if expected > 0 {
				scale = util * ch.Cores() / expected
			}
		}
		cl.Hosts = append(cl.Hosts, ch)
		for _, in := range byHost[h.Name] {
			cl.Instances = append(cl.Instances, c.liveInstance(in, defaultTag, scale, load, groups))
		}
	}
	// Instances on hosts the view lists as no compute: keep them, fixed, on
	// an unsized stand-in host, so that capacity is never double counted.
	for host, ins := range byHost {
		if listed[host] {
			continue
		}
		cl.Hosts = append(cl.Hosts, optimizer.ClusterHost{Name: host, Model: c.ModelFor(host, host, "", 1), State: optimizer.HostStale})
		for _, in := range ins {
			cl.Instances = append(cl.Instances, c.liveInstance(in, defaultTag, 0, load, groups))
		}
	}
	return cl
}

func (c *Catalog) liveInstance(in hostview.Instance, defaultTag string, scale float64, load hostview.LoadFunc, groups map[string]string) optimizer.ClusterInstance {
	prof, err := c.ProfileOrDefault(in.Tag, defaultTag)
	if err != nil {
		prof = optimizer.Profile{Tag: in.Tag} // a tag the KB lost: no constraints from it
	}
	ci := optimizer.ClusterInstance{
		ID: in.UUID, Name: in.Name, Host: in.Host,
		VCPUs: in.Flavor.VCPUs, MemoryMB: in.Flavor.MemoryMB, DiskGB: in.Flavor.DiskGB(),
		Profile: prof, Group: groups[in.UUID],
	}
	switch {
	case in.State != "active" && in.State != "":
		ci.Pinned = true // Nova live-migrates active instances only
	case in.TaskState != "":
		ci.Pinned = true // busy with another operation
	}
	if scale > 0 && running(in) {
		ci.CPUUtil, ci.CPUUtilKnown = math.Min(1, share01(load(in.Tag))*scale), true
	} else if !running(in) {
		ci.CPUUtil, ci.CPUUtilKnown = 0, true
	}
	return ci
}

func running(in hostview.Instance) bool {
	if in.PowerState != "" {
		return in.PowerState == "running"
	}
	return in.State == "active" || in.State == ""
}

func share01(x float64) float64 {
	if x > 0 && x < 1 {
		return x
	}
	return 1
}

// measuredUtil is a host's fresh measured utilisation, if any: its CPU
// demand when the agent says it is asked for more than it has (a busy
// share stops at 1, so an overloaded host would look merely full, and
// ConsolidateOptions.Relieve could never relieve it), else its busy share.
func measuredUtil(h *hostview.Host, fr hostview.Freshness) (float64, bool) {
	switch {
	case fr.Demand && h.Demand.Value > 1:
		return h.Demand.Value, true // at most events.MaxCPUDemand: the decoder bounds it
	case fr.Utilization:
		return math.Max(0, math.Min(1, h.Utilization.Value)), true
	case fr.CPU:
		return math.Max(0, math.Min(1, h.CPU.Value)), true
	}
	return 0, false
}
