package optimizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestGate(t *testing.T) {
	// Moves (from → to, wave):
	//   0: A → B, 0     2: C → D, 1 (waits for nothing: no wave-0 move on C or D)
	//   1: E → F, 0     3: B → C, 1 (waits for 0, on B)
	//                   4: F → A, 2 (waits for 1 on F, and for 0 on A)
	//                   5: D → E, 2 (waits for 2 on D, and for 1 on E)
	type mv struct {
		from, to string
		wave     int
	}
	moves := []mv{{"A", "B", 0}, {"E", "F", 0}, {"C", "D", 1}, {"B", "C", 1}, {"F", "A", 2}, {"D", "E", 2}}
	g := NewGate(len(moves), func(i int) (string, string, int) { return moves[i].from, moves[i].to, moves[i].wave })
	ready := func() (out []int) {
		for i := range moves {
			if g.Ready(i) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, c := range []struct {
		end  int // -1: none
		want []int
	}{
		{-1, []int{0, 1, 2}},
		{2, []int{0, 1}},    // 5 still waits for 1 on E
		{0, []int{1, 3}},    // 3's B is free; 4 still waits for 1 on F
		{1, []int{3, 4, 5}}, // 4: A and F free; 5: D and E free
		{1, []int{3, 4, 5}}, // ending twice changes nothing
		{3, []int{4, 5}},
		{4, []int{5}},
		{5, nil},
	} {
		if c.end >= 0 {
			g.End(c.end)
		}
		if got := ready(); !slices.Equal(got, c.want) {
			t.Fatalf("after ending %d: ready %v, want %v", c.end, got, c.want)
		}
	}
}

// TestGateKeepsPlansFeasible runs random plans the way the executor does,
// every ready move started as soon as a slot is free (MaxParallel), each
// migration taking a random time, and checks at each start what Gate
// promises: every earlier-wave move on the move's hosts has ended, no
// later-wave one has started, and the destination holds, counting what
// is in flight to and from it, no more than its capacity, and no two
// members of an anti-affinity group. Every move runs: the lowest wave
// with a move left is always ready.
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
			started += runGated(t, r, &c, p, opts.MaxParallel)
		})
	}
	if started < 100 {
		t.Fatalf("only %d moves in all the plans: the cases test little", started)
	}
}

func runGated(t *testing.T, r *rand.Rand, c *Cluster, p *Plan, parallel int) int {
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
	g := NewGate(len(p.Moves), func(i int) (int, int, int) { return p.Moves[i].From, p.Moves[i].To, p.Moves[i].Wave })
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
			for k, o := range p.Moves {
				touches := o.From == mv.From || o.From == mv.To || o.To == mv.From || o.To == mv.To
				if touches && o.Wave < mv.Wave && state[k] != ended {
					t.Fatalf("move %d (wave %d) ready while move %d (wave %d) on its hosts has not ended", i, mv.Wave, k, o.Wave)
				}
				if touches && o.Wave > mv.Wave && state[k] != waiting {
					t.Fatalf("move %d (wave %d) ready after move %d (wave %d) on its hosts started", i, mv.Wave, k, o.Wave)
				}
			}
			if at[mv.Instance] != mv.From {
				t.Fatalf("move %d: instance on %d, the move leaves %d", i, at[mv.Instance], mv.From)
			}
			state[i], end[i] = flying, now+0.1+r.Float64()*10
			inFlight++
			holds(mv.To)
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
			w, g := makespans(p, dur, DefaultMaxParallel)
			waved, gated = waved+w, gated+g
		}
	}
	b.ReportMetric(gated/waved, "gated/waved")
}

// makespans is how long plan p takes with the moves' durations dur, wave
// by wave and gated (at most parallel in flight, started in plan order).
func makespans(p *Plan, dur []float64, parallel int) (waved, gated float64) {
	longest := make([]float64, p.Waves)
	for i, mv := range p.Moves {
		longest[mv.Wave] = max(longest[mv.Wave], dur[i])
	}
	for _, d := range longest {
		waved += d
	}
	g := NewGate(len(p.Moves), func(i int) (int, int, int) { return p.Moves[i].From, p.Moves[i].To, p.Moves[i].Wave })
	started := make([]bool, len(p.Moves))
	end := make([]float64, len(p.Moves))
	var flying []int
	for done := 0; done < len(p.Moves); done++ {
		for i := range p.Moves {
			if len(flying) < parallel && !started[i] && g.Ready(i) {
				started[i], end[i] = true, gated+dur[i]
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
