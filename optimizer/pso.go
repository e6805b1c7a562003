package optimizer

import (
	"math"
	"math/rand/v2"
	"slices"
)

// The seed (§4.2.3) proposes particle swarm optimisation for re-packing. A
// placement is discrete, so the swarm flies over random keys (Bean, ORSA J.
// Computing 1994): a particle is one real number per item, the items are
// placed by first fit in decreasing key order, and the fitness is the
// objective of that placement. Velocities follow the constriction form of
// Clerc and Kennedy (IEEE TEC 2002).
const (
	psoParticles = 20
	psoInertia   = 0.7298
	psoCognitive = 1.49618
	psoSocial    = 1.49618
	psoVMax      = 0.25
	// psoStall ends the flight after this many iterations without a better
	// global best.
	psoStall = 40
)

// constructPSO places the movable items with the swarm. One particle starts
// from the FFD (L2) order, so the swarm never ends worse than FFD.
func (s *solution) constructPSO(rng *rand.Rand, m *meter) {
	p := s.p
	items := s.unplacedMovable()
	n := len(items)
	if n == 0 {
		return
	}
	base := s.clone()
	work := s.clone()
	best := s.clone()
	bestFit := math.Inf(1)

	x := make([][]float64, psoParticles)
	v := make([][]float64, psoParticles)
	pb := make([][]float64, psoParticles)
	pbFit := make([]float64, psoParticles)
	var gb []float64
	// FFD-L2 order as keys: the largest item gets the highest key.
	ffd := slices.Clone(items)
	sortDecreasing(ffd, p.sizeKeys(measureL2, p.weights(false)))
	rank := make(map[int32]int, n)
	for r, i := range ffd {
		rank[i] = r
	}
	for k := range x {
		x[k] = make([]float64, n)
		v[k] = make([]float64, n)
		for j := range x[k] {
			if k == 0 {
				x[k][j] = 1 - float64(rank[items[j]])/float64(n)
			} else {
				x[k][j] = rng.Float64()
			}
			v[k][j] = (rng.Float64()*2 - 1) * psoVMax
		}
	}
	order := make([]int32, n)
	idx := make([]int32, n)
	decode := func(keys []float64) float64 {
		work.copyFrom(base)
		for j := range idx {
			idx[j] = int32(j)
		}
		sortDecreasing(idx, keys)
		for j, t := range idx {
			order[j] = items[t]
		}
		work.firstFitAll(order, m)
		return work.fitness()
	}
	for k := range x {
		f := decode(x[k])
		pb[k], pbFit[k] = slices.Clone(x[k]), f
		if f < bestFit {
			bestFit, gb = f, pb[k]
			best.copyFrom(work)
		}
		if m.step(1) {
			break
		}
	}
	stall := 0
	for stall < psoStall && m.stopped == "" {
		improved := false
		for k := range x {
			xk, vk, pk := x[k], v[k], pb[k]
			for j := range xk {
				vel := psoInertia*vk[j] +
					psoCognitive*rng.Float64()*(pk[j]-xk[j]) +
					psoSocial*rng.Float64()*(gb[j]-xk[j])
				vel = max(-psoVMax, min(psoVMax, vel))
				vk[j] = vel
				xk[j] = max(0, min(1, xk[j]+vel))
			}
			f := decode(xk)
			if f < pbFit[k] {
				copy(pk, xk)
				pbFit[k] = f
				if f < bestFit-1e-12 {
					bestFit, gb = f, pk
					best.copyFrom(work)
					improved = true
				}
			}
			if m.step(1) {
				break
			}
		}
		if improved {
			stall = 0
		} else {
			stall++
		}
	}
	s.copyFrom(best)
}

// fitness ranks decoded placements: the objective, then (by less than the
// cheapest bin) fuller bins first, since uneven bins are the ones a later
// search can empty (Falkenauer's bin-packing fitness). Unplaced items cost
// as much as a bin each.
func (s *solution) fitness() float64 {
	p := s.p
	unit := math.Inf(1)
	for b := range p.m {
		unit = min(unit, p.idleCost(b))
	}
	if !(unit > 0) || math.IsInf(unit, 1) {
		unit = 1
	}
	fill := 0.0
	for b := range p.m {
		if len(s.items[b]) == 0 {
			continue
		}
		f, dims := 0.0, 0
		for k := range p.d {
			if p.ref[k] > 0 {
				f += s.load[b*p.d+k] / min(s.effCap(b, k), p.ref[k]*1e6)
				dims++
			}
		}
		if dims > 0 {
			f /= float64(dims)
		}
		fill += f * f
	}
	missing := 0
	for _, b := range s.assign {
		if b < 0 {
			missing++
		}
	}
	bonus := 0.0
	if s.used > 0 {
		bonus = 0.5 * unit * fill / float64(s.used)
	}
	return s.objective() + float64(missing)*unit*10 - bonus
}
