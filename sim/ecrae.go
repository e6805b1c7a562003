package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/power"
)

// ecraePolicy is ECRAE as the service runs it, fed from the simulator
// instead of Nova and the live view:
//
//   - placement of a new VM, and of a VM that must leave an overloaded host,
//     is the service's filter and score chain (optimizer.WhatIf, the code
//     behind the WhatIf RPC and Nova's weigher): among the hosts that can
//     take it, the one with the best weighted energy and consolidation
//     score;
//   - every step, the consolidation optimizer (optimizer.Consolidate, the
//     code behind PlanRebalance) plans a cheaper placement from the current
//     one, pricing each migration's energy, and orders the live migrations
//     into waves that keep every intermediate state within the rules; the
//     engine starts each move when optimizer.Gate lets it, as the
//     executor does.
//
// Units: the optimizer counts utilisation in cores and vCPUs; here a
// "core" is one MIPS, so a host model has as many cores as MIPS and a VM
// as many vCPUs as its nominal MIPS, its measured utilisation the busy
// share. That makes busy cores = MIPS demanded, which is what the power
// curves and CloudSim's capacity speak in. A VM whose PE is faster than a
// model's PE may not run there (exact candidates), since a VM PE never gets
// more than one host PE.
type ecraePolicy struct {
	ceiling   float64 // utilisation ceiling for placement and consolidation
	overload  float64 // relieve a host asking for more than this share
	horizon   time.Duration
	maxMig    int
	iters     int // 0: 3 per VM, at least 3000
	weights   map[string]float64
	algorithm string
	seed      uint64
	cell      int // hosts per consolidation plan (0: all), see consolidate
	perHost   int
	parallel  int
	settle    float64
	headroom  power.Headroom
	relieve   float64

	models   []optimizer.Model
	profiles []optimizer.Profile // per VM type, for consolidation
	names    []string            // host names
	ids      []string            // VM ids
	ramRatio float64
	step     uint64
}

// ecraeDefaults are the options of the ecrae policy, tuned on the three
// shared PlanetLab days (CloudSim mode; see sim/README.md):
//
//	ceiling     host utilisation the placement and the plan may fill up to
//	overload    a host asked for more than this share of its MIPS sheds VMs
//	relieve     an overloaded host sheds VMs down to this share of its MIPS
//	            (0: the ceiling), and the plan keeps a host busy past the
//	            ceiling up to it (optimizer.ConsolidateOptions.Relieve)
//	settle      hosts at least this busy keep their VMs in the step's plan
//	            (pinned); the plan empties the others into the room left
//	horizon     seconds over which a migration's energy is spread (s)
//	maxmig      cap on the migrations of one plan (0 = none)
//	iterations  the optimizer's iteration budget per step (0 = 3 per VM,
//	            at least 3000)
//	perhost     live migrations in flight per host (Nova's
//	            max_concurrent_live_migrations)
//	parallel    live migrations in flight in all (0 = no limit)
//	energy, consolid  the placement scorers' weights (the service's defaults)
//	ls          1 = the optimizer's local search after "current", 0 = none
func ecraeDefaults() map[string]float64 {
	h, err := power.ParseHeadroom(power.DefaultHeadroom)
	if err != nil {
		panic("power.DefaultHeadroom: " + err.Error()) // a constant: its test reads it
	}
	return map[string]float64{
		"ceiling":    0.9,
		"overload":   1.0,
		"settle":     0.5,
		"cell":       CloudSimHosts,
		"horizon":    3600,
		"maxmig":     0,
		"iterations": 0,
		"perhost":    3,
		"parallel":   0,
		"energy":     1,
		"consolid":   0.5,
		"ls":         1,
		"relieve":    1,
		// Under transitions: the service's default --power-headroom
		// (empty powered-on hosts, free share).
		"headroom_hosts": float64(h.Hosts),
		"headroom_vcpus": h.VCPUShare,
	}
}

func buildEcrae(p map[string]float64, s *Setup, seed uint64) (policy, error) {
	if !(p["ceiling"] > 0 && p["ceiling"] <= 1) {
		return nil, fmt.Errorf("%w: ecrae: ceiling must be in (0, 1], got %g", ErrPolicy, p["ceiling"])
	}
	if r := p["relieve"]; !(r >= 0 && r <= 1) {
		return nil, fmt.Errorf("%w: ecrae: relieve must be 0 (the ceiling) or in (0, 1], got %g", ErrPolicy, r)
	}
	if !(p["overload"] > 0) {
		return nil, fmt.Errorf("%w: ecrae: overload must be > 0, got %g", ErrPolicy, p["overload"])
	}
	algo := "current"
	if p["ls"] != 0 {
		algo = "current+ls"
	}
	return &ecraePolicy{
		ceiling:   p["ceiling"],
		overload:  p["overload"],
		horizon:   time.Duration(max(p["horizon"], 1) * float64(time.Second)),
		maxMig:    int(p["maxmig"]),
		iters:     int(p["iterations"]),
		weights:   map[string]float64{optimizer.ScorerEnergy: p["energy"], optimizer.ScorerConsolidation: p["consolid"]},
		algorithm: algo,
		seed:      seed,
		cell:      int(p["cell"]),
		perHost:   max(int(p["perhost"]), 1),
		parallel:  int(p["parallel"]),
		settle:    p["settle"],
		relieve:   p["relieve"],
		headroom:  power.Headroom{Hosts: int(p["headroom_hosts"]), VCPUShare: min(p["headroom_vcpus"], 1)},
	}, nil
}

func (*ecraePolicy) nonPowerAware() bool { return false }

func (p *ecraePolicy) init(e *engine) error {
	s := e.s
	e.parallel, e.perHost = p.parallel, p.perHost
	p.models = make([]optimizer.Model, len(s.Models))
	for i, m := range s.Models {
		p.models[i] = optimizer.Model{Name: m.Name, ISA: m.ISA, Cores: int(math.Round(m.TotalMIPS())), MemoryMB: m.RAMMB, Curve: m.Curve}
	}
	p.profiles = make([]optimizer.Profile, len(s.VMTypes))
	for i, t := range s.VMTypes {
		p.profiles[i] = p.profile(s, &t, p.ceiling)
	}
	p.names = make([]string, len(e.hosts))
	for h := range p.names {
		p.names[h] = "h" + strconv.Itoa(h)
	}
	p.ids = make([]string, len(e.vms))
	for i := range p.ids {
		p.ids[i] = "vm" + strconv.Itoa(i)
	}
	// CloudSim mode: RAM is not asked for after start, so it must not
	// bind; the real size still prices a migration.
	p.ramRatio = 1
	if e.s.Mode == ModeCloudSim {
		p.ramRatio = 1e6
	}
	return nil
}

// profile is the tag of a VM type: the ceiling, and exact candidates when
// some models' PEs are too slow for its PEs.
func (p *ecraePolicy) profile(s *Setup, t *VMType, ceiling float64) optimizer.Profile {
	prof := optimizer.Profile{Tag: t.Name, UtilizationCeiling: ceiling}
	var ok []optimizer.Candidate
	for _, m := range s.Models {
		if m.PEMIPS >= t.MIPS {
			ok = append(ok, optimizer.Candidate{Architecture: m.Name, PerformanceFactor: 1})
		}
	}
	if len(ok) < len(s.Models) {
		prof.Mode, prof.Candidates = optimizer.ModeExact, ok
	}
	return prof
}

// hostView is the placement chain's view of host h: demand measured, the
// nominal size of its VMs as vCPUs in use.
func (p *ecraePolicy) hostView(e *engine, h int, demand float64) optimizer.Host {
	hs := &e.hosts[h]
	mi := e.s.Hosts[h]
	used := 0.0
	ram := int64(0)
	for _, vi := range hs.vms {
		used += e.vms[vi].total
		ram += e.vms[vi].ram
	}
	return optimizer.Host{
		Name: p.names[h], ISA: hs.model.ISA, Model: &p.models[mi],
		VCPUsTotal: p.models[mi].Cores, VCPUsUsed: int(math.Round(used)), CPURatio: 1e6,
		TotalRAMMB: hs.model.RAMMB, FreeRAMMB: hs.model.RAMMB - ram, RAMRatio: p.ramRatio,
		NumInstances: len(hs.vms),
		Utilization:  min(demand/hs.total, 1), UtilizationMeasured: true,
	}
}

// place is a new VM at time 0: the service's chain over the hosts that can
// take its full size now (the engine's test stands for Nova's other
// filters: RAM, and CloudSim's bandwidth at start).
func (p *ecraePolicy) place(e *engine, vi int32) int {
	v := &e.vms[vi]
	cand := p.candidates(e, 0, len(e.hosts), func(h int) bool { return e.suitable(h, vi) && e.placeable(h) }, 1)
	hosts := make([]optimizer.Host, len(cand))
	for k, h := range cand {
		hosts[k] = p.hostView(e, h, e.allocated(h))
	}
	if len(cand) == 0 {
		return -1
	}
	prof := p.profile(e.s, v.typ, 1) // a new VM must fit its full size
	prof.CPULoad = 1
	req := optimizer.Request{Name: p.ids[vi], VCPUs: int(math.Round(v.total)), MemoryMB: v.ram}
	res := optimizer.WhatIf([]optimizer.WhatIfItem{{Request: req, Profile: prof}}, hosts, p.weights, 0)
	if res.Placements[0].Host < 0 {
		return -1
	}
	return cand[res.Placements[0].Host]
}

// placeEvictedIn runs the placement chain for the VMs leaving overloaded
// hosts over the hosts of [lo, hi) that ok accepts, and says where each
// goes (cand[Host]).
// It first offers a few empty hosts per model (candidates); if the VMs
// took all of one model's, the room was short of the whole list's, and it
// runs again with as many as VMs: the same answer as with every host.
func (p *ecraePolicy) placeEvictedIn(e *engine, evict []int32, demand []float64, lo, hi int, ok func(int) bool) ([]int, optimizer.WhatIfResult) {
	items := p.evictItems(e, evict)
	for spare := min(len(evict), 4); ; spare = len(evict) {
		cand := p.candidates(e, lo, hi, ok, spare)
		hosts := make([]optimizer.Host, len(cand))
		for k, h := range cand {
			hosts[k] = p.hostView(e, h, demand[h])
		}
		res := optimizer.WhatIf(items, hosts, p.weights, 0)
		if spare >= len(evict) {
			return cand, res
		}
		used := make([]int, len(e.s.Models))
		short := false
		for _, pl := range res.Placements {
			if pl.Host < 0 || len(e.hosts[cand[pl.Host]].vms) > 0 {
				continue
			}
			m := e.s.Hosts[cand[pl.Host]]
			used[m]++
			short = short || used[m] >= spare
		}
		if !short {
			return cand, res
		}
	}
}

// evictItems are the placement requests of the VMs leaving overloaded
// hosts.
func (p *ecraePolicy) evictItems(e *engine, evict []int32) []optimizer.WhatIfItem {
	items := make([]optimizer.WhatIfItem, len(evict))
	for k, vi := range evict {
		v := &e.vms[vi]
		prof := p.profiles[e.vms[vi].ti]
		prof.CPULoad = v.req / v.total
		items[k] = optimizer.WhatIfItem{
			Request: optimizer.Request{Name: p.ids[vi], VCPUs: int(math.Round(v.total)), MemoryMB: v.ram},
			Profile: prof,
		}
	}
	return items
}

// power keeps the service's headroom per architecture with the service's
// rule (power.Headroom, power.Spare): the empty hosts go off while the
// hosts that stay on or are booting (capacity on its way, as the service
// counts the hosts it woke) keep it, the last in host order first; if it
// is short, hosts that are off wake, the first in host order first. A
// "vCPU" is a MIPS here, and free means not asked for at the last update;
// RAM is not counted (CloudSim's RAM does not bind after start).
func (p *ecraePolicy) power(e *engine, _ float64, empty []int) (off, wake []int) {
	spare := map[string]power.Spare{}
	for h := range e.hosts {
		hs := &e.hosts[h]
		if hs.pstate != powerOn && hs.pstate != powerBooting {
			continue
		}
		s := spare[hs.model.ISA]
		s.VCPUs += hs.total
		s.FreeVCPUs += max(0, hs.total-e.requested(h))
		if len(hs.vms) == 0 {
			s.EmptyHosts++
		}
		spare[hs.model.ISA] = s
	}
	for k := len(empty) - 1; k >= 0; k-- {
		hs := &e.hosts[empty[k]]
		if s := spare[hs.model.ISA].Less(hs.total, 0); p.headroom.Meets(s) {
			spare[hs.model.ISA] = s
			off = append(off, empty[k])
		}
	}
	for h := range e.hosts {
		hs := &e.hosts[h]
		if s := spare[hs.model.ISA]; hs.pstate == powerOff && !p.headroom.Meets(s) {
			spare[hs.model.ISA] = s.More(hs.total, 0)
			wake = append(wake, h)
		}
	}
	return off, wake
}

// candidates lists in host order the hosts of [lo, hi) that ok accepts:
// all that hold a VM, and of the empty ones at most spare per model (with
// e.scan, all). Empty
// hosts of one model are alike to the placement chain: its scores are
// normalised between the lowest and highest raw value, which copies do not
// change, and the first best host wins; so the later copies could take a
// VM only after spare earlier ones had taken one each.
func (p *ecraePolicy) candidates(e *engine, lo, hi int, ok func(h int) bool, spare int) []int {
	left := make([]int, len(e.s.Models))
	for m := range left {
		left[m] = spare
	}
	var cand []int
	for h := lo; h < hi; h++ {
		if len(e.hosts[h].vms) == 0 && !e.scan {
			if m := e.s.Hosts[h]; left[m] > 0 && ok(h) {
				left[m]--
				cand = append(cand, h)
			}
			continue
		}
		if ok(h) {
			cand = append(cand, h)
		}
	}
	return cand
}

func (p *ecraePolicy) optimize(e *engine, t float64) ([]move, error) {
	p.step++
	n := len(e.hosts)
	demand := make([]float64, n) // MIPS asked for, after the moves decided so far
	where := make([]int, len(e.vms))
	for h := range e.hosts {
		for _, vi := range e.hosts[h].vms {
			demand[h] += e.vms[vi].req
			where[vi] = h
		}
	}
	for i := range e.vms {
		if !e.vms[i].alive {
			where[i] = -1
		}
	}

	// 1. Overloaded hosts shed VMs, least RAM first (the quickest to
	// move), down to relieve of their MIPS (the ceiling when 0), as the
	// service's plan relieves a host (optimizer.ConsolidateOptions.Relieve);
	// the placement chain finds them a host among those that are not
	// overloaded.
	var moves []move
	over := make([]bool, n)
	var evict []int32
	for h := range e.hosts {
		hs := &e.hosts[h]
		if demand[h] <= p.overload*hs.total && hs.util >= hs.req {
			continue
		}
		over[h] = true
		vms := slices.Clone(hs.vms)
		slices.SortStableFunc(vms, func(a, b int32) int {
			if c := cmp.Compare(e.vms[a].ram, e.vms[b].ram); c != 0 {
				return c
			}
			return cmp.Compare(e.vms[b].req, e.vms[a].req)
		})
		for _, vi := range vms {
			if demand[h] <= p.shedTo()*hs.total && hs.peCap >= e.vms[vi].req/float64(e.vms[vi].pes) {
				continue
			}
			evict = append(evict, vi)
			demand[h] -= e.vms[vi].req
		}
	}
	if len(evict) > 0 {
		slices.SortStableFunc(evict, func(a, b int32) int { return cmp.Compare(e.vms[b].req, e.vms[a].req) })
		cand, res := p.placeEvicted(e, evict, demand, func(h int) bool { return !over[h] && e.placeable(h) })
		if res.Unplaced > 0 && e.s.Transitions.Enabled {
			// Hosts that are off count only when no host that is on can
			// take a VM: then the move wakes one (and waits for its boot).
			cand, res = p.placeEvicted(e, evict, demand, func(h int) bool { return !over[h] })
		}
		for k, pl := range res.Placements {
			vi := evict[k]
			if pl.Host < 0 {
				demand[where[vi]] += e.vms[vi].req // stays
				continue
			}
			h := cand[pl.Host]
			demand[h] += e.vms[vi].req
			where[vi] = h
			moves = append(moves, move{vm: int(vi), to: h})
		}
	}

	// 2. The consolidation optimizer plans from there.
	planned, err := p.consolidate(e, where, demand, len(moves) > 0)
	if err != nil {
		return nil, err
	}
	return append(moves, planned...), nil
}

// shedTo is the share of its MIPS an overloaded host sheds down to.
func (p *ecraePolicy) shedTo() float64 {
	if p.relieve > 0 {
		return p.relieve
	}
	return p.ceiling
}
