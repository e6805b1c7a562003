package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/ecrae/ecrae/optimizer"
)

// consolidate is step 2 of the ecrae policy: optimizer.Consolidate plans
// from the placement where (after the overloaded hosts have shed), one plan
// per cell of p.cell consecutive hosts (0: one plan for the whole data
// center). shift puts the plans' waves after the moves already decided.
//
// Why cells: the optimizer's budget is an iteration count per plan (3 per
// VM, at least 3000), and one of its iterations costs time in proportion
// to the hosts in use (the descent looks at every used host for each VM).
// One plan over a data center ten times CloudSim's is therefore a hundred
// times the work, and its budget per VM is lower than the floor gives a
// CloudSim-sized one, so the search stops in its first descent and leaves
// most hosts half empty. A cell is what one plan covers at CloudSim's size;
// cells are planned independently and their moves run together (no host
// is in two cells, so a cell's moves never wait for another's).
func (p *ecraePolicy) consolidate(e *engine, where []int, demand []float64, shift bool) ([]move, error) {
	size := p.cellSize(e)
	// The instances of each cell, in VM order.
	cells := (len(e.hosts) + size - 1) / size
	inst := make([][]int32, cells)
	for i := range e.vms {
		if where[i] >= 0 {
			k := where[i] / size
			inst[k] = append(inst[k], int32(i))
		}
	}
	var moves []move
	for k := range cells {
		if len(inst[k]) == 0 {
			continue // nothing to move, nothing to fill
		}
		lo := k * size
		hi := min(lo+size, len(e.hosts))
		planned, err := p.planCell(e, lo, hi, k, inst[k], where, demand, shift)
		if err != nil {
			return nil, err
		}
		moves = append(moves, planned...)
	}
	return moves, nil
}

// planCell runs the consolidation optimizer on hosts [lo, hi) and the
// instances inst placed there.
func (p *ecraePolicy) planCell(e *engine, lo, hi, cell int, inst []int32, where []int, demand []float64, shift bool) ([]move, error) {
	c := optimizer.Cluster{Instances: make([]optimizer.ClusterInstance, len(inst))}
	movable := false
	for j, i := range inst {
		v := &e.vms[i]
		h := where[i]
		pinned := p.settle > 0 && demand[h] >= p.settle*e.hosts[h].total
		movable = movable || !pinned
		c.Instances[j] = optimizer.ClusterInstance{
			ID: p.ids[i], Host: p.names[h],
			VCPUs: int(math.Round(v.total)), MemoryMB: v.ram,
			CPUUtil: v.req / v.total, CPUUtilKnown: true,
			Profile: p.profiles[v.ti],
			// A host that is busy enough is settled: its VMs stay, and the
			// plan is about emptying the others into the room left.
			Pinned: pinned,
		}
	}
	if !movable && !e.legacy {
		// Every VM stays: the plan would be empty (settled cells are most
		// of a large data center's), so the optimizer is not asked.
		return nil, nil
	}
	c.Hosts = make([]optimizer.ClusterHost, hi-lo)
	for h := lo; h < hi; h++ {
		hs := &e.hosts[h]
		mi := e.s.Hosts[h]
		c.Hosts[h-lo] = optimizer.ClusterHost{
			Name: p.names[h], Model: &p.models[mi],
			VCPUs: p.models[mi].Cores, CPURatio: 1e6,
			MemoryMB: hs.model.RAMMB, RAMRatio: p.ramRatio,
			// Under transitions nothing may go to a host that is not on.
			NoTarget: !e.placeable(h),
		}
	}
	// Cell 0 keeps the seed a single plan had: one cell is the whole
	// data center up to p.cell hosts, with the same result as before cells.
	seed := p.seed ^ p.step ^ uint64(cell)<<40
	plan, err := optimizer.Consolidate(c, optimizer.ConsolidateOptions{
		Algorithm: p.algorithm, Seed: seed,
		Budget:        optimizer.Budget{MaxIterations: cmp.Or(p.iters, max(3000, 3*len(inst)))},
		MaxMigrations: p.maxMig,
		Horizon:       p.horizon,
		MaxPerHost:    p.perHost,
		MaxParallel:   cmp.Or(p.parallel, hi-lo),
		Relieve:       p.relieve,
	})
	if err != nil {
		return nil, fmt.Errorf("ecrae: consolidation: %w", err)
	}
	w := 0
	if shift {
		w = 1
	}
	moves := make([]move, len(plan.Moves))
	for j, m := range plan.Moves {
		moves[j] = move{vm: int(inst[m.Instance]), to: lo + m.To, wave: m.Wave + w}
	}
	return moves, nil
}

// placeEvicted is placeEvictedIn per cell: a VM leaving an overloaded host
// goes to a host of its cell (Nova does not live-migrate across cells).
// The answer is one candidate list and one placement per VM of evict, as
// placeEvictedIn gives for a single cell.
func (p *ecraePolicy) placeEvicted(e *engine, evict []int32, demand []float64, ok func(int) bool) ([]int, optimizer.WhatIfResult) {
	size := p.cellSize(e)
	if size == len(e.hosts) {
		return p.placeEvictedIn(e, evict, demand, 0, len(e.hosts), ok)
	}
	byCell := map[int][]int{} // cell → positions in evict, in order
	var cells []int
	for k, vi := range evict {
		c := int(e.vms[vi].host) / size
		if byCell[c] == nil {
			cells = append(cells, c)
		}
		byCell[c] = append(byCell[c], k)
	}
	slices.Sort(cells)
	var cand []int
	res := optimizer.WhatIfResult{Placements: make([]optimizer.Placement, len(evict))}
	for _, c := range cells {
		pos := byCell[c]
		sub := make([]int32, len(pos))
		for j, k := range pos {
			sub[j] = evict[k]
		}
		cc, r := p.placeEvictedIn(e, sub, demand, c*size, min((c+1)*size, len(e.hosts)), ok)
		base := len(cand)
		cand = append(cand, cc...)
		for j, pl := range r.Placements {
			if pl.Host >= 0 {
				pl.Host += base
			}
			res.Placements[pos[j]] = pl
		}
		res.Unplaced += r.Unplaced
		res.TotalMarginalWatts += r.TotalMarginalWatts
	}
	return cand, res
}

// cellSize is the hosts per cell: p.cell, or all when 0 or larger (or in
// the scale benchmark's baseline, before cells).
func (p *ecraePolicy) cellSize(e *engine) int {
	if p.cell <= 0 || p.cell > len(e.hosts) || e.legacy {
		return len(e.hosts)
	}
	return p.cell
}
