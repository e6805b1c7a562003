package optimizer

import (
	"cmp"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
)

// Local search: the stage any constructor can feed ("NAME+ls"). Its main
// move empties a bin: the bin's items go to a pool, and a tabu search over
// swaps between the pool and the other used bins tries to place them all
// (in the manner of Buljubašić and Vasquez's consistent neighbourhood
// search for bin packing, Computers & OR 2016). The pool only ever holds
// items, never breaks a bin: every intermediate assignment is feasible. A
// bin that cannot be emptied within the effort allowed is restored as it
// was; when every bin has failed, the effort doubles, up to a limit.
//
// On the power objective two more moves run: relocating single items to
// the used bin where they cost least (which also brings migrated items
// home when that is free), and moving a whole bin's items to one cheaper
// empty bin. There the emptying move (issue 15, dense hosts) places the
// pool by alignment (each item where the room left is most of its shape),
// then by ejection chains (an item of a used bin moves on to a third bin
// to make room), and swaps only where both fail; it tries small hosts
// before large ones as full, and stops once the bins reach their lower
// bound.

// lsState is one local search run.
type lsState struct {
	s      *solution
	p      *problem
	rng    *rand.Rand
	m      *meter
	w      []float64 // per item: pool weight (normalised L1 size)
	lb     int       // stop when the bins used reach it (bin-count objective)
	simple bool      // no side constraints: fits reduce to arithmetic

	closed  []bool         // the bin being emptied: nothing may enter
	pool    []int32        // items taken out, not yet placed
	journal []journalEntry // moves since the attempt began, for undo
	tabu    map[int64]int  // (item, bin) → iteration until which item may not enter bin
	iter    int            // swaps made, over the whole run
	room    []float64      // scratch: d
	size    []float64      // scratch: d
	scratch []int32        // scratch: the items of the bin being emptied
	inBuf   []int32        // scratch: a bin's items while swaps are scanned
	tried   map[int32]bool // bins that failed at the current effort
	fixedIn []bool         // per bin: holds a fixed item (never emptied)
	vol     []float64      // per bin: L1 of its normalised capacities (power objective)
	noise   float64        // amplitude of the random term added to gains
	best    swapMove       // best move of the current scan
	bestN   int            // ties seen for best, for uniform tie-breaking
}

type journalEntry struct {
	item int32
	from int32 // -1: it was in the pool
}

// swapMove exchanges items between the pool and bin c: in (1 or 2 pool
// items) enter c, out (0, 1 or 2 of c's items) go to the pool.
type swapMove struct {
	c       int32
	in, out [2]int32 // -1 = none
	gain    float64  // pool weight removed
}

// Effort per bin-emptying attempt, in swaps: start small, double when every
// bin has failed, give up past the maximum.
const (
	lsDepthStart = 32
	lsDepthMax   = 4096
	// lsNoise is the amplitude of the random term added to a swap's gain,
	// in mean item weights: enough to take a worse swap now and then, which
	// is how the search leaves a plateau of equal swaps (on the Triplet
	// classes it is the difference between no bin removed and most).
	lsNoise = 0.3
	// lsDeepStall ends a deep attempt (one bin, no depth limit) after this
	// many swaps without a pool lighter than any before in the attempt.
	lsDeepStall = 50_000
	// lsPairScan bounds the items of a bin, and of the pool, whose pairs a
	// swap scan tries on the power objective: dense hosts hold 40–160.
	lsPairScan = 24
	// ejectTries is how many chains ejectChain compares at most, and
	// ejectScan how many items it tries to move on (each a scan of the
	// bins): one chain costs O(items + ejectScan × bins).
	ejectTries = 8
	ejectScan  = 64
)

func newLS(s *solution, rng *rand.Rand, m *meter, lb int) *lsState {
	p := s.p
	ls := &lsState{
		s: s, p: p, rng: rng, m: m, lb: lb,
		w:      make([]float64, p.n),
		closed: make([]bool, p.m),
		tabu:   map[int64]int{},
		room:   make([]float64, p.d),
		size:   make([]float64, p.d),
		tried:  map[int32]bool{},
		simple: p.allow == nil && p.target == nil && p.anti == nil && p.util < 0,
	}
	x := make([]float64, p.d)
	mean := 0.0
	for i := range p.n {
		p.normSize(i, x)
		for _, v := range x {
			ls.w[i] += v
		}
		mean += ls.w[i]
	}
	if p.n > 0 {
		mean /= float64(p.n)
	}
	ls.noise = lsNoise * mean
	if p.curve != nil && !p.legacy {
		// Each bin's room as the L1 of its normalised capacities, the
		// scale of the items' weights.
		ls.vol = make([]float64, p.m)
		for b := range p.m {
			for k, c := range p.capOf(b) {
				if p.ref[k] > 0 {
					ls.vol[b] += min(c, p.ref[k]) / p.ref[k]
				}
			}
		}
	}
	ls.fixedIn = make([]bool, p.m)
	if p.fixed != nil {
		for _, b := range p.fixed {
			if b >= 0 {
				ls.fixedIn[b] = true
			}
		}
	}
	return ls
}

// localSearch improves s in place within the meter's budget and returns why
// it stopped.
func (s *solution) localSearch(rng *rand.Rand, m *meter, lb int) string {
	ls := newLS(s, rng, m, lb)
	return ls.run()
}

func (ls *lsState) optimal() bool {
	return ls.p.curve == nil && ls.s.used <= ls.lb
}

func (ls *lsState) run() string {
	power := ls.p.curve != nil
	if power {
		ls.relocate()
		ls.replaceBins()
		ls.homeSwaps()
	}
	// On the power objective, the first round tries every bin with no swap
	// at all (placing and ejection chains are cheap, a round of swaps on
	// dense hosts is not), and swaps only where that fails.
	start := lsDepthStart
	if power && !ls.p.legacy {
		start = 0
	}
	depth := start
	deep := false
	for {
		if ls.optimal() {
			return StoppedOptimal
		}
		if ls.m.out() {
			return ls.m.stopped
		}
		if power && !ls.p.legacy && ls.s.used <= ls.lb {
			// No placement uses fewer bins: emptying one cannot succeed.
			// What is left to gain, the other moves take.
			ls.relocate()
			ls.homeSwaps()
			if ls.m.stopped != "" {
				return ls.m.stopped
			}
			return StoppedStalled
		}
		b := ls.nextBin()
		if b < 0 {
			if !power && ls.pairDescent() {
				clear(ls.tried)
				continue
			}
			if power {
				// The other moves may have opened new chances.
				before := ls.s.exactObjective()
				ls.relocate()
				ls.replaceBins()
				ls.homeSwaps()
				if ls.s.exactObjective() < before-1e-9 {
					clear(ls.tried)
					continue
				}
			}
			switch {
			case depth == 0:
				depth = lsDepthStart
			case depth < lsDepthMax:
				depth *= 2
			case !deep && !power:
				// Deep attempts: one bin at a time, as long as the pool
				// keeps getting lighter. They can take the whole budget,
				// so only the offline bin-count problem uses them.
				deep = true
			default:
				return StoppedStalled
			}
			clear(ls.tried)
			continue
		}
		ls.tried[int32(b)] = true
		stall := depth
		if deep {
			stall = lsDeepStall
		}
		if ls.eliminate(b, depth, stall, deep) {
			clear(ls.tried)
			depth, deep = start, false
		}
		if ls.m.stopped != "" {
			return ls.m.stopped
		}
	}
}

// nextBin picks the bin to try to empty: among used bins that hold no fixed
// item and have not failed at this effort, the one whose items weigh least
// for its cost (a little seeded noise varies the order between rounds).
func (ls *lsState) nextBin() int {
	s, p := ls.s, ls.p
	meanIdle := 1.0
	if p.curve != nil {
		sum, n := 0.0, 0
		for b := range p.m {
			if len(s.items[b]) > 0 {
				sum += p.idleCost(b)
				n++
			}
		}
		if n > 0 && sum > 0 {
			meanIdle = sum / float64(n)
		}
	}
	meanVol := 1.0
	if ls.vol != nil {
		sum, n := 0.0, 0
		for b := range p.m {
			if len(s.items[b]) > 0 {
				sum += ls.vol[b]
				n++
			}
		}
		if n > 0 && sum > 0 {
			meanVol = sum / float64(n)
		}
	}
	best, bestK := -1, math.Inf(1)
	for b := range p.m {
		if len(s.items[b]) == 0 || ls.fixedIn[b] || ls.tried[int32(b)] {
			continue
		}
		k := 0.0
		for _, i := range s.items[b] {
			k += ls.w[i]
		}
		if p.curve != nil {
			k *= meanIdle / max(p.idleCost(b), 1e-9)
			if !p.legacy {
				// And for the room it takes away: the rest must hold
				// its items, so a small host goes before a large one as
				// full, which is how the most hosts end up empty.
				k *= ls.vol[b] / meanVol
			}
		}
		k *= 1 + 0.2*ls.rng.Float64()
		if k < bestK {
			best, bestK = b, k
		}
	}
	return best
}

// record notes that item i leaves bin from (-1: the pool) for undo.
func (ls *lsState) record(i int32, from int32) {
	ls.journal = append(ls.journal, journalEntry{i, from})
}

// toPool moves item i from its bin to the pool.
func (ls *lsState) toPool(i int32) {
	ls.record(i, ls.s.assign[i])
	ls.s.remove(int(i))
	ls.pool = append(ls.pool, i)
}

// fromPool moves pool item i into bin b.
func (ls *lsState) fromPool(i int32, b int) {
	ls.record(i, -1)
	j := slices.Index(ls.pool, i)
	ls.pool = slices.Delete(ls.pool, j, j+1)
	ls.s.add(int(i), b)
}

// undo restores the assignment at the start of the attempt.
func (ls *lsState) undo() {
	s := ls.s
	for j := len(ls.journal) - 1; j >= 0; j-- {
		e := ls.journal[j]
		if s.assign[e.item] >= 0 {
			s.remove(int(e.item))
		}
		if e.from >= 0 {
			s.add(int(e.item), int(e.from))
		}
	}
	ls.journal = ls.journal[:0]
	ls.pool = ls.pool[:0]
}

// eliminate tries to empty bin b with at most depth swaps (no limit when
// deep), stopping early after stall swaps without a lighter pool than any
// before; it keeps the result only if it lowers the objective (and
// respects the migration cap).
func (ls *lsState) eliminate(b, depth, stall int, deep bool) bool {
	s, p := ls.s, ls.p
	before := s.exactObjective()
	movedBefore := s.moved
	ls.journal = ls.journal[:0]
	ls.pool = ls.pool[:0]
	ls.scratch = append(ls.scratch[:0], s.items[b]...)
	for _, i := range ls.scratch {
		ls.toPool(i)
	}
	ls.closed[b] = true
	defer func() { ls.closed[b] = false }()
	ok := false
	bestW, since := math.Inf(1), 0
	for swaps := 0; ; swaps++ {
		ls.insertPool()
		if p.curve != nil && !p.legacy && !ls.ejectPool() {
			break
		}
		if len(ls.pool) == 0 {
			ok = true
			break
		}
		if w := ls.poolWeight(); w < bestW-1e-12 {
			bestW, since = w, 0
		} else {
			since++
		}
		if (!deep && swaps >= depth) || since >= stall || ls.m.tick(1+len(ls.pool)) {
			break
		}
		if !ls.swap() {
			break
		}
	}
	if ok {
		capOK := p.maxMig == 0 || s.moved <= p.maxMig || s.moved <= movedBefore
		if s.exactObjective() < before-1e-9 && capOK {
			ls.journal = ls.journal[:0]
			return true
		}
	}
	ls.undo()
	return false
}

func (ls *lsState) poolWeight() float64 {
	w := 0.0
	for _, i := range ls.pool {
		w += ls.w[i]
	}
	return w
}

// insertPool places pool items, heaviest first, each in the used bin it
// fills best (least room left by L1), while any fits.
func (ls *lsState) insertPool() {
	s, p := ls.s, ls.p
	if len(ls.pool) == 0 {
		return
	}
	slices.SortFunc(ls.pool, func(a, b int32) int {
		if c := cmp.Compare(ls.w[b], ls.w[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	aligned := p.curve != nil && !p.legacy
	for j := 0; j < len(ls.pool); {
		i := ls.pool[j]
		if aligned {
			if b := ls.alignedFit(int(i)); b >= 0 {
				ls.fromPool(i, b)
			} else {
				j++
			}
			continue
		}
		best, bestV := -1, math.Inf(1)
		for c := range p.m {
			if len(s.items[c]) == 0 || ls.closed[c] || !s.fits(int(i), c) {
				continue
			}
			s.residual(c, int(i), ls.room)
			v := 0.0
			for _, r := range ls.room {
				v += r
			}
			if v < bestV {
				best, bestV = c, v
			}
		}
		if best < 0 {
			j++
			continue
		}
		ls.fromPool(i, best)
	}
}

// alignedFit is the used bin, not closed, that takes item i and whose
// room is most nearly of i's shape (the largest cosine between i's
// normalised size and the bin's room): an item short on RAM goes where RAM
// is left over, so that the bins being filled stay balanced across
// dimensions and end full in all of them. Ties go to the fuller bin. The
// item's home comes first when it takes it: that move costs nothing.
func (ls *lsState) alignedFit(i int) int {
	s, p := ls.s, ls.p
	if h := p.home; h != nil && h[i] >= 0 && !ls.closed[h[i]] && len(s.items[h[i]]) > 0 && s.fits(i, int(h[i])) {
		return int(h[i])
	}
	x := ls.size
	p.normSize(i, x)
	xx := 0.0
	for _, v := range x {
		xx += v * v
	}
	best, bestCos, bestRoom := -1, math.Inf(-1), math.Inf(1)
	for c := range p.m {
		if len(s.items[c]) == 0 || ls.closed[c] || !s.fits(i, c) {
			continue
		}
		s.residual(c, -1, ls.room)
		dot, rr := 0.0, 0.0
		for k, r := range ls.room {
			dot += x[k] * r
			rr += r * r
		}
		cos := dot / math.Sqrt(max(xx*rr, 1e-300))
		if cos > bestCos+1e-9 || (cos > bestCos-1e-9 && rr < bestRoom) {
			best, bestCos, bestRoom = c, cos, rr
		}
	}
	return best
}

// ejectPool places what insertPool left in the pool by ejection chains,
// heaviest first, and reports whether the budget allows going on.
func (ls *lsState) ejectPool() bool {
	for j := 0; j < len(ls.pool); {
		if ls.m.tick(1) {
			return false
		}
		if !ls.ejectChain(ls.pool[j]) {
			j++
		}
	}
	return true
}

// ejectChain places pool item x by making room for it: an item y of a used
// bin c leaves for a third bin c2 that takes it as it is, and x takes its
// place in c. Of the chains found it keeps the first that costs no
// migration (y goes home, or y was already away from it), else the one
// that costs least. The loads say whether y's leaving makes room, with no
// rescan of the bins' contents.
func (ls *lsState) ejectChain(x int32) bool {
	s, p := ls.s, ls.p
	bc, by, bc2, bestV := -1, int32(-1), -1, math.Inf(1)
	d := p.d
	need := ls.room // per dimension, what y must free in c
	found, tried := 0, 0
	off := ls.rng.IntN(max(p.m, 1))
scan:
	for k := range p.m {
		c := (k + off) % p.m
		if len(s.items[c]) == 0 || ls.closed[c] {
			continue
		}
		if _, ok := p.kindCeil(int(x), c); !ok && (p.home == nil || int(p.home[x]) != c) {
			continue
		}
		for k := range d {
			need[k] = s.load[c*d+k] + p.size[int(x)*d+k] - p.cap[c*d+k]*(1+eps) - eps
		}
	items:
		for _, y := range s.items[c] {
			for k, v := range need {
				if v > 0 && p.size[int(y)*d+k] < v {
					continue items
				}
			}
			if !p.movable(int(y)) || !ls.swapFits(c, x, -1, y, -1) {
				continue
			}
			// Each candidate costs a scan of the bins: a few suffice.
			if tried++; tried > ejectScan {
				break scan
			}
			for c2 := range p.m {
				if c2 == c || len(s.items[c2]) == 0 || ls.closed[c2] || !s.fits(int(y), c2) {
					continue
				}
				if v := s.migDelta(int(y), c2); v < bestV {
					bc, by, bc2, bestV = c, y, c2, v
				}
				// The first chain that costs no migration, or the
				// cheapest of a few: enough to choose well, and the scan
				// stays short when chains are plenty.
				if found++; bestV <= 0 || found >= ejectTries {
					break scan
				}
				break
			}
		}
	}
	if bc < 0 {
		return false
	}
	ls.record(by, int32(bc))
	s.move(int(by), bc2)
	ls.fromPool(x, bc)
	return true
}

// swap applies the best non-tabu exchange between the pool and a used bin:
// the one removing the most weight from the pool, even if that is negative
// (the tabu list keeps the search from undoing it at once). Ties are broken
// uniformly at random.
func (ls *lsState) swap() bool {
	s, p := ls.s, ls.p
	ls.best = swapMove{c: -1, gain: math.Inf(-1)}
	ls.bestN = 0
	pool := ls.pool
	for c := range p.m {
		if len(s.items[c]) == 0 || ls.closed[c] {
			continue
		}
		// A copy: fixed items are filtered out of it.
		ls.inBuf = append(ls.inBuf[:0], s.items[c]...)
		in := ls.inBuf
		if p.fixed != nil {
			in = slices.DeleteFunc(in, func(q int32) bool { return !p.movable(int(q)) })
		}
		// The moves of two items scan pairs: on the power objective, on a
		// dense bin or with a big pool, only a seeded sample of them, so
		// that a scan costs O(bins × pool × items) rather than its
		// square. (The bin-count benchmarks keep the full scan.)
		outs, ins := in, pool
		if p.curve != nil && !p.legacy {
			if len(in) > lsPairScan {
				for x := range lsPairScan {
					y := x + ls.rng.IntN(len(in)-x)
					in[x], in[y] = in[y], in[x]
				}
				outs = in[:lsPairScan]
			}
			ins = pool[:min(len(pool), lsPairScan)]
		}
		for a, pi := range pool {
			if ls.isTabu(pi, c) {
				continue
			}
			wp := ls.w[pi]
			// 1 in, 1 out.
			for _, q := range in {
				ls.consider(c, pi, -1, q, -1, wp-ls.w[q])
			}
			// 1 in, 2 out.
			for x := 0; x < len(outs); x++ {
				for y := x + 1; y < len(outs); y++ {
					ls.consider(c, pi, -1, outs[x], outs[y], wp-ls.w[outs[x]]-ls.w[outs[y]])
				}
			}
			// 2 in, 1 out.
			if a >= len(ins) {
				continue
			}
			for _, p2 := range ins[a+1:] {
				if ls.isTabu(p2, c) {
					continue
				}
				for _, q := range in {
					ls.consider(c, pi, p2, q, -1, wp+ls.w[p2]-ls.w[q])
				}
			}
		}
	}
	mv := ls.best
	if mv.c < 0 {
		return false
	}
	ls.iter++
	if len(ls.tabu) > 1<<16 {
		// Forget what expired, so the list stays the size of the tenure.
		maps.DeleteFunc(ls.tabu, func(_ int64, until int) bool { return until <= ls.iter })
	}
	c := int(mv.c)
	for _, q := range mv.out {
		if q >= 0 {
			ls.toPool(q)
			// q may not come back to c for a while: that would undo the move.
			ls.tabu[int64(q)<<32|int64(c)] = ls.iter + 3 + ls.rng.IntN(8)
		}
	}
	for _, pi := range mv.in {
		if pi >= 0 {
			ls.fromPool(pi, c)
		}
	}
	return true
}

func (ls *lsState) isTabu(i int32, c int) bool {
	until, ok := ls.tabu[int64(i)<<32|int64(c)]
	return ok && until > ls.iter
}

// consider keeps the move if it is at least as good as the best so far
// and feasible. The gain is known before the (costlier) fit test, so most
// moves are rejected without one.
func (ls *lsState) consider(c int, in1, in2, out1, out2 int32, gain float64) {
	if ls.noise > 0 {
		// Only a move that can win with the largest noise draws any.
		if gain+ls.noise < ls.best.gain {
			return
		}
		gain += ls.noise * (ls.rng.Float64()*2 - 1)
	}
	if gain < ls.best.gain-1e-12 {
		return
	}
	tie := gain <= ls.best.gain+1e-12
	if tie && ls.bestN > 0 {
		// Reservoir sampling over equal moves, decided before the fit test
		// costs anything: the move wins with probability 1/(ties+1).
		if ls.rng.IntN(ls.bestN+1) != 0 {
			return
		}
	}
	if !ls.swapFits(c, in1, in2, out1, out2) {
		return
	}
	if tie {
		ls.bestN++
	} else {
		ls.bestN = 1
	}
	ls.best = swapMove{c: int32(c), in: [2]int32{in1, in2}, out: [2]int32{out1, out2}, gain: gain}
}

// swapFits reports whether bin c can take in1 (and in2) once out1 (and
// out2) left it: the rules of fits, evaluated on the loads without moving
// anything.
func (ls *lsState) swapFits(c int, in1, in2, out1, out2 int32) bool {
	s, p := ls.s, ls.p
	d := p.d
	ld := s.load[c*d : c*d+d]
	cp := p.cap[c*d : c*d+d]
	for k := range d {
		v := ld[k] + p.size[int(in1)*d+k] - p.size[int(out1)*d+k]
		if in2 >= 0 {
			v += p.size[int(in2)*d+k]
		}
		if out2 >= 0 {
			v -= p.size[int(out2)*d+k]
		}
		if v > cp[k]*(1+eps)+eps {
			return false
		}
	}
	if ls.simple {
		return true
	}
	ceil := math.Inf(1)
	for _, i := range [2]int32{in1, in2} {
		if i < 0 {
			continue
		}
		if p.target != nil && !p.target[c] && (p.home == nil || int(p.home[i]) != c) {
			return false
		}
		ci, ok := p.kindCeil(int(i), c)
		if !ok && (p.home == nil || int(p.home[i]) != c) {
			return false
		}
		ceil = min(ceil, ci)
	}
	if p.util >= 0 && (!math.IsInf(ceil, 1) || !math.IsInf(s.minCeil[c], 1)) {
		// The lowest ceiling of what stays and what comes: the bin's,
		// unless every item that sets it leaves (then rescan).
		stay := s.minCeil[c]
		if p.legacy || ls.leavesMin(c, out1, out2) {
			stay = math.Inf(1)
			for _, q := range s.items[c] {
				if q != out1 && q != out2 {
					cq, _ := p.kindCeil(int(q), c)
					stay = min(stay, cq)
				}
			}
		}
		ceil = min(ceil, stay)
		busy := ld[p.util] + p.size[int(in1)*d+p.util] - p.size[int(out1)*d+p.util]
		if in2 >= 0 {
			busy += p.size[int(in2)*d+p.util]
		}
		if out2 >= 0 {
			busy -= p.size[int(out2)*d+p.util]
		}
		if busy > ceil*(1+eps)+eps {
			return false
		}
	}
	if p.anti != nil {
		for _, i := range [2]int32{in1, in2} {
			if i < 0 || p.anti[i] < 0 {
				continue
			}
			g := p.anti[i]
			n := s.anti[antiKey(c, g)]
			for _, o := range [2]int32{out1, out2} {
				if o >= 0 && p.anti[o] == g {
					n--
				}
			}
			if n > 0 || (i == in1 && in2 >= 0 && p.anti[in2] == g) {
				return false
			}
		}
	}
	return true
}

// leavesMin reports whether out1 and out2 (-1 = none) are every item of
// bin c at its lowest ceiling.
func (ls *lsState) leavesMin(c int, out1, out2 int32) bool {
	s, p := ls.s, ls.p
	n := int32(0)
	for _, o := range [2]int32{out1, out2} {
		if o >= 0 {
			if oc, _ := p.kindCeil(int(o), c); oc <= s.minCeil[c] {
				n++
			}
		}
	}
	return n > 0 && n >= s.atMin[c]
}

// relocate moves single movable items to the used bin (or their home)
// where the objective drops the most, until no move helps. It is the
// descent of the power objective, and brings migrated items home when that
// costs nothing.
func (ls *lsState) relocate() {
	s, p := ls.s, ls.p
	for pass := 0; pass < 3; pass++ {
		improved := false
		for i := range p.n {
			if !p.movable(i) || s.assign[i] < 0 {
				continue
			}
			if ls.m.step(1) {
				return
			}
			cur := int(s.assign[i])
			// Under a migration cap, an item at home stays there once the
			// cap is reached.
			capped := p.maxMig > 0 && s.moved >= p.maxMig && p.home[i] == int32(cur)
			if capped {
				continue
			}
			leave := s.costWithout(i) - s.bcost[cur]
			best, bestV := -1, -1e-9
			for c := range p.m {
				if c == cur || (len(s.items[c]) == 0 && (p.home == nil || int(p.home[i]) != c)) {
					continue
				}
				v := leave + s.costWith(i, c) - s.bcost[c] + s.migDelta(i, c)
				if v < bestV && s.fits(i, c) {
					best, bestV = c, v
				}
			}
			if best >= 0 {
				s.move(i, best)
				improved = true
			}
		}
		if !improved {
			return
		}
	}
}

// homeSwaps exchanges a migrated item with a migrated item of its home
// bin when that costs less: the two bins keep their sizes about the same,
// and at least one instance no longer moves. From-scratch packings leave
// many such pairs, since they ignore where items are.
func (ls *lsState) homeSwaps() {
	s, p := ls.s, ls.p
	if p.home == nil {
		return
	}
	for i := range p.n {
		h, b := int(p.home[i]), int(s.assign[i])
		if !p.movable(i) || h < 0 || b < 0 || h == b || len(s.items[h]) == 0 {
			continue
		}
		if ls.m.step(1) {
			return
		}
		ls.inBuf = append(ls.inBuf[:0], s.items[h]...)
		for _, j32 := range ls.inBuf {
			j := int(j32)
			if !p.movable(j) || int(p.home[j]) == h {
				continue
			}
			delta := s.migDelta(i, h) + s.migDelta(j, b) +
				s.swapCost(h, i, j) - s.bcost[h] + s.swapCost(b, j, i) - s.bcost[b]
			if delta >= -1e-9 || !ls.swapFits(h, int32(i), -1, j32, -1) || !ls.swapFits(b, j32, -1, int32(i), -1) {
				continue
			}
			s.remove(i)
			s.remove(j)
			s.add(i, h)
			s.add(j, b)
			break
		}
	}
}

// replaceBins moves all the items of a used bin to one empty bin that costs
// less, when the objective drops.
func (ls *lsState) replaceBins() {
	s, p := ls.s, ls.p
	for b := range p.m {
		if len(s.items[b]) == 0 || ls.fixedIn[b] || ls.m.out() {
			continue
		}
		ls.scratch = append(ls.scratch[:0], s.items[b]...)
		triedShape := map[int32]bool{}
		for _, e32 := range p.order {
			e := int(e32)
			if len(s.items[e]) > 0 || p.idleCost(e) >= p.idleCost(b) || triedShape[p.shape[e]] {
				continue
			}
			triedShape[p.shape[e]] = true
			before := s.objective()
			movedBefore := s.moved
			ok := true
			var placed []int32
			for _, i := range ls.scratch {
				if !s.fits(int(i), e) {
					ok = false
					break
				}
				s.move(int(i), e)
				placed = append(placed, i)
			}
			capOK := p.maxMig == 0 || s.moved <= p.maxMig || s.moved <= movedBefore
			if ok && capOK && s.objective() < before-1e-9 {
				break
			}
			for _, i := range placed {
				s.move(int(i), b)
			}
		}
	}
}

// Pair descent: take two used bins, and share their items between them
// anew so that one is as full as possible (the split maximising the sum of
// the squared fills, the fitness of Falkenauer and of Fleszar and Hindi's
// bin-packing searches). Uneven bins are what the emptying move needs, and
// a split that leaves one bin empty removes it outright. The splits are
// enumerated exactly for pairs of at most pairMaxItems items.
const (
	pairMaxItems = 20
	// pairMaxNodes bounds one pair's enumeration.
	pairMaxNodes = 1 << 13
)

// pairDescent runs passes over pairs of bins in a seeded random order until
// a pass improves nothing, and reports whether anything improved.
func (ls *lsState) pairDescent() bool {
	s, p := ls.s, ls.p
	any := false
	for {
		var bins []int32
		for b := range p.m {
			if len(s.items[b]) > 0 && !ls.fixedIn[b] {
				bins = append(bins, int32(b))
			}
		}
		ls.rng.Shuffle(len(bins), func(i, j int) { bins[i], bins[j] = bins[j], bins[i] })
		improved := false
		for x := 0; x < len(bins); x++ {
			for y := x + 1; y < len(bins); y++ {
				if ls.m.step(1) {
					return any
				}
				b1, b2 := int(bins[x]), int(bins[y])
				if len(s.items[b1]) == 0 || len(s.items[b2]) == 0 ||
					len(s.items[b1])+len(s.items[b2]) > pairMaxItems {
					continue
				}
				if ls.resplit(b1, b2) {
					improved, any = true, true
				}
			}
		}
		if !improved || ls.optimal() {
			return any
		}
	}
}

// resplit shares the items of bins b1 and b2 anew if some split is more
// uneven than the present one.
func (ls *lsState) resplit(b1, b2 int) bool {
	s, p := ls.s, ls.p
	d := p.d
	u := append(append([]int32(nil), s.items[b1]...), s.items[b2]...)
	slices.SortFunc(u, func(a, b int32) int { return cmp.Compare(ls.w[b], ls.w[a]) })
	c1, c2 := p.capOf(b1), p.capOf(b2)
	same := slices.Equal(c1, c2)
	// fill is a bin's load as the sum over dimensions of load / capacity.
	inv1, inv2 := make([]float64, d), make([]float64, d)
	for k := range d {
		if c1[k] > 0 && !math.IsInf(c1[k], 1) {
			inv1[k] = 1 / c1[k]
		}
		if c2[k] > 0 && !math.IsInf(c2[k], 1) {
			inv2[k] = 1 / c2[k]
		}
	}
	fill := func(inv, load []float64) float64 {
		f := 0.0
		for k, x := range load {
			f += x * inv[k]
		}
		return f
	}
	total := make([]float64, d)
	// suffix[j] is the fill (in b1's terms) of the items u[j:], for the
	// bound of identical bins.
	suffix := make([]float64, len(u)+1)
	for j := len(u) - 1; j >= 0; j-- {
		sz := p.sizeOf(int(u[j]))
		for k, x := range sz {
			total[k] += x
		}
		suffix[j] = suffix[j+1] + fill(inv1, sz)
	}
	f1, f2 := fill(inv1, s.load[b1*d:b1*d+d]), fill(inv2, s.load[b2*d:b2*d+d])
	// Identical bins: f1² + f2² grows with the fuller one's fill alone (the
	// sum is fixed), so maximise b1's fill, b1 being the fuller by
	// symmetry; otherwise compare the sums of squares at the leaves.
	best := f1*f1 + f2*f2 + 1e-9
	if same {
		best = max(f1, f2) + 1e-9
	}
	la, lb := make([]float64, d), make([]float64, d)
	var bestMask uint32 // pairMaxItems ≤ 32
	found := false
	nodes := 0
	var rec func(j int, mask uint32, fa float64)
	rec = func(j int, mask uint32, fa float64) {
		if nodes++; nodes > pairMaxNodes {
			return
		}
		if same && fa+suffix[j] <= best {
			return // even all the rest in b1 would not beat the best
		}
		if j == len(u) {
			v := fa
			if !same {
				g1, g2 := fill(inv1, la), fill(inv2, lb)
				v = g1*g1 + g2*g2
			}
			if v > best {
				best, bestMask, found = v, mask, true
			}
			return
		}
		sz := p.sizeOf(int(u[j]))
		ok := true
		for k := range d {
			if la[k]+sz[k] > c1[k]*(1+eps)+eps {
				ok = false
				break
			}
		}
		if ok {
			for k := range d {
				la[k] += sz[k]
			}
			rec(j+1, mask|1<<j, fa+suffix[j]-suffix[j+1])
			for k := range d {
				la[k] -= sz[k]
			}
		}
		if same && j == 0 {
			return // the first item in b1: the mirror splits are the same
		}
		for k := range d {
			if lb[k]+sz[k] > c2[k]*(1+eps)+eps {
				for k2 := 0; k2 < k; k2++ {
					lb[k2] -= sz[k2]
				}
				return
			}
			lb[k] += sz[k]
		}
		rec(j+1, mask, fa)
		for k := range d {
			lb[k] -= sz[k]
		}
	}
	rec(0, 0, 0)
	if !found {
		return false
	}
	// Apply, checking every rule: the enumeration looked at capacities
	// only.
	before := slices.Clone(u)
	home := make([]int32, len(u))
	for j, i := range u {
		home[j] = s.assign[i]
		s.remove(int(i))
	}
	ok := true
	for j, i := range u {
		b := b2
		if bestMask&(1<<j) != 0 {
			b = b1
		}
		if !s.fits(int(i), b) {
			ok = false
		}
		s.add(int(i), b)
	}
	if !ok {
		for _, i := range before {
			s.remove(int(i))
		}
		for j, i := range before {
			s.add(int(i), int(home[j]))
		}
		return false
	}
	return true
}
