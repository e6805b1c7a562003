package optimizer

import (
	"cmp"
	"math"
	"slices"
)

// Turning a target placement into live migrations. Two steps:
//
//  1. sequence: an order in which every move, made alone, leaves every host
//     within every rule. A move waits until its destination has room; when
//     every waiting move waits on another (a cycle, or hosts full until
//     someone leaves), one instance takes a detour through a host with room
//     to spare and moves on later. If no instance can, the moves left are
//     dropped: the target is unreachable as planned, and the plan stops
//     short of it.
//  2. waves: moves that may run at the same time, within the limits per
//     host and in total. A wave is checked as if all its migrations were in
//     flight at once: each destination must hold its arrivals on top of
//     everything it held when the wave began (a migrating instance holds
//     room on both hosts until it is done, as Nova's claims do), so any
//     order of completion is safe. A move joins a wave only if no earlier
//     move still waiting goes to its source or destination, which keeps
//     the arrivals at each host in the sequence's order: the first waiting
//     move can always run, so every wave makes progress. Departures may
//     overtake one another (leaving only makes room).

// step is one planned migration.
type step struct {
	item     int32
	from, to int32
	detour   bool
	wave     int
}

// Unreachable is a move of the target placement the plan does not make.
type Unreachable struct {
	Instance int // index in Cluster.Instances
	Target   int // the host the optimizer wanted, index in Cluster.Hosts
	Reason   string
}

// Reasons for Unreachable.
const (
	ReasonBlocked = "no order of live migrations reaches it: every host it could wait on was full"
	ReasonCapped  = "cut by the migration cap"
	ReasonBudget  = "cut by the time budget (or a cancellation) before it was sequenced"
)

// limits bound concurrency.
type limits struct {
	perHost  int // migrations in flight touching one host (in or out)
	parallel int // migrations in flight in all
}

// sequence orders the moves from the home placement to goal. When the
// budget ends, the moves not yet ordered are dropped (ReasonBudget): every
// prefix of a sequence is safe.
func sequence(p *problem, goal []int32, m *meter) (steps []step, final []int32, dropped []Unreachable) {
	s := newSolution(p)
	s.placeFixed()
	s.placeHome()
	goal = slices.Clone(goal)
	var pending []int32
	for i := range p.n {
		if goal[i] != s.assign[i] {
			pending = append(pending, int32(i))
		}
	}
	if len(pending) == 0 {
		return nil, slices.Clone(s.assign), nil
	}
	// Moves out of hosts that end up empty first, host by host (the ones
	// with the least to move out first), so that the waves empty hosts one
	// after the other and each can power off as soon as it is empty; then
	// by size, largest first: the big ones are the hardest to fit later.
	endUsed := make([]int, p.m)
	for _, b := range goal {
		endUsed[b]++
	}
	ns := make([]float64, p.n)
	x := make([]float64, p.d)
	for i := range p.n {
		p.normSize(i, x)
		for _, v := range x {
			ns[i] += v
		}
	}
	out := make([]float64, p.m) // per host that ends up empty: the size to move out
	for _, i := range pending {
		if from := s.assign[i]; endUsed[from] == 0 {
			out[from] += ns[i]
		}
	}
	slices.SortFunc(pending, func(a, b int32) int {
		fa, fb := s.assign[a], s.assign[b]
		ea, eb := endUsed[fa] == 0, endUsed[fb] == 0
		if ea != eb {
			if ea {
				return -1
			}
			return 1
		}
		if ea && fa != fb {
			if c := cmp.Compare(out[fa], out[fb]); c != 0 {
				return c
			}
			return cmp.Compare(fa, fb)
		}
		if c := cmp.Compare(ns[b], ns[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	done := make([]bool, p.n)
	for i := range done {
		done[i] = goal[i] == s.assign[i]
	}
	detoured := make([]bool, p.n)
	waiting := make([][]int32, p.m)
	queue := slices.Clone(pending)
	left := len(pending)

	// Final loads, to pick detour hosts that will have room to spare.
	finalLoad := make([]float64, p.m*p.d)
	for i, b := range goal {
		for k, v := range p.sizeOf(i) {
			finalLoad[int(b)*p.d+k] += v
		}
	}

	moveTo := func(i int32, b int32, detour bool) {
		from := s.assign[i]
		s.move(int(i), int(b))
		steps = append(steps, step{item: i, from: from, to: b, detour: detour})
		// Room appeared at from: whoever waited on it may fit now.
		queue = append(queue, waiting[from]...)
		waiting[from] = waiting[from][:0]
	}
	e := every{m: m}
	giveUp := func(reason string) {
		for _, i := range pending {
			if !done[i] {
				dropped = append(dropped, Unreachable{Instance: int(i), Target: int(goal[i]), Reason: reason})
				goal[i] = s.assign[i]
				done[i] = true
			}
		}
		left = 0
	}
	for left > 0 {
		for len(queue) > 0 {
			if e.out() {
				break
			}
			i := queue[0]
			queue = queue[1:]
			if done[i] {
				continue
			}
			g := goal[i]
			if s.fits(int(i), int(g)) {
				moveTo(i, g, false)
				done[i] = true
				left--
				continue
			}
			waiting[g] = append(waiting[g], i)
		}
		if left == 0 {
			break
		}
		if m.out() {
			giveUp(ReasonBudget)
			break
		}
		// Deadlock: every move left waits. Detour the smallest instance
		// that can go somewhere it blocks nobody at the end.
		var stuck []int32
		for _, i := range pending {
			if !done[i] {
				stuck = append(stuck, i)
			}
		}
		slices.SortStableFunc(stuck, func(a, b int32) int { return cmp.Compare(ns[a], ns[b]) })
		moved := false
		for _, i := range stuck {
			if detoured[i] || e.out() {
				continue
			}
			if h := detourHost(s, int(i), goal, finalLoad); h >= 0 {
				detoured[i] = true
				for b := range waiting {
					waiting[b] = waiting[b][:0]
				}
				queue = append(queue[:0], stuck...)
				moveTo(i, int32(h), true)
				moved = true
				break
			}
		}
		if moved {
			continue
		}
		if m.out() {
			giveUp(ReasonBudget)
			break
		}
		// Nothing can leave anywhere: nothing will ever make room. The
		// moves left stay undone; an instance that made a detour stays on
		// its detour host, which had room for it.
		giveUp(ReasonBlocked)
	}
	return steps, slices.Clone(s.assign), dropped
}

// detourHost picks a host that takes item i now and can keep it at the end
// without going over its capacity, the one with the most room left then;
// -1 if none.
func detourHost(s *solution, i int, goal []int32, finalLoad []float64) int {
	p := s.p
	cur := int(s.assign[i])
	best, bestV := -1, math.Inf(-1)
	for b := range p.m {
		if b == cur || int32(b) == goal[i] || (p.target != nil && !p.target[b]) || !s.fits(i, b) {
			continue
		}
		v := math.Inf(1)
		for k, x := range p.sizeOf(i) {
			if p.ref[k] == 0 || math.IsInf(p.cap[b*p.d+k], 1) {
				continue
			}
			v = min(v, (p.cap[b*p.d+k]-finalLoad[b*p.d+k]-x)/p.ref[k])
		}
		if v < 0 {
			continue // it would be in the way at the end
		}
		if v > bestV {
			best, bestV = b, v
		}
	}
	return best
}

// overlay is what a wave adds on top of the state it began with: its
// arrivals, counted while the departures still hold their room.
type overlay struct {
	d       int
	load    []float64 // m×d
	ceil    []float64 // per bin: lowest ceiling of the arrivals (busy cores)
	anti    map[int64]int32
	touched []int32 // bins with arrivals: reset clears only them
}

func newOverlay(p *problem) *overlay {
	o := &overlay{d: p.d, load: make([]float64, p.m*p.d), ceil: make([]float64, p.m), anti: map[int64]int32{}}
	for b := range o.ceil {
		o.ceil[b] = math.Inf(1)
	}
	return o
}

// reset empties the overlay in O(its arrivals), so that a plan of many
// small waves costs linear time, not waves × hosts.
func (o *overlay) reset() {
	for _, b := range o.touched {
		clear(o.load[int(b)*o.d : int(b)*o.d+o.d])
		o.ceil[b] = math.Inf(1)
	}
	o.touched = o.touched[:0]
	clear(o.anti)
}

// fitsWave reports whether item i can arrive at b on top of s and the
// wave's other arrivals.
func (s *solution) fitsWave(i, b int, o *overlay) bool {
	p := s.p
	if p.target != nil && !p.target[b] {
		return false
	}
	c, ok := p.kindCeil(i, b)
	if !ok {
		return false
	}
	d := p.d
	for k, x := range p.sizeOf(i) {
		if s.load[b*d+k]+o.load[b*d+k]+x > p.cap[b*d+k]*(1+eps)+eps {
			return false
		}
	}
	if p.util >= 0 {
		// Every instance on b, staying, leaving or arriving, sets a limit.
		c = min(c, s.minCeil[b], o.ceil[b])
		ai, ki, xi := s.load[b*d+p.util], o.load[b*d+p.util], p.size[i*d+p.util]
		if ai+ki+xi > c*(1+eps)+eps {
			return false
		}
		// The arrivals already in the wave must accept i's ceiling too:
		// covered, since c is the minimum over all of them and i.
	}
	if p.anti != nil && p.anti[i] >= 0 {
		key := antiKey(b, p.anti[i])
		if s.anti[key] > 0 || o.anti[key] > 0 {
			return false
		}
	}
	return true
}

func (o *overlay) add(p *problem, i, b int) {
	o.touched = append(o.touched, int32(b))
	for k, x := range p.sizeOf(i) {
		o.load[b*p.d+k] += x
	}
	if c, ok := p.kindCeil(i, b); ok {
		o.ceil[b] = min(o.ceil[b], c)
	}
	if p.anti != nil && p.anti[i] >= 0 {
		o.anti[antiKey(b, p.anti[i])]++
	}
}

// waveScan bounds how many waiting moves one wave looks at past the ones it
// takes. Stopping early only makes a wave smaller (the moves left wait for
// the next), never unsafe, and it keeps waves linear in the moves: without
// it, each wave rescans every move still waiting.
const waveScan = 256

// waves groups the sequenced steps into waves (see the top of the file)
// and returns them in execution order. When the budget ends, it returns
// the whole waves made so far: any prefix of waves is safe.
func waves(p *problem, steps []step, lim limits, m *meter) []step {
	if len(steps) == 0 {
		return nil
	}
	s := newSolution(p)
	s.placeFixed()
	s.placeHome()
	o := newOverlay(p)
	// The moves still waiting, in sequence order, as a linked list: a wave
	// unlinks the moves it takes in O(1) each.
	const end = -1
	next := make([]int, len(steps))
	for j := range next {
		next[j] = j + 1
	}
	next[len(next)-1] = end
	head := 0
	out := make([]step, 0, len(steps))
	blocked := make([]bool, p.m)
	busyItem := make([]bool, p.n)
	count := make([]int, p.m)
	var touchedHosts, touchedItems []int32
	var wave []step
	for w := 0; head != end; w++ {
		if m.out() {
			break
		}
		o.reset()
		for _, b := range touchedHosts {
			blocked[b], count[b] = false, 0
		}
		for _, i := range touchedItems {
			busyItem[i] = false
		}
		touchedHosts, touchedItems, wave = touchedHosts[:0], touchedItems[:0], wave[:0]
		prev, scanned := end, 0
		for j := head; j != end && len(wave) < lim.parallel && scanned < waveScan; j = next[j] {
			st := steps[j]
			f, t := int(st.from), int(st.to)
			touchedHosts = append(touchedHosts, st.from, st.to)
			touchedItems = append(touchedItems, st.item)
			ok := !blocked[f] && !blocked[t] && !busyItem[st.item] &&
				count[f] < lim.perHost && count[t] < lim.perHost &&
				s.fitsWave(int(st.item), t, o)
			if !ok {
				// Later moves into its destination (or of this instance)
				// wait for this one, so none takes the room it was
				// sequenced to find there. Its source need not wait:
				// leaving only makes room, and whatever arrives there is
				// checked against what the host holds then.
				blocked[t], busyItem[st.item] = true, true
				prev = j
				scanned++
				continue
			}
			o.add(p, int(st.item), t)
			busyItem[st.item] = true // its next move waits for this one
			count[f]++
			count[t]++
			st.wave = w
			wave = append(wave, st)
			if prev == end {
				head = next[j]
			} else {
				next[prev] = next[j]
			}
		}
		if len(wave) == 0 {
			// Cannot happen (the first waiting move always fits); stop
			// rather than loop if a bug makes it so.
			break
		}
		for _, st := range wave {
			s.move(int(st.item), int(st.to))
		}
		out = append(out, wave...)
	}
	return out
}
