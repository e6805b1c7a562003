package optimizer

import (
	"cmp"
	"math"
	"slices"
)

// Bounds are lower bounds on the optimum, reported with every result so the
// gap is always visible.
type Bounds struct {
	// Bins is the best bound on the number of bins (hosts) used: the largest
	// of the three below.
	Bins int
	// Continuous is the per-dimension volume bound: in every dimension, the
	// fewest bins (largest first) whose capacities add up to the demand.
	Continuous int
	// L2 is Martello and Toth's L2 bound of one-dimensional bin packing,
	// taken in every dimension with every bin relaxed to the largest
	// capacity of that dimension, the best dimension kept.
	L2 int
	// Conflicts is the size of a set of items no two of which fit one bin
	// together (a clique of the conflict graph, found greedily).
	Conflicts int
	// Watts bounds the power after consolidation (0 on the bin-count
	// objective): the idle power of the cheapest set of hosts whose
	// capacity covers the demand, relaxed to fractions of hosts, plus the
	// load power at the flattest slope of any curve when ceilings keep every
	// host at or under 100 % busy.
	Watts float64
}

// lowerBounds computes the bounds of p. Kinds, ceilings, groups and targets
// are relaxed away, so every bound is valid for the constrained problem.
func (p *problem) lowerBounds() Bounds {
	var lb Bounds
	total := make([]float64, p.d)
	for i := range p.n {
		for k, x := range p.sizeOf(i) {
			total[k] += x
		}
	}
	// A negative size lets other items exceed a capacity together, which
	// only the volume bound survives.
	negative := make([]bool, p.d)
	anyNegative := false
	for i, x := range p.size {
		if x < 0 {
			negative[i%p.d], anyNegative = true, true
		}
	}
	caps := make([]float64, p.m)
	for k := range p.d {
		if k == p.util {
			continue // ceilings are relaxed: no capacity on busy cores
		}
		for b := range p.m {
			caps[b] = p.cap[b*p.d+k]
		}
		slices.SortFunc(caps, func(a, b float64) int { return cmp.Compare(b, a) })
		sum, j := 0.0, 0
		for j < len(caps) && sum < total[k]*(1-eps)-eps {
			sum += caps[j]
			j++
		}
		lb.Continuous = max(lb.Continuous, j)
		if p.ref[k] > 0 && !math.IsInf(caps[0], 1) && !negative[k] {
			lb.L2 = max(lb.L2, p.l2(k, caps[0]))
		}
	}
	if !anyNegative {
		lb.Conflicts = p.conflictClique()
	}
	lb.Bins = max(lb.Continuous, lb.L2, lb.Conflicts)
	if p.curve != nil {
		lb.Watts = p.wattsBound(total)
	}
	return lb
}

// l2 is Martello and Toth's bound L2 for the sizes of dimension k in bins
// of capacity c (Martello & Toth, "Lower bounds and reduction procedures for
// the bin packing problem", Discrete Applied Mathematics 28, 1990): for
// every α in [0, c/2], with J1 the items above c−α, J2 those in (c/2, c−α]
// and J3 those in [α, c/2],
//
//	L(α) = |J1| + |J2| + max(0, ⌈(ΣJ3 − (|J2|·c − ΣJ2)) / c⌉)
//
// and L2 = max over α. Only the sizes of J3 items need be tried as α. An
// item larger than c (it fits no bin) counts as one bin.
func (p *problem) l2(k int, c float64) int {
	w := make([]float64, 0, p.n)
	for i := range p.n {
		if x := p.size[i*p.d+k]; x > 0 {
			w = append(w, x)
		}
	}
	if len(w) == 0 {
		return 0
	}
	slices.Sort(w) // ascending
	n := len(w)
	prefix := make([]float64, n+1)
	for i, x := range w {
		prefix[i+1] = prefix[i] + x
	}
	// index of the first item > v (items ≤ v are w[:idx]).
	above := func(v float64) int {
		return sort0(w, func(x float64) bool { return x > v*(1+eps)+eps })
	}
	atLeast := func(v float64) int {
		return sort0(w, func(x float64) bool { return x >= v*(1-eps)-eps })
	}
	half := above(c / 2)
	best := 0
	try := func(alpha float64) {
		hi := above(c - alpha) // J1 = w[hi:]
		j1 := n - hi
		j2n := hi - half // J2 = w[half:hi]
		if j2n < 0 {
			j2n = 0
		}
		sumJ2 := 0.0
		if hi > half {
			sumJ2 = prefix[hi] - prefix[half]
		}
		lo := atLeast(alpha) // J3 = w[lo:half]
		sumJ3 := 0.0
		if half > lo {
			sumJ3 = prefix[half] - prefix[lo]
		}
		extra := (sumJ3 - (float64(j2n)*c - sumJ2)) / c
		v := j1 + j2n
		if extra > eps {
			v += int(math.Ceil(extra - eps))
		}
		best = max(best, v)
	}
	try(0)
	for i := 0; i < half; i++ {
		if i > 0 && w[i] == w[i-1] {
			continue
		}
		try(w[i])
	}
	return best
}

// sort0 is sort.Search over w: the first index whose value satisfies f.
func sort0(w []float64, f func(float64) bool) int {
	lo, hi := 0, len(w)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(w[m]) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// conflictClique grows a set of pairwise incompatible items greedily,
// largest first: two items conflict when in some dimension they exceed the
// largest capacity together. Every such item needs a bin of its own.
func (p *problem) conflictClique() int {
	maxCap := make([]float64, p.d)
	for b := range p.m {
		for k, c := range p.capOf(b) {
			maxCap[k] = max(maxCap[k], c)
		}
	}
	key := make([]float64, p.n)
	items := make([]int32, 0, p.n)
	for i := range p.n {
		for k, x := range p.sizeOf(i) {
			if maxCap[k] > 0 && !math.IsInf(maxCap[k], 1) {
				key[i] = max(key[i], x/maxCap[k])
			}
		}
		// An item at most a third of every dimension conflicts with nobody
		// who is also that small; only bigger ones can join a clique of
		// more than two, so skip the rest to keep this O(n·clique).
		if key[i] > 1.0/3 {
			items = append(items, int32(i))
		}
	}
	sortDecreasing(items, key)
	var clique []int32
	for _, i := range items {
		ok := true
		for _, j := range clique {
			if !p.conflict(int(i), int(j), maxCap) {
				ok = false
				break
			}
		}
		if ok {
			clique = append(clique, i)
		}
	}
	if len(clique) == 0 && p.n > 0 {
		return 1
	}
	return len(clique)
}

func (p *problem) conflict(i, j int, maxCap []float64) bool {
	a, b := p.sizeOf(i), p.sizeOf(j)
	for k := range a {
		if a[k]+b[k] > maxCap[k]*(1+eps)+eps {
			return true
		}
	}
	return false
}

// wattsBound bounds the power of any feasible placement from below. Idle:
// in each dimension, cover the demand with fractions of hosts, cheapest
// idle watts per unit of capacity first, after the hosts that must stay on
// (they hold fixed items); the largest of those covers is a bound. Load:
// every busy core costs at least the flattest slope of any curve.
func (p *problem) wattsBound(total []float64) float64 {
	forced := make([]bool, p.m)
	if p.fixed != nil {
		for _, b := range p.fixed {
			if b >= 0 {
				forced[b] = true
			}
		}
	}
	base := 0.0
	for b := range p.m {
		if forced[b] {
			base += p.idleCost(b)
		}
	}
	idle := 0.0
	type offer struct{ per, cap float64 }
	offers := make([]offer, 0, p.m)
	for k := range p.d {
		if k == p.util {
			continue
		}
		need := total[k]
		offers = offers[:0]
		for b := range p.m {
			c := p.cap[b*p.d+k]
			if forced[b] {
				need -= c
				continue
			}
			if c > 0 && !math.IsInf(c, 1) {
				offers = append(offers, offer{p.idleCost(b) / c, c})
			}
		}
		slices.SortFunc(offers, func(a, b offer) int { return cmp.Compare(a.per, b.per) })
		cost := 0.0
		for _, o := range offers {
			if need <= 0 {
				break
			}
			take := min(need, o.cap)
			cost += take * o.per
			need -= take
		}
		idle = max(idle, cost)
	}
	load := 0.0
	// The load term needs every host to stay at or under 100 % busy, which
	// only ceilings of at most 1 on every item guarantee; without them a
	// placement could pile work past 100 %, where curves stop growing.
	capped := p.ceil != nil
	for _, c := range p.ceil {
		capped = capped && c <= 1
	}
	if p.util >= 0 && capped {
		slope := math.Inf(1)
		for b := range p.m {
			c := p.curve[b]
			for j := 1; j < CurvePoints; j++ {
				s := (watts(c[j]) - watts(c[j-1])) / (p.cores[b] / (CurvePoints - 1))
				slope = min(slope, s)
			}
		}
		if slope > 0 && !math.IsInf(slope, 1) {
			load = slope * total[p.util]
		}
	}
	return base + idle + load
}
