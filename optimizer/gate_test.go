package optimizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestGate(t *testing.T) {
	// Moves (from → to, wave, instance), at most 2 in flight per host:
	//   0: A → B, 0, i0     3: C → A, 1, i3 (waits for 0, out of A)
	//   1: B → C, 0, i1     4: E → F, 2, i4 (waits for nothing)
	//   2: D → B, 1, i2     5: B → G, 2, i2 (waits for 2, its instance's move)
	//      (waits for 1,    6: H → B, 2, i6 (waits for 1, out of B)
	//      out of B)
	type mv struct {
		from, to string
		wave     int
		inst     string
	}
	moves := []mv{{"A", "B", 0, "i0"}, {"B", "C", 0, "i1"}, {"D", "B", 1, "i2"}, {"C", "A", 1, "i3"},
		{"E", "F", 2, "i4"}, {"B", "G", 2, "i2"}, {"H", "B", 2, "i6"}}
	g := NewGate(len(moves), 2, func(i int) GateMove[string, string] {
		m := moves[i]
		return GateMove[string, string]{From: m.from, To: m.to, Wave: m.wave, Instance: m.inst}
	})
	ready := func() (out []int) {
		for i := range moves {
			if g.Ready(i) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, c := range []struct {
		start, end []int
		want       []int
	}{
		{nil, nil, []int{0, 1, 4}},
		{[]int{0, 1}, nil, []int{4}},    // started moves are not ready again
		{nil, []int{1}, []int{2, 4, 6}}, // B's wave-0 departure is over: 2 and 6 arrive while 0 still does
		{[]int{2}, nil, []int{4}},       // B has 0 and 2 in flight: 6 waits for a slot
		{nil, []int{0}, []int{3, 4, 6}}, // A's departure is over (3); B has a slot again (6)
		{nil, []int{2}, []int{3, 4, 5, 6}},
		{nil, []int{2}, []int{3, 4, 5, 6}}, // ending twice changes nothing
		{[]int{3, 4, 5, 6}, nil, nil},
		{nil, []int{3, 4, 5, 6}, nil},
	} {
		for _, i := range c.start {
			g.Start(i)
		}
		for _, i := range c.end {
			g.End(i)
		}
		if got := ready(); !slices.Equal(got, c.want) {
			t.Fatalf("after starting %v and ending %v: ready %v, want %v", c.start, c.end, got, c.want)
		}
	}
	// A move ended before it started (dropped) never becomes ready.
	g2 := NewGate(1, 1, func(int) GateMove[string, int] { return GateMove[string, int]{From: "A", To: "B"} })
	g2.End(0)
	if g2.Ready(0) {
		t.Fatal("a move ended before it started is ready")
	}
}

// TestGateKeepsPlansFeasible runs random plans the way the executor does,
// every ready move started as soon as a slot is free (MaxParallel), each
// migration taking a random time, and checks at each start what Gate
// promises: the instance's earlier moves and every earlier-wave move out of
// the destination have ended, no host has more than MaxPerHost moves in
// flight, and every host holds, counting what is in flight to and from it,
// no more than its capacity, and no two members of an anti-affinity group.
// Every move runs: the gate never gets stuck.
func TestGateKeepsPlansFeasible(t *testing.T) {
	gen := clusterGen{states: true, groups: true, ceilings: true, pinned: true}
	started := 0
	for k := range 40 {
		r := rand.New(rand.NewPCG(uint64(k), 23))
		c := gen.draw(r, 4+r.IntN(12), 10+r.IntN(60))
		opts := ConsolidateOptions{Seed: uint64(k), MaxPerHost: 1 + r.IntN(3), MaxParallel: 1 + r.IntN(8), Budget: Budget{MaxIterations: 3000}}
		p, err := Consolidate(c, opts)
		if err != nil {
			t.Fatalf("case %d: %v", k, err)
		}
		t.Run(fmt.Sprintf("case%d", k), func(t *testing.T) {
			started += runGated(t, r, &c, p, opts.MaxPerHost, opts.MaxParallel)
		})
	}
	if started < 100 {
		t.Fatalf("only %d moves in all the plans: the cases test little", started)
	}
}

func runGated(t *testing.T, r *rand.Rand, c *Cluster, p *Plan, perHost, parallel int) int {
	t.Helper()
	at := make([]int, len(c.Instances))
	hostIdx := map[string]int{}
	for j, h := range c.Hosts {
		hostIdx[h.Name] = j
	}
	for i, in := range c.Instances {
		at[i] = hostIdx[in.Host]
	}
	anti := map[string]bool{}
	for _, g := range c.Groups {
		anti[g.Name] = g.Policy == PolicyAntiAffinity
	}
	g := NewGate(len(p.Moves), perHost, func(i int) GateMove[int, int] {
		return GateMove[int, int]{From: p.Moves[i].From, To: p.Moves[i].To, Wave: p.Moves[i].Wave, Instance: p.Moves[i].Instance}
	})
	const (
		waiting = iota
		flying
		ended
	)
	state := make([]int, len(p.Moves))
	end := make([]float64, len(p.Moves))
	now := 0.0
	inFlight := 0
	// holds checks host j, counting every instance on it or on its way to
	// it.
	holds := func(j int) {
		var v, m, d float64
		members := map[string]int{}
		for i := range c.Instances {
			on := at[i] == j
			for k, mv := range p.Moves {
				if state[k] == flying && mv.Instance == i && mv.To == j {
					on = true
				}
			}
			if !on {
				continue
			}
			in := &c.Instances[i]
			v, m, d = v+float64(in.VCPUs), m+float64(in.MemoryMB), d+float64(in.DiskGB)
			if anti[in.Group] {
				members[in.Group]++
			}
		}
		cv, cm, cd := c.Hosts[j].HostCapacity()
		if v > cv+1e-6 || m > cm+1e-6 || d > cd+1e-6 {
			t.Fatalf("t=%.2f: %s holds %g vCPUs, %g MB, %g GB; it has %g, %g, %g", now, c.Hosts[j].Name, v, m, d, cv, cm, cd)
		}
		for grp, n := range members {
			if n > 1 {
				t.Fatalf("t=%.2f: %s holds %d members of anti-affinity group %s", now, c.Hosts[j].Name, n, grp)
			}
		}
	}
	for done := 0; done < len(p.Moves); {
		for i, mv := range p.Moves {
			if inFlight >= parallel || state[i] != waiting || !g.Ready(i) {
				continue
			}
			busy := map[int]int{}
			for k, o := range p.Moves {
				if o.Instance == mv.Instance && k < i && state[k] != ended {
					t.Fatalf("move %d ready while move %d of its instance has not ended", i, k)
				}
				if o.From == mv.To && o.Wave < mv.Wave && state[k] != ended {
					t.Fatalf("move %d (wave %d) ready while move %d (wave %d) out of its destination has not ended", i, mv.Wave, k, o.Wave)
				}
				if state[k] == flying {
					busy[o.From]++
					busy[o.To]++
				}
			}
			if at[mv.Instance] != mv.From {
				t.Fatalf("move %d: instance on %d, the move leaves %d", i, at[mv.Instance], mv.From)
			}
			if busy[mv.From] >= perHost || busy[mv.To] >= perHost {
				t.Fatalf("move %d ready with %d and %d moves in flight on its hosts, at most %d allowed", i, busy[mv.From], busy[mv.To], perHost)
			}
			state[i], end[i] = flying, now+0.1+r.Float64()*10
			g.Start(i)
			inFlight++
			for j := range c.Hosts {
				holds(j)
			}
		}
		next := -1
		for i := range p.Moves {
			if state[i] == flying && (next < 0 || end[i] < end[next]) {
				next = i
			}
		}
		if next < 0 {
			t.Fatalf("%d of %d moves done and none in flight: the gate is stuck", done, len(p.Moves))
		}
		now = end[next]
		state[next], at[p.Moves[next].Instance] = ended, p.Moves[next].To
		inFlight--
		g.End(next)
		done++
	}
	return len(p.Moves)
}

// BenchmarkGateMakespan: how long plans take run wave by wave (each wave
// waits for its slowest migration) and through Gate (each move as soon as
// its hosts and a slot allow), on random clusters planned with the
// service's defaults (one migration per host, eight at once). A
// migration's time is its memory times a random factor in [1, 3) (pages
// copied again as the guest dirties them). Reports the gated makespan as a
// share of the wave-by-wave one, summed over the plans; it is simulated
// time, not the benchmark's.
func BenchmarkGateMakespan(b *testing.B) {
	gen := clusterGen{groups: true, ceilings: true}
	var waved, gated float64
	for range b.N {
		waved, gated = 0, 0
		for k := range 40 {
			r := rand.New(rand.NewPCG(uint64(k), 29))
			c := gen.draw(r, 10+r.IntN(30), 40+r.IntN(160))
			p, err := Consolidate(c, ConsolidateOptions{Seed: uint64(k), Budget: Budget{MaxIterations: 3000}})
			if err != nil {
				b.Fatal(err)
			}
			dur := make([]float64, len(p.Moves))
			for i, mv := range p.Moves {
				dur[i] = float64(c.Instances[mv.Instance].MemoryMB) * (1 + 2*r.Float64())
			}
			w, g := makespans(p, dur, DefaultMaxPerHost, DefaultMaxParallel)
			waved, gated = waved+w, gated+g
		}
	}
	b.ReportMetric(gated/waved, "gated/waved")
}

// makespans is how long plan p takes with the moves' durations dur, wave
// by wave and gated (at most perHost in flight on a host and parallel in
// all, started in plan order).
func makespans(p *Plan, dur []float64, perHost, parallel int) (waved, gated float64) {
	longest := make([]float64, p.Waves)
	for i, mv := range p.Moves {
		longest[mv.Wave] = max(longest[mv.Wave], dur[i])
	}
	for _, d := range longest {
		waved += d
	}
	g := NewGate(len(p.Moves), perHost, func(i int) GateMove[int, int] {
		return GateMove[int, int]{From: p.Moves[i].From, To: p.Moves[i].To, Wave: p.Moves[i].Wave, Instance: p.Moves[i].Instance}
	})
	started := make([]bool, len(p.Moves))
	end := make([]float64, len(p.Moves))
	var flying []int
	for done := 0; done < len(p.Moves); done++ {
		for i := range p.Moves {
			if len(flying) < parallel && !started[i] && g.Ready(i) {
				started[i], end[i] = true, gated+dur[i]
				g.Start(i)
				flying = append(flying, i)
			}
		}
		k := 0
		for j := range flying {
			if end[flying[j]] < end[flying[k]] {
				k = j
			}
		}
		i := flying[k]
		flying = slices.Delete(flying, k, k+1)
		gated = end[i]
		g.End(i)
	}
	return waved, gated
}
