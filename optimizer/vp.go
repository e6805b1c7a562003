package optimizer

import (
	"cmp"
	"math"
	"slices"
)

// problem is a vector packing instance in the solver's internal form: n
// items with a size in each of d dimensions and m bins with a capacity in
// each, plus the side constraints of a consolidation (kinds, ceilings,
// anti-affinity, fixed items, migration cost). The bin-packing benchmarks
// use only sizes and capacities; every optional slice is nil then, so the
// hot path pays nothing for the constraints it does not have.
type problem struct {
	d, n, m int
	size    []float64 // n×d
	cap     []float64 // m×d; +Inf = unconstrained
	// ref is the largest finite capacity per dimension: sizes divided by it
	// are the normalised sizes the measures compare (0 = ignore the
	// dimension).
	ref []float64

	// Kinds: an item of kind a may go to a bin of kind b when
	// allow[a*nBinKinds+b]; the host may then run at most
	// ceil[a*nBinKinds+b] of its cores busy (+Inf = no ceiling). nil = one
	// kind each, everything allowed, no ceilings.
	itemKind  []int32
	binKind   []int32
	nBinKinds int
	allow     []bool
	ceil      []float64
	// util is the dimension that counts busy cores (the ceilings apply to
	// it and the power curves read it); -1 = none.
	util  int
	cores []float64 // per bin: busy cores at 100 % utilisation
	// keep is, per bin, the busy cores that are not an overload even past
	// the ceilings (what its own items keep, ConsolidateOptions.Relieve);
	// it never lets a bin receive past them. nil = none.
	keep []float64

	target []bool  // per bin: may receive items it does not already hold; nil = all
	fixed  []int32 // per item: the bin it must stay in, -1 = movable; nil = none fixed
	anti   []int32 // per item: anti-affinity group, -1 = none; nil = no groups

	// Cost: a bin holding items costs curve.Watts(busy/cores); with no
	// curves every used bin costs 1 (the bin-count objective).
	curve []*PowerCurve
	home  []int32   // per item: its bin now, -1 = none; nil = nothing placed yet
	mig   []float64 // per item: the cost of moving it away from home
	// maxMig caps the items placed away from home; 0 = no cap.
	maxMig int
	// legacy runs the local search as before issue 15's density work
	// (BenchmarkConsolidateDensity's baseline).
	legacy bool

	// order lists the bins in the order constructors open them: cheapest per
	// unit of capacity first.
	order []int32
	// shape numbers the bins that are interchangeable while empty, so a
	// first-fit scan tries one empty bin per shape.
	shape   []int32
	nShapes int
}

// eps is the slack of capacity comparisons: sizes are mostly integers, but
// busy cores are sums of products.
const eps = 1e-9

func (p *problem) sizeOf(i int) []float64 { return p.size[i*p.d : i*p.d+p.d] }
func (p *problem) capOf(b int) []float64  { return p.cap[b*p.d : b*p.d+p.d] }

// kindCeil is the ceiling (in busy cores, +Inf = none) item i sets on bin
// b, and whether i may go there at all. The ceiling holds even where i may
// not go: an item the rules would not send there now may be there already
// (its home), and its ceiling still binds whoever joins it.
func (p *problem) kindCeil(i, b int) (float64, bool) {
	if p.allow == nil {
		return math.Inf(1), true
	}
	k := int(p.itemKind[i])*p.nBinKinds + int(p.binKind[b])
	c := p.ceil[k]
	if !math.IsInf(c, 1) {
		c *= p.cores[b]
	}
	return c, p.allow[k]
}

// keepBusy sets what each bin's own items may keep busy past their
// ceiling (ConsolidateOptions.Relieve): their busy cores now, up to relieve
// of the bin's cores. relieve 0 keeps nothing (the ceilings hold).
func (p *problem) keepBusy(relieve float64) {
	if relieve <= 0 || p.util < 0 || p.home == nil {
		return
	}
	p.keep = make([]float64, p.m)
	for i, b := range p.home {
		if b >= 0 {
			p.keep[b] += p.size[i*p.d+p.util]
		}
	}
	for b := range p.keep {
		p.keep[b] = min(p.keep[b], relieve*p.cores[b])
	}
}

func (p *problem) binCost(b int, busy float64) float64 {
	if p.curve == nil {
		return 1
	}
	return p.curve[b].Watts(busy / p.cores[b])
}

// idleCost is what opening bin b costs at least.
func (p *problem) idleCost(b int) float64 { return p.binCost(b, 0) }

// movable reports whether item i may be placed freely.
func (p *problem) movable(i int) bool { return p.fixed == nil || p.fixed[i] < 0 }

// finish computes ref, order and shapes once the rest is filled in.
func (p *problem) finish() {
	p.ref = make([]float64, p.d)
	for b := range p.m {
		for k, c := range p.capOf(b) {
			if !math.IsInf(c, 1) && c > p.ref[k] {
				p.ref[k] = c
			}
		}
	}
	if p.util >= 0 {
		p.ref[p.util] = 0
		for _, c := range p.cores {
			p.ref[p.util] = max(p.ref[p.util], c)
		}
	}
	// Cost per unit of normalised capacity: the bins that hold the most for
	// the least go first; ties keep the input order.
	per := make([]float64, p.m)
	for b := range p.m {
		vol := 0.0
		for k, c := range p.capOf(b) {
			if p.ref[k] > 0 {
				vol += min(c, p.ref[k]) / p.ref[k]
			}
		}
		per[b] = p.idleCost(b) / max(vol, 1e-12)
		if p.curve != nil {
			// The full-load power matters as much as the idle power once
			// the bin is used.
			per[b] = (p.idleCost(b) + p.binCost(b, p.cores[b])) / max(vol, 1e-12)
		}
	}
	p.order = make([]int32, p.m)
	for b := range p.order {
		p.order[b] = int32(b)
	}
	slices.SortStableFunc(p.order, func(a, b int32) int { return cmp.Compare(per[a], per[b]) })

	// Shapes: bins with equal capacities, kind, cost curve and cores are
	// interchangeable while empty. A bin that is not a target gets a shape
	// of its own (only its own items may go back to it).
	type key struct {
		caps  string
		kind  int32
		curve *PowerCurve
		cores float64
	}
	seen := map[key]int32{}
	p.shape = make([]int32, p.m)
	buf := make([]byte, 0, 8*p.d)
	for b := range p.m {
		if p.target != nil && !p.target[b] {
			p.shape[b] = int32(p.nShapes)
			p.nShapes++
			continue
		}
		buf = buf[:0]
		for _, c := range p.capOf(b) {
			u := math.Float64bits(c)
			for s := 0; s < 64; s += 8 {
				buf = append(buf, byte(u>>s))
			}
		}
		k := key{caps: string(buf)}
		if p.binKind != nil {
			k.kind = p.binKind[b]
		}
		if p.curve != nil {
			k.curve = p.curve[b]
		}
		if p.cores != nil {
			k.cores = p.cores[b]
		}
		if s, ok := seen[k]; ok {
			p.shape[b] = s
			continue
		}
		seen[k] = int32(p.nShapes)
		p.shape[b] = int32(p.nShapes)
		p.nShapes++
	}
}

// solution is an assignment of items to bins with its loads and costs kept
// current, so a move or a fit test costs O(d).
type solution struct {
	p       *problem
	assign  []int32   // per item, -1 = not placed
	load    []float64 // m×d
	items   [][]int32 // per bin: its items, unordered
	pos     []int32   // per item: its index in items[assign]
	minCeil []float64 // per bin: the lowest ceiling of its items, busy cores
	atMin   []int32   // per bin: how many of its items set minCeil
	anti    map[int64]int32
	bcost   []float64 // per bin: its cost now (0 when empty)
	cost    float64   // Σ bcost
	migCost float64
	moved   int // items placed away from a home they have
	used    int // bins holding items
}

func newSolution(p *problem) *solution {
	s := &solution{
		p:      p,
		assign: make([]int32, p.n),
		load:   make([]float64, p.m*p.d),
		items:  make([][]int32, p.m),
		pos:    make([]int32, p.n),
		bcost:  make([]float64, p.m),
	}
	for i := range s.assign {
		s.assign[i] = -1
	}
	if p.util >= 0 {
		s.minCeil = make([]float64, p.m)
		s.atMin = make([]int32, p.m)
		for b := range s.minCeil {
			s.minCeil[b] = math.Inf(1)
		}
	}
	if p.anti != nil {
		s.anti = map[int64]int32{}
	}
	return s
}

// clone copies s deeply.
func (s *solution) clone() *solution {
	c := *s
	c.assign = slices.Clone(s.assign)
	c.load = slices.Clone(s.load)
	c.pos = slices.Clone(s.pos)
	c.bcost = slices.Clone(s.bcost)
	c.minCeil = slices.Clone(s.minCeil)
	c.atMin = slices.Clone(s.atMin)
	c.items = make([][]int32, len(s.items))
	for b, it := range s.items {
		c.items[b] = slices.Clone(it)
	}
	if s.anti != nil {
		c.anti = make(map[int64]int32, len(s.anti))
		for k, v := range s.anti {
			c.anti[k] = v
		}
	}
	return &c
}

// copyFrom makes s equal to o (same problem) reusing s's memory.
func (s *solution) copyFrom(o *solution) {
	copy(s.assign, o.assign)
	copy(s.load, o.load)
	copy(s.pos, o.pos)
	copy(s.bcost, o.bcost)
	copy(s.minCeil, o.minCeil)
	copy(s.atMin, o.atMin)
	for b := range s.items {
		s.items[b] = append(s.items[b][:0], o.items[b]...)
	}
	if s.anti != nil {
		clear(s.anti)
		for k, v := range o.anti {
			s.anti[k] = v
		}
	}
	s.cost, s.migCost, s.moved, s.used = o.cost, o.migCost, o.moved, o.used
}

// objective is what the search minimises: bin costs plus migration cost.
// It is kept by deltas: cheap, but it drifts by rounding over many moves.
func (s *solution) objective() float64 { return s.cost + s.migCost }

// exactObjective recomputes the objective from the bins and the items, and
// resets the running sums to it, so that comparisons across many moves do
// not see rounding drift as a gain.
func (s *solution) exactObjective() float64 {
	c := 0.0
	for _, x := range s.bcost {
		c += x
	}
	mc := 0.0
	if p := s.p; p.home != nil {
		for i, h := range p.home {
			if h >= 0 && s.assign[i] >= 0 && s.assign[i] != h {
				mc += p.mig[i]
			}
		}
	}
	s.cost, s.migCost = c, mc
	return c + mc
}

func antiKey(b int, g int32) int64 { return int64(b)<<32 | int64(g) }

// fits reports whether item i (not in b) can join bin b: b is a target (or
// i's home), i's kind is allowed there (or b is i's home), every dimension has room, the
// lowest ceiling of b's items and i's own holds, and b holds no other
// member of i's anti-affinity group.
func (s *solution) fits(i, b int) bool {
	p := s.p
	if p.target != nil && !p.target[b] && (p.home == nil || int(p.home[i]) != b) {
		return false
	}
	c, ok := p.kindCeil(i, b)
	if !ok && (p.home == nil || int(p.home[i]) != b) {
		// Back home is no move: it needs room, not the rules' leave.
		return false
	}
	d := p.d
	sz := p.size[i*d : i*d+d]
	ld := s.load[b*d : b*d+d]
	cp := p.cap[b*d : b*d+d]
	for k := range sz {
		if ld[k]+sz[k] > cp[k]*(1+eps)+eps {
			return false
		}
	}
	if p.util >= 0 {
		c = min(c, s.minCeil[b])
		if ld[p.util]+sz[p.util] > c*(1+eps)+eps {
			return false
		}
	}
	if p.anti != nil && p.anti[i] >= 0 && s.anti[antiKey(b, p.anti[i])] > 0 {
		return false
	}
	return true
}

// add puts item i (unplaced) into bin b without checking that it fits.
func (s *solution) add(i, b int) {
	p := s.p
	d := p.d
	s.assign[i] = int32(b)
	s.pos[i] = int32(len(s.items[b]))
	s.items[b] = append(s.items[b], int32(i))
	ld := s.load[b*d : b*d+d]
	for k, x := range p.size[i*d : i*d+d] {
		ld[k] += x
	}
	if s.minCeil != nil {
		switch c, _ := p.kindCeil(i, b); {
		case c < s.minCeil[b] || len(s.items[b]) == 1:
			s.minCeil[b], s.atMin[b] = c, 1
		case c == s.minCeil[b]:
			s.atMin[b]++
		}
	}
	if s.anti != nil && p.anti[i] >= 0 {
		s.anti[antiKey(b, p.anti[i])]++
	}
	if len(s.items[b]) == 1 {
		s.used++
	}
	s.recost(b)
	if p.home != nil && p.home[i] >= 0 && int(p.home[i]) != b {
		s.migCost += p.mig[i]
		s.moved++
	}
}

// remove takes item i out of its bin.
func (s *solution) remove(i int) {
	p := s.p
	d := p.d
	b := int(s.assign[i])
	it := s.items[b]
	j := s.pos[i]
	last := it[len(it)-1]
	it[j] = last
	s.pos[last] = j
	s.items[b] = it[:len(it)-1]
	s.assign[i] = -1
	ld := s.load[b*d : b*d+d]
	for k, x := range p.size[i*d : i*d+d] {
		ld[k] -= x
	}
	if len(s.items[b]) == 0 {
		// Exact zero: float sums drift, and an empty bin must read empty.
		clear(ld)
		s.used--
	}
	if s.minCeil != nil {
		// Only the last item at the lowest ceiling leaving raises it: a
		// rescan then, a count otherwise.
		if c, _ := p.kindCeil(i, b); c <= s.minCeil[b] {
			if s.atMin[b]--; s.atMin[b] <= 0 {
				m, n := math.Inf(1), int32(0)
				for _, o := range s.items[b] {
					switch oc, _ := p.kindCeil(int(o), b); {
					case oc < m:
						m, n = oc, 1
					case oc == m:
						n++
					}
				}
				s.minCeil[b], s.atMin[b] = m, n
			}
		}
	}
	if s.anti != nil && p.anti[i] >= 0 {
		k := antiKey(b, p.anti[i])
		if s.anti[k]--; s.anti[k] <= 0 {
			delete(s.anti, k)
		}
	}
	s.recost(b)
	if p.home != nil && p.home[i] >= 0 && int(p.home[i]) != b {
		s.migCost -= p.mig[i]
		s.moved--
		if s.moved == 0 {
			s.migCost = 0 // no drift once nothing is moved
		}
	}
}

// move moves item i to bin b.
func (s *solution) move(i, b int) {
	if s.assign[i] >= 0 {
		s.remove(i)
	}
	s.add(i, b)
}

func (s *solution) recost(b int) {
	old := s.bcost[b]
	nw := 0.0
	if len(s.items[b]) > 0 {
		busy := 0.0
		if s.p.util >= 0 {
			busy = s.load[b*s.p.d+s.p.util]
		}
		nw = s.p.binCost(b, busy)
	}
	s.bcost[b] = nw
	s.cost += nw - old
	if s.used == 0 {
		s.cost = 0
	}
}

// costWith is bin b's cost if item i joined it (i not in b).
func (s *solution) costWith(i, b int) float64 {
	p := s.p
	if p.curve == nil {
		return 1
	}
	busy := s.load[b*p.d+p.util] + p.size[i*p.d+p.util]
	return p.binCost(b, busy)
}

// costWithout is bin b's cost if item i (in b) left it.
func (s *solution) costWithout(i int) float64 {
	b := int(s.assign[i])
	if len(s.items[b]) == 1 {
		return 0
	}
	p := s.p
	if p.curve == nil {
		return 1
	}
	busy := s.load[b*p.d+p.util] - p.size[i*p.d+p.util]
	return p.binCost(b, busy)
}

// swapCost is bin b's cost once item in joined it and item out (in b)
// left it.
func (s *solution) swapCost(b, in, out int) float64 {
	p := s.p
	if p.curve == nil {
		return 1
	}
	busy := s.load[b*p.d+p.util] + p.size[in*p.d+p.util] - p.size[out*p.d+p.util]
	return p.binCost(b, busy)
}

// migDelta is the change of migration cost if item i went to bin b.
func (s *solution) migDelta(i, b int) float64 {
	p := s.p
	if p.home == nil || p.home[i] < 0 {
		return 0
	}
	h := int(p.home[i])
	from := int(s.assign[i])
	switch {
	case from == h && b != h:
		return p.mig[i]
	case from != h && b == h:
		return -p.mig[i]
	}
	return 0
}

// placeFixed puts every fixed item in its bin, fitting or not: it is there
// and nothing may move it.
func (s *solution) placeFixed() {
	if s.p.fixed == nil {
		return
	}
	for i, b := range s.p.fixed {
		if b >= 0 {
			s.add(i, int(b))
		}
	}
}

// placeHome puts every unplaced item that has a home back there, fitting or
// not: the current placement is feasible by definition, even when it breaks
// a rule (an overcommitted host stays as it is).
func (s *solution) placeHome() {
	if s.p.home == nil {
		return
	}
	for i, b := range s.p.home {
		if s.assign[i] < 0 && b >= 0 {
			s.add(i, int(b))
		}
	}
}

// complete reports whether every item is placed.
func (s *solution) complete() bool {
	for _, b := range s.assign {
		if b < 0 {
			return false
		}
	}
	return true
}
