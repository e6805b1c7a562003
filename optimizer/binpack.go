package optimizer

import (
	"cmp"
	"math"
	"slices"
)

// The constructive heuristics. Each places the movable items of a solution
// that holds only its fixed items; an item that fits nowhere stays
// unplaced (the caller puts it back home, or reports it).

// measure is how a vector of normalised sizes becomes one number.
type measure int

const (
	measureL1   measure = iota // Σ w_k x_k
	measureL2                  // √Σ w_k x_k²
	measureLinf                // max w_k x_k
)

// weights returns the per-dimension weights of the measures: 1 for every
// dimension that has a capacity ("unit"), or the mean normalised demand of
// the movable items ("avg": a dimension most items fill a lot counts more,
// the weighting the Mommessin et al. study found best for greedy VBP).
func (p *problem) weights(avg bool) []float64 {
	w := make([]float64, p.d)
	for k := range w {
		if p.ref[k] > 0 {
			w[k] = 1
		}
	}
	if !avg {
		return w
	}
	n := 0
	sum := make([]float64, p.d)
	for i := range p.n {
		if !p.movable(i) {
			continue
		}
		n++
		for k, x := range p.sizeOf(i) {
			if p.ref[k] > 0 {
				sum[k] += x / p.ref[k]
			}
		}
	}
	for k := range w {
		if n > 0 && w[k] > 0 {
			w[k] = sum[k] / float64(n)
		}
	}
	return w
}

// measureOf reduces x (already normalised) with weights w.
func measureOf(m measure, w, x []float64) float64 {
	v := 0.0
	for k, xk := range x {
		switch m {
		case measureL1:
			v += w[k] * xk
		case measureL2:
			v += w[k] * xk * xk
		case measureLinf:
			v = max(v, w[k]*xk)
		}
	}
	if m == measureL2 {
		return math.Sqrt(v)
	}
	return v
}

// normSize writes item i's normalised size into x.
func (p *problem) normSize(i int, x []float64) {
	for k, s := range p.sizeOf(i) {
		if p.ref[k] > 0 {
			x[k] = s / p.ref[k]
		} else {
			x[k] = 0
		}
	}
}

// effCap is the room bin b offers in dimension k: its capacity, with the
// ceiling of its items on the busy-cores dimension, and 100 % of its cores
// there when nothing limits it.
func (s *solution) effCap(b, k int) float64 {
	p := s.p
	c := p.cap[b*p.d+k]
	if k == p.util {
		c = min(c, s.minCeil[b])
		if math.IsInf(c, 1) {
			c = p.cores[b]
		}
	}
	return c
}

// unplacedMovable lists the movable items not placed yet.
func (s *solution) unplacedMovable() []int32 {
	var out []int32
	for i, b := range s.assign {
		if b < 0 && s.p.movable(i) {
			out = append(out, int32(i))
		}
	}
	return out
}

// sortDecreasing orders items by key, largest first; ties keep index order
// so the result does not depend on the sort's stability.
func sortDecreasing(items []int32, key []float64) {
	slices.SortFunc(items, func(a, b int32) int {
		if c := cmp.Compare(key[b], key[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
}

// sizeKeys is every item's measure.
func (p *problem) sizeKeys(m measure, w []float64) []float64 {
	key := make([]float64, p.n)
	x := make([]float64, p.d)
	for i := range key {
		p.normSize(i, x)
		key[i] = measureOf(m, w, x)
	}
	return key
}

// firstFit is the first bin in opening order that takes item i. An empty bin
// whose shape already failed for i is skipped: it would fail too. seen and
// tick implement that set without clearing it per item.
func (s *solution) firstFit(i int, seen []int32, tick int32) int {
	p := s.p
	for _, b32 := range p.order {
		b := int(b32)
		empty := len(s.items[b]) == 0
		if empty && seen[p.shape[b]] == tick {
			continue
		}
		if s.fits(i, b) {
			return b
		}
		if empty {
			seen[p.shape[b]] = tick
		}
	}
	return -1
}

// constructFFD is first-fit decreasing by measure m with weights w. It
// reports whether the budget cut it short.
func (s *solution) constructFFD(m measure, w []float64, mt *meter) bool {
	items := s.unplacedMovable()
	sortDecreasing(items, s.p.sizeKeys(m, w))
	return s.firstFitAll(items, mt)
}

// firstFitAll places items in the given order, each in the first bin (in
// opening order) that takes it. First fit costs O(bins) an item; when the
// budget runs out, the rest go by quickFit.
func (s *solution) firstFitAll(items []int32, mt *meter) bool {
	seen := make([]int32, s.p.nShapes)
	e := every{m: mt}
	for t, i := range items {
		if e.out() {
			s.quickFit(items[t:])
			return true
		}
		if b := s.firstFit(int(i), seen, int32(t+1)); b >= 0 {
			s.add(int(i), b)
		}
	}
	return false
}

// quickWindow is how many recently used bins quickFit tries before it opens
// a new one.
const quickWindow = 8

// quickFit places items in the given order in O(quickWindow) each: the
// last bins it used, else the next empty bin (in opening order) that takes
// the item. It is what a construction cut short by its budget finishes
// with: a valid packing in about linear time, worse than first fit. An item
// no empty bin takes stays unplaced.
func (s *solution) quickFit(items []int32) {
	p := s.p
	var window []int
	// cursor[k]: p.order[:cursor[k]] holds no empty bin that items of kind
	// k may enter. Bins only fill here, so a bin skipped as used or as of a
	// refused kind never becomes a candidate again; a bin too small for one
	// item is not skipped for the next.
	cursor := make([]int, max(1, len(p.allow)/max(1, p.nBinKinds)))
	for _, i32 := range items {
		i := int(i32)
		placed := false
		for k := len(window) - 1; k >= 0; k-- {
			if s.fits(i, window[k]) {
				s.add(i, window[k])
				placed = true
				break
			}
		}
		if placed {
			continue
		}
		kind := 0
		if p.itemKind != nil {
			kind = int(p.itemKind[i])
		}
		c := &cursor[kind]
		for *c < p.m {
			b := int(p.order[*c])
			if _, ok := p.kindCeil(i, b); ok && len(s.items[b]) == 0 && (p.target == nil || p.target[b]) {
				break
			}
			*c++
		}
		for j := *c; j < p.m; j++ {
			b := int(p.order[j])
			if len(s.items[b]) == 0 && s.fits(i, b) {
				s.add(i, b)
				if len(window) == quickWindow {
					window = window[1:]
				}
				window = append(window, b)
				break
			}
		}
	}
}

// constructBFD is best-fit decreasing: each item, largest first, goes to the
// used bin it leaves with the least room (by the same measure); a new bin is
// opened, in opening order, only when no used bin takes it.
func (s *solution) constructBFD(m measure, w []float64, mt *meter) bool {
	p := s.p
	items := s.unplacedMovable()
	sortDecreasing(items, p.sizeKeys(m, w))
	seen := make([]int32, p.nShapes)
	x := make([]float64, p.d)
	e := every{m: mt}
	for t, i32 := range items {
		if e.out() {
			s.quickFit(items[t:])
			return true
		}
		i := int(i32)
		best, bestV := -1, math.Inf(1)
		for b := range p.m {
			if len(s.items[b]) == 0 || !s.fits(i, b) {
				continue
			}
			s.residual(b, i, x)
			if v := measureOf(m, w, x); v < bestV || (v == bestV && b < best) {
				best, bestV = b, v
			}
		}
		if best < 0 {
			best = s.firstFit(i, seen, int32(t+1))
		}
		if best >= 0 {
			s.add(i, best)
		}
	}
	return false
}

// residual writes the normalised room bin b would keep after taking item i
// (i < 0: none) into x.
func (s *solution) residual(b, i int, x []float64) {
	p := s.p
	for k := range x {
		if p.ref[k] == 0 {
			x[k] = 0
			continue
		}
		r := min(s.effCap(b, k), p.ref[k]) - s.load[b*p.d+k]
		if i >= 0 {
			r -= p.size[i*p.d+k]
		}
		x[k] = max(r, 0) / p.ref[k]
	}
}

// binCentricScan bounds the items one bin-centric step compares on inputs
// larger than it (every shared benchmark instance is smaller: 1,000 items
// at most).
const binCentricScan = 4096

// constructBinCentric is Panigrahy et al.'s bin-centric greedy: open bins
// one at a time, in opening order (bins already holding fixed items first),
// and fill each with the item that best matches its remaining room until
// none fits. dot scores an item by the weighted dot product of its size and
// the room (largest wins); otherwise by the weighted squared L2 norm of
// room minus size (smallest wins).
//
// It costs O(n²·d); when the budget runs out before every item is placed,
// the rest go by quickFit in decreasing L2 order, so the time stays
// bounded on very large inputs. It reports whether that happened.
func (s *solution) constructBinCentric(dot bool, w []float64, m *meter) bool {
	p := s.p
	rem := s.unplacedMovable()
	seq := make([]int32, 0, p.m)
	for _, b := range p.order {
		if len(s.items[b]) > 0 {
			seq = append(seq, b)
		}
	}
	for _, b := range p.order {
		if len(s.items[b]) == 0 {
			seq = append(seq, b)
		}
	}
	// The order of the fallback is sorted now, inside the budget: at the
	// cut, only a linear pass is left to do.
	fallback := slices.Clone(rem)
	sortDecreasing(fallback, p.sizeKeys(measureL2, p.weights(false)))
	// Large inputs: rem in decreasing size, and each step scans only the
	// first binCentricScan items (the largest left), so that the
	// construction costs O(n·binCentricScan), not O(n²).
	big := len(rem) > binCentricScan
	if big {
		rem = slices.Clone(fallback)
	}
	// Normalised sizes once: the inner loop runs n² times.
	ns := make([]float64, p.n*p.d)
	for i := range p.n {
		p.normSize(i, ns[i*p.d:i*p.d+p.d])
	}
	room := make([]float64, p.d)
	left, dead := len(rem), 0
	for _, b32 := range seq {
		if left == 0 {
			break
		}
		b := int(b32)
		for {
			if m.out() {
				s.quickFit(slices.DeleteFunc(fallback, func(i int32) bool { return s.assign[i] >= 0 }))
				return true
			}
			s.residual(b, -1, room)
			best, bestV := -1, math.Inf(-1)
			scan := rem
			if big && len(rem) > binCentricScan {
				scan = rem[:binCentricScan]
			}
			for j, i32 := range scan {
				i := int(i32)
				if i < 0 || !s.fits(i, b) {
					continue
				}
				x := ns[i*p.d : i*p.d+p.d]
				v := 0.0
				for k, r := range room {
					if dot {
						v += w[k] * x[k] * r
					} else {
						dd := r - x[k]
						v -= w[k] * dd * dd
					}
				}
				if v > bestV {
					best, bestV = j, v
				}
			}
			if best < 0 && len(scan) < len(rem) {
				// Nothing in the window fits: the first of the rest
				// that does, so a bin is closed only when nothing fits.
				for j, i32 := range rem[len(scan):] {
					if i32 >= 0 && s.fits(int(i32), b) {
						best = len(scan) + j
						break
					}
				}
			}
			if best < 0 {
				break
			}
			s.add(int(rem[best]), b)
			left--
			if !big {
				// Keep rem in its original order (ties go to the first).
				rem = slices.Delete(rem, best, best+1)
				continue
			}
			// Deleting from the middle is O(n): mark, and compact once
			// the window is half dead.
			rem[best] = -1
			if dead++; dead > binCentricScan/2 {
				rem = slices.DeleteFunc(rem, func(i int32) bool { return i < 0 })
				dead = 0
			}
		}
	}
	return false
}

// constructPABFD is Beloglazov & Buyya's power-aware best-fit decreasing
// (CCPE 2012): items by decreasing CPU demand, each to the bin whose power
// grows the least with it (an empty bin's growth includes its idle power).
// Ties go to the bin first in opening order. On the bin-count objective
// every used bin grows by 0 and every empty one by 1: first fit by CPU.
func (s *solution) constructPABFD(mt *meter) bool {
	p := s.p
	items := s.unplacedMovable()
	dim := max(p.util, 0)
	key := make([]float64, p.n)
	for i := range key {
		key[i] = p.size[i*p.d+dim]
	}
	sortDecreasing(items, key)
	seen := make([]int32, p.nShapes)
	e := every{m: mt}
	for t, i32 := range items {
		if e.out() {
			s.quickFit(items[t:])
			return true
		}
		i := int(i32)
		best, bestV := -1, math.Inf(1)
		tick := int32(t + 1)
		for _, b32 := range p.order {
			b := int(b32)
			empty := len(s.items[b]) == 0
			if empty && seen[p.shape[b]] == tick {
				continue
			}
			if empty {
				seen[p.shape[b]] = tick // one empty bin per shape is enough
			}
			if !s.fits(i, b) {
				continue
			}
			if v := s.costWith(i, b) - s.bcost[b]; v < bestV-1e-12 {
				best, bestV = b, v
			}
		}
		if best >= 0 {
			s.add(i, best)
		}
	}
	return false
}
