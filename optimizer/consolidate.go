package optimizer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Consolidation (seed §4.2.3, issue 5), the pipeline of Consolidate:
//
//	compile   the snapshot becomes a vector packing problem: per instance
//	          vCPUs, RAM, disk and busy cores; per host its capacities after
//	          reservations and allocation ratios; kinds (ISA, exact tags)
//	          and ceilings; anti-affinity groups; fixed instances (pinned,
//	          on a stale or down host, in an affinity group)    [cluster.go]
//	bound     lower bounds on hosts and watts                    [bounds.go]
//	repair    when hosts are overloaded, a greedy offload from
//	          where the instances are, then the local search; a
//	          placement with less overload always wins    [repair.go]
//	search    a named constructor (binpack.go, pso.go), the
//	          relabelling of a from-scratch packing onto the hosts
//	          the instances are on (algorithms.go), the local search
//	          (localsearch.go); under a migration cap, a repair
//	sequence  an order of live migrations, each feasible alone,
//	          with detours to break cycles, or a shorter plan  [plan.go]
//	waves     concurrent groups within the limits, each safe with
//	          all its migrations in flight at once              [plan.go]
//
// The objective is the power of the hosts left holding instances (idle
// plus load-dependent, by their curves; an emptied host is a candidate to
// power down) plus the energy of the migrations spread over a horizon,
// after overload, which comes first (repair.go).
//
// The budget covers every phase: the search may use 80 % of it, the
// constructors 90 % of that before they finish by quickFit; sequencing and
// waves stop at a safe prefix when it ends.

// ConsolidateOptions tunes Consolidate. Zero values take the defaults.
type ConsolidateOptions struct {
	Algorithm string // "" = DefaultAlgorithm
	Seed      uint64
	Budget    Budget
	// MaxMigrations caps the live migrations of the plan (detours
	// included); 0 = no cap.
	MaxMigrations int
	// The energy of one live migration, after Liu et al. ("Performance and
	// energy modeling for live migration of virtual machines", HPDC 2011):
	// E = MigrationJoulesPerMB × memory + MigrationJoules. Defaults 0.512 J
	// per MB and 20.165 J; a negative value counts as 0.
	MigrationJoulesPerMB float64
	MigrationJoules      float64
	// Horizon spreads a migration's energy over the time the new placement
	// is expected to last, to compare it with watts; default 1 h.
	Horizon time.Duration
	// MaxPerHost bounds the migrations in flight touching one host (as
	// source or destination; Nova's max_concurrent_live_migrations
	// defaults to 1); default 1. MaxParallel bounds them in all; default 8.
	MaxPerHost  int
	MaxParallel int
	// Relieve is the share of a host's cores (0, 1] its own instances may
	// keep busy past their ceiling before the plan moves some of them
	// away, and the share it moves them down to. A host between its
	// ceiling and Relieve keeps what it has and receives nothing (the
	// ceiling still bounds every destination). 0 = the ceiling: a host over
	// it is relieved down to it. A higher value trades a little headroom on
	// hosts that are already busy for the migrations of relieving them at
	// every fluctuation (sim/README.md measures it).
	Relieve float64

	// legacySearch runs the search as it was before issue 15's density
	// work, for BenchmarkConsolidateDensity's baseline in the same run.
	legacySearch bool
}

// Default migration energy model (Liu et al., HPDC 2011).
const (
	DefaultMigrationJoulesPerMB = 0.512
	DefaultMigrationJoules      = 20.165
	DefaultHorizon              = time.Hour
	DefaultMaxPerHost           = 1
	DefaultMaxParallel          = 8
)

// Validate reports the first option out of range, naming it.
func (o *ConsolidateOptions) Validate() error {
	if math.IsNaN(o.Relieve) || o.Relieve < 0 || o.Relieve > 1 {
		return fmt.Errorf("relieve: %v is not 0 (the ceiling) or a share of a host's cores in (0, 1]", o.Relieve)
	}
	return nil
}

func (o *ConsolidateOptions) defaults() {
	if o.MigrationJoulesPerMB == 0 {
		o.MigrationJoulesPerMB = DefaultMigrationJoulesPerMB
	}
	if o.MigrationJoules == 0 {
		o.MigrationJoules = DefaultMigrationJoules
	}
	o.MigrationJoulesPerMB = max(o.MigrationJoulesPerMB, 0)
	o.MigrationJoules = max(o.MigrationJoules, 0)
	if o.Horizon <= 0 {
		o.Horizon = DefaultHorizon
	}
	if o.MaxPerHost <= 0 {
		o.MaxPerHost = DefaultMaxPerHost
	}
	if o.MaxParallel <= 0 {
		o.MaxParallel = DefaultMaxParallel
	}
	o.MaxMigrations = max(o.MaxMigrations, 0)
}

// Move is one live migration of a plan.
type Move struct {
	Instance int // index in Cluster.Instances
	From, To int // indices in Cluster.Hosts
	// Wave numbers the group of moves that may run together, from 0: the
	// plan is feasible whenever each move starts once its instance's
	// earlier move and every move of an earlier wave out of its
	// destination have finished, within MaxPerHost (Gate), which running
	// the waves one after the other also satisfies.
	Wave int
	// Detour marks a stop on a host with room to spare, to break a
	// deadlock; the instance moves on later in the plan.
	Detour   bool
	MemoryMB int64
}

// Plan is the answer of Consolidate: the moves, in order, and what they
// achieve.
type Plan struct {
	Algorithm string
	Seed      uint64
	Moves     []Move
	Waves     int
	// Power of the hosts that hold instances, before and after, by their
	// curves (an empty host is counted as powered down).
	PowerBeforeW, PowerAfterW float64
	// MigrationMB is the memory the moves copy; MigrationW their energy
	// spread over the horizon.
	MigrationMB int64
	MigrationW  float64
	// HostsFreed lists the hosts that hold instances now and none after;
	// PowerDown every host empty after the plan (candidates to power down),
	// both as indices in Cluster.Hosts.
	HostsFreed []int
	PowerDown  []int
	// Placement is each instance's host after the plan.
	Placement []int
	Bounds    Bounds
	// Stopped says why the search ended (StoppedStalled, …); Iterations how
	// many steps it took.
	Stopped    string
	Iterations int
	Elapsed    time.Duration // on the Budget's clock, 0 without one
	// Unreachable lists the moves the optimizer wanted that no safe order
	// of live migrations reaches; the plan stops short of them.
	Unreachable []Unreachable
	// Fixed says, per instance that could not move, why (index → reason).
	Fixed map[int]string
	// Note explains an empty plan.
	Note string
	// Repaired lists the hosts overloaded before the plan (over a capacity
	// after allocation ratios, or busy past a tag's ceiling) and not after;
	// Overloaded those still overloaded after it, and InfeasibleReason
	// why: a proof from the lower bounds that no valid placement exists,
	// or that none was found within the budget. Indices in Cluster.Hosts.
	Repaired         []int
	Overloaded       []int
	InfeasibleReason string
}

// Notes of an empty plan.
const (
	NoteNoSaving   = "no placement found that saves more power than its migrations cost"
	NoteNoMovable  = "no instance can move"
	NoteBlocked    = "the better placement found is not reachable by live migrations"
	NoteNoMoveNeed = "the instances are already where they use the least power"
	// NoteCutShort: the budget (time limit or cancellation) ended before
	// the constructor had placed every item.
	NoteCutShort = "the budget ended during construction: the last items were placed by a quick rule, not searched"
	// NoteSequenceCut: the budget ended before any move was sequenced.
	NoteSequenceCut = "the budget ended before any move of the placement found could be sequenced"
)

// Consolidate plans a rebalance of the cluster: it searches a placement that
// costs less power (plus migration energy), then orders the live migrations
// that reach it so that every intermediate state keeps every rule, in waves
// within the concurrency limits.
func Consolidate(c Cluster, opts ConsolidateOptions) (*Plan, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.defaults()
	a, err := parseAlgorithm(opts.Algorithm)
	if err != nil {
		return nil, err
	}
	m := newMeter(opts.Budget)
	start := m.now()
	horizon := opts.Horizon.Seconds()
	cost := func(in *ClusterInstance) float64 {
		return (opts.MigrationJoulesPerMB*float64(in.MemoryMB) + opts.MigrationJoules) / horizon
	}
	cc, err := c.compile(cost)
	if err != nil {
		return nil, err
	}
	p := cc.p
	p.maxMig = opts.MaxMigrations
	p.legacy = opts.legacySearch
	p.keepBusy(opts.Relieve)
	plan := &Plan{Algorithm: a.name, Seed: opts.Seed, Bounds: p.lowerBounds(), Fixed: map[int]string{}}
	for i, why := range cc.fixedWhy {
		if why != "" {
			plan.Fixed[i] = why
		}
	}
	home := newSolution(p)
	home.placeFixed()
	home.placeHome()
	before := home.exactObjective()
	plan.PowerBeforeW = before
	overBefore := home.overloaded()

	// The search may use 80 % of the budget: sequencing and waves, which
	// are charged too, need the rest.
	sm := m.shareTime(0.8)
	goal := slices.Clone(home.assign)
	if len(plan.Fixed) == p.n {
		plan.Note = NoteNoMovable
	} else {
		var fix *solution
		if len(overBefore) > 0 {
			// Repair first: offload the overloaded hosts from where they
			// are, then save what can be saved from there.
			fix = home.clone()
			fix.repair(sm)
			rm := sm.share(0.3)
			rng := rand.New(rand.NewPCG(opts.Seed, 0x5851f42d4c957f2d))
			fix.localSearch(rng, rm, 0)
			sm.absorb(rm)
			fix.exactObjective()
		}
		// The bound on the bins lets the search stop emptying them when
		// it is reached (the old search never did).
		lb := plan.Bounds.Bins
		if opts.legacySearch {
			lb = 0
		}
		s, out, err := solve(p, a, opts.Seed, sm, lb)
		if err != nil {
			return nil, err
		}
		plan.Stopped, plan.Iterations = out.stopped, out.iterations
		if p.maxMig > 0 && s.moved > p.maxMig {
			s = capMigrations(s, a, opts.Seed, sm)
		}
		if fix != nil && (p.maxMig == 0 || fix.moved <= p.maxMig) && (s.grows(home) || !better(s, fix)) {
			s = fix
		}
		// Without overload, any saving is a goal (the sequencing reaches
		// what it safely can). With it, a goal must not overload a host
		// more than now: items the constructor could place nowhere went
		// home, fitting or not, and such a goal is unreachable there.
		ok := s.exactObjective() < before-1e-6
		if len(overBefore) > 0 {
			ok = !s.grows(home) && better(s, home)
		}
		switch {
		case ok:
			goal = s.assign
		case out.cut:
			plan.Note = NoteCutShort
		default:
			plan.Note = NoteNoSaving
		}
	}
	m.absorb(sm)

	steps, final, dropped := sequence(p, goal, m)
	plan.Unreachable = dropped
	ordered := waves(p, steps, limits{perHost: opts.MaxPerHost, parallel: opts.MaxParallel}, m)
	if len(ordered) != len(steps) {
		if m.stopped == "" {
			return nil, fmt.Errorf("internal error: %d of %d moves could not be put in waves", len(steps)-len(ordered), len(steps))
		}
		// The budget ended while waves were formed: the plan is the waves
		// made, a safe prefix.
		final = cutTo(p, home, ordered, final, &plan.Unreachable, ReasonBudget)
	}
	if p.maxMig > 0 && len(ordered) > p.maxMig {
		// Detours can take a plan past the cap. Any prefix of the waves is
		// safe (a part of a wave is checked by the whole), so cut there.
		ordered = ordered[:p.maxMig]
		final = cutTo(p, home, ordered, final, &plan.Unreachable, ReasonCapped)
	}
	end := newSolution(p)
	for i, b := range final {
		end.add(i, int(b))
	}
	if len(ordered) > 0 && !better(end, home) {
		// What is reachable neither repairs nor pays for itself: plan
		// nothing.
		ordered = nil
		final = home.assign
		end = home
		plan.Note = NoteBlocked
	}
	if len(ordered) == 0 && plan.Note == "" {
		plan.Note = NoteNoMoveNeed
		if slices.ContainsFunc(plan.Unreachable, func(u Unreachable) bool { return u.Reason == ReasonBudget }) {
			plan.Note = NoteSequenceCut
		}
	}
	for _, st := range ordered {
		in := &c.Instances[st.item]
		plan.Moves = append(plan.Moves, Move{Instance: int(st.item), From: int(st.from), To: int(st.to),
			Wave: st.wave, Detour: st.detour, MemoryMB: in.MemoryMB})
		plan.MigrationMB += in.MemoryMB
		plan.MigrationW += cost(in)
		plan.Waves = max(plan.Waves, st.wave+1)
	}
	plan.PowerAfterW = end.cost
	plan.Placement = make([]int, p.n)
	for i, b := range final {
		plan.Placement[i] = int(b)
	}
	for b := range p.m {
		if len(end.items[b]) == 0 {
			plan.PowerDown = append(plan.PowerDown, b)
			if len(home.items[b]) > 0 {
				plan.HostsFreed = append(plan.HostsFreed, b)
			}
		}
	}
	for _, b := range overBefore {
		if end.binOverload(b) <= overloadTol {
			plan.Repaired = append(plan.Repaired, b)
		}
	}
	plan.Overloaded = end.overloaded()
	if len(plan.Overloaded) > 0 {
		plan.InfeasibleReason = infeasibleReason(&c, p, end, plan.Bounds)
	}
	if m.stopped != "" {
		plan.Stopped = m.stopped
	}
	plan.Elapsed = m.elapsed(start)
	return plan, nil
}

// cutTo makes ordered (a prefix of the plan's waves) the whole plan: it
// returns the placement it reaches and lists, with reason, each instance
// the full plan would have taken elsewhere.
func cutTo(p *problem, home *solution, ordered []step, full []int32, unreachable *[]Unreachable, reason string) []int32 {
	final := slices.Clone(home.assign)
	for _, st := range ordered {
		final[st.item] = st.to
	}
	for i := range p.n {
		if final[i] != full[i] {
			*unreachable = append(*unreachable, Unreachable{Instance: i, Target: int(full[i]), Reason: reason})
		}
	}
	return final
}

// capMigrations brings a placement under the migration cap: first by
// sending migrated items home where they fit, cheapest first; if that is
// not enough, by searching again from the current placement, where the
// local search never goes past the cap.
func capMigrations(s *solution, a algorithm, seed uint64, m *meter) *solution {
	p := s.p
	type back struct {
		i     int
		delta float64
	}
	var cands []back
	for i := range p.n {
		if h := p.home[i]; h >= 0 && s.assign[i] != h && p.movable(i) {
			d := s.costWithout(i) - s.bcost[s.assign[i]] + s.costWith(i, int(h)) - s.bcost[h] - p.mig[i]
			cands = append(cands, back{i, d})
		}
	}
	slices.SortStableFunc(cands, func(x, y back) int {
		switch {
		case x.delta < y.delta:
			return -1
		case x.delta > y.delta:
			return 1
		}
		return 0
	})
	for _, c := range cands {
		if s.moved <= p.maxMig {
			return s
		}
		if s.fits(c.i, int(p.home[c.i])) {
			s.move(c.i, int(p.home[c.i]))
		}
	}
	if s.moved <= p.maxMig {
		return s
	}
	cur := a
	cur.kind, cur.ls = kindCurrent, true
	alt, _, err := solve(p, cur, seed, newMeter(Budget{Now: m.b.Now, Deadline: m.b.Deadline, MaxIterations: m.b.MaxIterations}), 0)
	if err != nil || alt.moved > p.maxMig {
		home := newSolution(p)
		home.placeFixed()
		home.placeHome()
		return home
	}
	return alt
}
