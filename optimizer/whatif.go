package optimizer

import (
	"cmp"
	"slices"
)

// WhatIfItem is one instance of a what-if batch.
type WhatIfItem struct {
	Request Request
	Profile Profile
}

// Alternative is a runner-up host for one placement.
type Alternative struct {
	Host          int // index in the hosts given to WhatIf
	Score         float64
	MarginalWatts float64
}

// Placement is the answer for one WhatIfItem.
type Placement struct {
	// Host is the index of the chosen host in the hosts given to WhatIf, or
	// -1 when no host passed the filters.
	Host          int
	Score         float64
	MarginalWatts float64
	Factor        float64
	// Components are the chosen host's, with explanations.
	Components []Component
	// Alternatives are the next best hosts, best first.
	Alternatives []Alternative
	// Verdicts holds every host's verdict, in host order, when Host is -1;
	// nil otherwise.
	Verdicts []Verdict
}

// WhatIfResult is the answer of WhatIf.
type WhatIfResult struct {
	Placements         []Placement // one per item, in order
	TotalMarginalWatts float64     // over the placed items
	Unplaced           int
}

// WhatIf places items one after another: each is filtered and weighed against
// the hosts as the earlier items left them, and goes to the best host (ties
// go to the first in input order). The chosen host's capacity is then
// consumed on a private copy (vCPUs, RAM, disk, instance count, utilisation),
// so a host the batch woke does not pay idle power again. The caller's hosts
// are never modified. weights: as WeighHosts. maxAlternatives ≤ 0 returns no
// alternatives.
//
// Scores are normalised among the hosts that passed the filters for each
// item. Only the chosen host's components get explanations.
func WhatIf(items []WhatIfItem, hosts []Host, weights map[string]float64, maxAlternatives int) WhatIfResult {
	n := len(hosts)
	work := slices.Clone(hosts)
	// Utilisation is carried separately: an estimated host's estimate would
	// otherwise count the placed vCPUs at load 1 instead of the tag's load.
	util := make([]float64, n)
	measured := make([]bool, n)
	for i := range work {
		util[i], measured[i] = work[i].CurrentUtilization()
	}
	active, k := enabled(weights)
	var e evaluator
	verdicts := make([]Verdict, n)
	alive := make([]int, 0, n)         // indices of the hosts that passed
	comps := make([]Component, 0, n*k) // their components, host-major
	scores := make([]float64, 0, n)
	var line []byte // one explanation at a time
	res := WhatIfResult{Placements: make([]Placement, len(items))}

	for it := range items {
		p := &res.Placements[it]
		st := newState(items[it].Request, items[it].Profile)
		e.reset(n)
		if e.runFilters(st, verdicts, func(i int, f *fit) { st.fit(&work[i], util[i], measured[i], f) }) == 0 {
			p.Host = -1
			p.Verdicts = slices.Clone(verdicts)
			e.reasons(p.Verdicts)
			res.Unplaced++
			continue
		}

		alive, comps, scores = alive[:0], comps[:0], scores[:0]
		for i := range e.fits {
			f := &e.fits[i]
			if f.out {
				continue
			}
			st.marginal(f)
			alive = append(alive, i)
			for _, a := range active[:k] {
				comps = append(comps, Component{Scorer: a.s.name(), Weight: a.w, Raw: a.s.raw(st, f)})
			}
		}
		for j, a := range active[:k] {
			normalizeColumn(comps, j, k, a.s.lowerIsBetter())
		}
		best := 0
		for a := range alive {
			s := 0.0
			for _, c := range comps[a*k : (a+1)*k] {
				s += c.Weighted
			}
			scores = append(scores, s)
			if s > scores[best] {
				best = a
			}
		}

		b := alive[best]
		f := &e.fits[b]
		p.Host, p.Score, p.MarginalWatts, p.Factor = b, scores[best], f.marginal, f.factor
		p.Alternatives = alternatives(alive, scores, e.fits, best, maxAlternatives)
		p.Components = slices.Clone(comps[best*k : (best+1)*k])
		for j, a := range active[:k] {
			line = a.s.explain(st, f, p.Components[j].Raw, line[:0])
			p.Components[j].Explanation = string(line)
		}
		res.TotalMarginalWatts += f.marginal

		h := &work[b]
		h.VCPUsUsed += max(items[it].Request.VCPUs, 0)
		h.FreeRAMMB -= max(items[it].Request.MemoryMB, 0)
		h.FreeDiskMB -= max(items[it].Request.DiskGB, 0) * 1024
		h.NumInstances++
		util[b] = clamp01(f.u + f.du)
		h.Utilization = util[b]
	}
	return res
}

// alternatives returns up to limit runners-up after the host at position
// best of alive, by score, ties in input order (alive is ascending).
func alternatives(alive []int, scores []float64, fits []fit, best, limit int) []Alternative {
	limit = min(limit, len(alive)-1)
	if limit <= 0 {
		return nil
	}
	// better orders positions in alive by score, then input order.
	better := func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	}
	var top []int // positions in alive, best first
	if limit > 32 {
		// Many runners-up: one sort beats insertion.
		top = make([]int, 0, len(alive)-1)
		for a := range alive {
			if a != best {
				top = append(top, a)
			}
		}
		slices.SortFunc(top, better)
		top = top[:limit]
	} else {
		// Few: keep the best limit in a small sorted slice, O(n × limit).
		top = make([]int, 0, limit+1)
		for a := range alive {
			if a == best || (len(top) == limit && better(a, top[limit-1]) >= 0) {
				continue
			}
			at, _ := slices.BinarySearchFunc(top, a, better)
			top = slices.Insert(top, at, a)
			if len(top) > limit {
				top = top[:limit]
			}
		}
	}
	out := make([]Alternative, len(top))
	for i, a := range top {
		out[i] = Alternative{Host: alive[a], Score: scores[a], MarginalWatts: fits[alive[a]].marginal}
	}
	return out
}
