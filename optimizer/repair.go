package optimizer

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Repair before saving (issue 11 point 2). A host over its capacity in any
// dimension (after allocation ratios), or whose busy cores exceed the
// lowest ceiling of its instances' tags, is overloaded. Overload is a hard
// violation: a placement with less of it is better whatever its power, and
// power only decides between placements with as much. The search never
// adds overload (a move's destination must stay valid), so the only
// question is how much of the current overload a plan removes.

// binOverload is how far bin b is over its limits, in normalised units
// (the excess in each dimension over the largest capacity of that
// dimension, summed); 0 when b keeps every rule.
func (s *solution) binOverload(b int) float64 {
	p := s.p
	if len(s.items[b]) == 0 {
		return 0
	}
	v := 0.0
	for k := range p.d {
		if k == p.util || p.ref[k] <= 0 {
			continue
		}
		c := p.cap[b*p.d+k]
		if ex := s.load[b*p.d+k] - c*(1+eps) - eps; ex > 0 && !math.IsInf(c, 1) {
			v += ex / p.ref[k]
		}
	}
	if p.util >= 0 && p.ref[p.util] > 0 {
		if c := s.minCeil[b]; !math.IsInf(c, 1) {
			if p.keep != nil {
				// Busy a host's own instances keep is no overload; a
				// host that received any is within its ceiling (fits).
				c = max(c, p.keep[b])
			}
			if ex := s.load[b*p.d+p.util] - c*(1+eps) - eps; ex > 0 {
				v += ex / p.ref[p.util]
			}
		}
	}
	return v
}

// overload is the total overload of s.
func (s *solution) overload() float64 {
	v := 0.0
	for b := range s.p.m {
		v += s.binOverload(b)
	}
	return v
}

// overloadTol is below any real overload (a fraction of a unit of the
// smallest dimension) and above rounding.
const overloadTol = 1e-9

// better reports whether a is a better placement than b: less overload,
// else a lower objective (power plus migrations).
func better(a, b *solution) bool {
	oa, ob := a.overload(), b.overload()
	if oa < ob-overloadTol {
		return true
	}
	if oa > ob+overloadTol {
		return false
	}
	return a.exactObjective() < b.exactObjective()-1e-6
}

// grows reports whether s overloads some bin more than ref does.
func (s *solution) grows(ref *solution) bool {
	for b := range s.p.m {
		if s.binOverload(b) > ref.binOverload(b)+overloadTol {
			return true
		}
	}
	return false
}

// repair offloads the overloaded bins of s in place, greedily: on each, the
// move that removes the most overload (the cheapest in power and migration
// among equals) to a bin that stays within every rule, until the bin is
// valid or no move helps. It never overloads another bin.
func (s *solution) repair(m *meter) {
	p := s.p
	e := every{m: m}
	for b := range p.m {
		for {
			over := s.binOverload(b)
			if over <= overloadTol || m.out() {
				break
			}
			bi, bt := -1, -1
			bestGain, bestCost := 0.0, math.Inf(1)
			// A copy: overloadWithout reorders the bin's items.
			for _, i32 := range slices.Clone(s.items[b]) {
				i := int(i32)
				if !p.movable(i) {
					continue
				}
				gain := over - s.overloadWithout(i)
				if gain <= overloadTol || gain < bestGain-overloadTol {
					continue
				}
				for c := range p.m {
					if c == b || e.out() || !s.fits(i, c) {
						continue
					}
					// Most gain, then least cost, then the lowest
					// instance index (the items of a bin are unordered).
					cost := s.costWith(i, c) - s.bcost[c] + s.migDelta(i, c)
					if gain > bestGain+overloadTol || (gain >= bestGain-overloadTol &&
						(cost < bestCost-1e-12 || (cost <= bestCost+1e-12 && i < bi))) {
						bi, bt, bestGain, bestCost = i, c, gain, cost
					}
				}
			}
			if bi < 0 {
				break
			}
			s.move(bi, bt)
		}
	}
}

// overloadWithout is the overload of item i's bin were i gone.
func (s *solution) overloadWithout(i int) float64 {
	b := int(s.assign[i])
	p := s.p
	if p.util < 0 || s.minCeil == nil {
		// No ceiling to recompute: the loads say it all.
		v := 0.0
		for k := range p.d {
			if p.ref[k] <= 0 {
				continue
			}
			c := p.cap[b*p.d+k]
			if ex := s.load[b*p.d+k] - p.size[i*p.d+k] - c*(1+eps) - eps; ex > 0 && !math.IsInf(c, 1) {
				v += ex / p.ref[k]
			}
		}
		return v
	}
	// The ceiling may rise without i: take it out and put it back.
	s.remove(i)
	v := s.binOverload(b)
	s.add(i, b)
	return v
}

// overloaded lists the bins of s that are overloaded.
func (s *solution) overloaded() []int {
	var out []int
	for b := range s.p.m {
		if s.binOverload(b) > overloadTol {
			out = append(out, b)
		}
	}
	return out
}

// infeasibleReason explains why the overload left in end was not removed:
// a proof that no valid placement exists when one of the lower bounds gives
// it, else that none was found within the budget.
func infeasibleReason(c *Cluster, p *problem, end *solution, lb Bounds) string {
	var why []string
	usable := 0
	for b := range p.m {
		if p.target == nil || p.target[b] || len(end.items[b]) > 0 {
			usable++
		}
	}
	if lb.Bins > usable {
		why = append(why, fmt.Sprintf("the instances need at least %d hosts (lower bound), only %d can hold them", lb.Bins, usable))
	}
	names := [...]string{dimVCPU: "vCPUs", dimRAM: "RAM MB", dimDisk: "disk GB"}
	for k := range min(p.d, len(names)) {
		demand, capacity := 0.0, 0.0
		for i := range p.n {
			demand += p.size[i*p.d+k]
		}
		for b := range p.m {
			if p.target == nil || p.target[b] || len(end.items[b]) > 0 {
				capacity += p.cap[b*p.d+k]
			}
		}
		if demand > capacity*(1+eps)+eps {
			why = append(why, fmt.Sprintf("the instances ask for %.0f %s, the hosts that can hold them have %.0f", demand, names[k], capacity))
		}
	}
	// Instances that may run only on some host models (ISA, exact tags)
	// asking for more than those hosts have.
	why = append(why, kindShortfalls(c, p, end)...)
	// A host overloaded by the instances that must stay on it alone: those
	// that may not move (pinned, on a stale host, in an affinity group) and
	// those no other host may take (ISA, an exact tag, targets).
	stuck := newSolution(p)
	for _, b := range end.overloaded() {
		for _, i32 := range end.items[b] {
			i := int(i32)
			if !p.movable(i) || !elsewhere(p, i, b) {
				stuck.add(i, b)
			}
		}
		if stuck.binOverload(b) > overloadTol {
			why = append(why, fmt.Sprintf("host %s: the instances that must stay on it (pinned, on a stale host, in an affinity group, or that no other host may take) overload it alone", c.Hosts[b].Name))
		}
	}
	if len(why) > 0 {
		return "no valid placement exists: " + strings.Join(why, "; ")
	}
	return fmt.Sprintf("no valid placement found within the budget (lower bound %d hosts, %d can hold instances); the plan reduces the overload where it can", lb.Bins, usable)
}

// elsewhere reports whether some host other than b may ever take item i:
// one that receives instances, of a kind i may run on.
func elsewhere(p *problem, i, b int) bool {
	for c := range p.m {
		if c == b || (p.target != nil && !p.target[c]) {
			continue
		}
		if _, ok := p.kindCeil(i, c); ok {
			return true
		}
	}
	return false
}

// kindShortfalls proves infeasibility per host model: for each set of
// models some instances are confined to (their ISA, an exact tag), the
// instances confined to it or to fewer models ask for more, in some
// dimension, than the hosts of those models can hold (the hosts that
// receive instances, and those the instances already are on).
func kindShortfalls(c *Cluster, p *problem, end *solution) []string {
	if p.allow == nil {
		return nil
	}
	nk := len(p.allow) / p.nBinKinds
	subset := func(a, b int) bool { // every bin kind a allows, b allows
		for k := range p.nBinKinds {
			if p.allow[a*p.nBinKinds+k] && !p.allow[b*p.nBinKinds+k] {
				return false
			}
		}
		return true
	}
	names := [...]string{dimVCPU: "vCPUs", dimRAM: "RAM MB", dimDisk: "disk GB"}
	var out []string
	seen := map[string]bool{}
	for a := range nk {
		var models []string
		for k := range p.nBinKinds {
			if p.allow[a*p.nBinKinds+k] {
				for b := range p.m {
					if int(p.binKind[b]) == k {
						models = append(models, c.Hosts[b].Model.Name)
						break
					}
				}
			}
		}
		key := strings.Join(models, ",")
		if seen[key] || len(models) == 0 || len(models) == p.nBinKinds {
			continue // all models: the totals above cover it
		}
		seen[key] = true
		demand := make([]float64, len(names))
		holds := make([]bool, p.m)
		for i := range p.n {
			if subset(int(p.itemKind[i]), a) {
				for k := range demand {
					demand[k] += p.size[i*p.d+k]
				}
				holds[end.assign[i]] = true
			}
		}
		capacity := make([]float64, len(names))
		for b := range p.m {
			if p.allow[a*p.nBinKinds+int(p.binKind[b])] && (p.target == nil || p.target[b] || holds[b]) {
				for k := range capacity {
					capacity[k] += p.cap[b*p.d+k]
				}
			}
		}
		for k := range demand {
			if demand[k] > capacity[k]*(1+eps)+eps {
				out = append(out, fmt.Sprintf("the instances that may run only on %s hosts ask for %.0f %s, those hosts have %.0f", key, demand[k], names[k], capacity[k]))
			}
		}
	}
	return out
}
