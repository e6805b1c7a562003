package optimizer

import "fmt"

// The one rule set, seen from a rebalance: the stages of filterChain that
// need no load are run here for cluster hosts and instances, so a plan and
// a boot are judged by the same code. Capacity, ceilings and server groups
// depend on the load a plan changes step by step; the solver checks them on
// its load vectors with the same arithmetic (TestPlanStepsPassFilterHosts
// replays every step through FilterHosts).

// FilterHost is h as FilterHosts sees it, without load: name, ISA, model and
// the states that decide whether it may receive. A host the operator
// excluded counts as disabled: it receives nothing either.
func (h *ClusterHost) FilterHost() Host {
	return Host{
		Name: h.Name, Nodename: h.Name, ISA: h.ISA, Model: h.Model,
		Disabled: h.State == HostDisabled || h.State == HostDown || h.NoTarget,
		Stale:    h.State == HostStale,
		Draining: h.Draining,
	}
}

// Receives reports whether a plan may bring an instance to h: the host
// stage of the filter chain, and not stale. The filter lets a stale host
// pass, as Nova's call carries its resources; a plan knows the host from
// the view alone, and does not add load to one whose load it does not know.
func (h *ClusterHost) Receives() bool {
	fh := h.FilterHost()
	f := fit{h: &fh}
	ok, _ := hostFilter{}.filter(nil, &f, nil)
	return ok && !fh.Stale
}

// AllowedOn reports whether the instance may move to host h at all, by the
// filter chain's ISA and candidates stages for a move (a hint is never
// relaxed: a plan moves an instance to a candidate or leaves it where it
// is), and the utilisation ceiling it sets there (0 = none): the matching
// candidate's, else the profile's. instISA is the instance's image ISA, ""
// = any. The host's state is Receives' business.
func (in *ClusterInstance) AllowedOn(instISA string, h *ClusterHost) (bool, float64) {
	st := newState(Request{ImageISA: instISA, Relax: RelaxNever}, in.Profile)
	fh := Host{Name: h.Name, ISA: h.ISA, Model: h.Model}
	var f fit
	st.fit(&fh, 0, false, &f)
	for _, fl := range [...]filter{isaFilter{}, candidatesFilter{}} {
		if ok, _ := fl.filter(st, &f, nil); !ok {
			return false, 0
		}
	}
	return true, f.ceiling
}

// MoveRelax judges whether a move of an instance may relax its hint-mode
// tag, against the cluster rather than the call (whose hosts may be just
// the one requested destination): never when the instance runs on a
// candidate (from), nor when some candidate among hosts (every host the
// cluster has) passes the filter chain for it; otherwise the hint is
// relaxed, as it would be for a boot on that cluster. from is nil when the
// instance runs on no known host.
func MoveRelax(req Request, prof Profile, from *Host, hosts []Host) HintRelax {
	if prof.Mode == ModeExact || len(prof.Candidates) == 0 {
		return RelaxNever // nothing to relax
	}
	req.Relax = RelaxNever
	if from != nil {
		st := newState(req, prof)
		var f fit
		st.fit(from, 0, false, &f)
		if f.cand >= 0 {
			return RelaxNever
		}
	}
	for _, v := range FilterHostsQuiet(req, prof, hosts) {
		if v.Passed {
			return RelaxNever // a candidate can take it
		}
	}
	return RelaxAllowed
}

// FilterState is the cluster under a placement, as FilterHosts sees it:
// each host's totals after reservations, what its instances use, and its
// utilisation as the instances' busy cores over its cores (measured, as a
// plan uses what it measured). at[i] is the host index of instance i.
func (c *Cluster) FilterState(at []int) []Host {
	hosts := make([]Host, len(c.Hosts))
	busy := make([]float64, len(c.Hosts))
	for j := range c.Hosts {
		ch := &c.Hosts[j]
		h := ch.FilterHost()
		h.VCPUsTotal, h.CPURatio = ch.VCPUs-ch.ReservedVCPUs, ch.CPURatio
		h.TotalRAMMB, h.FreeRAMMB, h.RAMRatio = ch.MemoryMB-ch.ReservedMemoryMB, ch.MemoryMB-ch.ReservedMemoryMB, ch.RAMRatio
		h.TotalDiskGB, h.FreeDiskMB, h.DiskRatio = ch.DiskGB-ch.ReservedDiskGB, (ch.DiskGB-ch.ReservedDiskGB)*1024, ch.DiskRatio
		hosts[j] = h
	}
	for i, j := range at {
		in := &c.Instances[i]
		h := &hosts[j]
		h.VCPUsUsed += in.VCPUs
		h.FreeRAMMB -= in.MemoryMB
		h.FreeDiskMB -= in.DiskGB * 1024
		h.NumInstances++
		busy[j] += in.Busy()
	}
	for j := range hosts {
		hosts[j].Utilization, hosts[j].UtilizationMeasured = busy[j]/c.Hosts[j].Cores(), true
	}
	return hosts
}

// MoveRequest is the request Nova's scheduler would judge for a live
// migration of instance i under placement at: its size, image ISA and
// measured busy share, its server group's other members' hosts, and the
// hint relaxed only as MoveRelax allows against the whole cluster.
func (c *Cluster) MoveRequest(at []int, hosts []Host, i int) Request {
	in := &c.Instances[i]
	isa := in.ISA
	if isa == "" {
		isa = c.Hosts[at[i]].hostISA() // the cluster's rule: its image runs where it ran
		for j, h := range c.Hosts {
			if h.Name == in.Host {
				isa = c.Hosts[j].hostISA()
			}
		}
	}
	req := Request{Name: in.ID, VCPUs: in.VCPUs, MemoryMB: in.MemoryMB, DiskGB: in.DiskGB, ImageISA: isa,
		Busy: in.Busy(), BusyKnown: true}
	if in.Group != "" {
		for _, g := range c.Groups {
			if g.Name == in.Group {
				req.Group.Policy = g.Policy
			}
		}
		for k, o := range c.Instances {
			if k != i && o.Group == in.Group {
				req.Group.Hosts = append(req.Group.Hosts, c.Hosts[at[k]].Name)
			}
		}
	}
	req.Relax = MoveRelax(req, in.Profile, &hosts[at[i]], hosts)
	return req
}

// Placement is where every instance runs now: at[i] is the index in
// c.Hosts of instance i's Host (-1 when no host has that name).
func (c *Cluster) Placement() []int {
	idx := make(map[string]int, len(c.Hosts))
	for j := range c.Hosts {
		idx[c.Hosts[j].Name] = j
	}
	at := make([]int, len(c.Instances))
	for i := range c.Instances {
		j, ok := idx[c.Instances[i].Host]
		if !ok {
			j = -1
		}
		at[i] = j
	}
	return at
}

// JudgeMove judges one move outside a plan (an operator's) as a plan step
// is judged: instance i, where the cluster has it now, to host to. A
// pinned instance never moves; the destination must receive (Receives:
// not disabled, down, stale, excluded or draining) and pass FilterHosts
// for the instance's live-migration request on the cluster as it is (ISA,
// candidates, capacity, ceilings, server groups). The verdict names the
// rule that refused it.
func (c *Cluster) JudgeMove(i, to int) Verdict {
	in := &c.Instances[i]
	at := c.Placement()
	for k := range at {
		if at[k] < 0 {
			// catalog.LiveCluster lists a stand-in for every host it
			// places an instance on: a cluster without one is not judged.
			return Verdict{Filter: "placement", Reason: fmt.Sprintf("%s runs on %s, which the cluster does not list", c.Instances[k].ID, c.Instances[k].Host)}
		}
	}
	switch {
	case in.Pinned:
		return Verdict{Filter: "pinned", Reason: fmt.Sprintf("%s is not movable now (not active, or busy with another operation)", in.ID)}
	case at[i] == to:
		return Verdict{Filter: "placement", Reason: fmt.Sprintf("%s already runs on %s", in.ID, c.Hosts[to].Name)}
	case !c.Hosts[to].Receives():
		return Verdict{Filter: "host state", Reason: fmt.Sprintf("%s receives no instance now (disabled, down, stale, excluded or draining)", c.Hosts[to].Name)}
	}
	hosts := c.FilterState(at)
	req := c.MoveRequest(at, hosts, i)
	return FilterHosts(req, in.Profile, hosts)[to]
}
