package optimizer

import (
	"cmp"
	"slices"
)

// Gate says when a move of a plan may start, so that a plan runs as fast as
// its hosts allow rather than wave by wave. A move of wave w from S to D
// may start once
//
//   - the instance's earlier moves have ended (it is on S),
//   - every move of an earlier wave out of D has ended, and
//   - fewer than the plan's migrations per host are in flight on S and on D.
//
// Why that is safe: the waves prove, host by host, the state where every
// earlier wave has ended and wave w is in flight (a move in flight counts
// on both ends), and every rule the plan checks (capacity, ceilings,
// anti-affinity) is a host's own and holds on any part of a state it holds
// on. Take a host H and the latest wave W of the moves to H that have
// started: each of them waited until every move out of H of a wave before
// its own had ended, so every move out of H before W has ended, and what
// H holds is part of what the plan proved for wave W (the arrivals of
// later waves have not started, those of W and before may not have; the
// departures of W and after are still there, as the proof has them). The
// moves in flight per host, the one limit that is not a host's contents,
// the gate counts itself.
//
// Arrivals need not wait for one another, nor departures, which is what
// makes a plan that empties many hosts into a few fast: a destination
// takes its next migration as soon as one of its own ends. The bound on
// all moves in flight (MaxParallel) is the caller's to keep. Not safe for
// concurrent use.
type Gate[H, I comparable] struct {
	moves   []gateMove[H]
	perHost int
	// out lists, per host, the waves that still have moves out of it,
	// lowest first, with how many.
	out      map[H][]waveCount
	inFlight map[H]int
}

// GateMove is what a Gate needs to know of a move: its hosts, its wave
// (0-based), and its instance (moves of one instance run in plan order).
type GateMove[H, I comparable] struct {
	From, To H
	Wave     int
	Instance I
}

type gateMove[H comparable] struct {
	from, to         H
	wave             int
	prev             int // the instance's move before this one, -1 if none
	started, stopped bool
}

type waveCount struct{ wave, n int }

// NewGate tracks n moves, given by move(i) in plan order, with at most
// perHost of them in flight touching one host (0: no bound).
func NewGate[H, I comparable](n, perHost int, move func(i int) GateMove[H, I]) *Gate[H, I] {
	g := &Gate[H, I]{moves: make([]gateMove[H], n), perHost: perHost, out: map[H][]waveCount{}, inFlight: map[H]int{}}
	last := map[I]int{}
	for i := range g.moves {
		m := move(i)
		prev, ok := last[m.Instance]
		if !ok {
			prev = -1
		}
		last[m.Instance] = i
		g.moves[i] = gateMove[H]{from: m.From, to: m.To, wave: m.Wave, prev: prev}
		g.count(m.From, m.Wave)
	}
	for h, ws := range g.out {
		slices.SortFunc(ws, func(a, b waveCount) int { return cmp.Compare(a.wave, b.wave) })
		g.out[h] = ws
	}
	return g
}

func (g *Gate[H, I]) count(h H, w int) {
	ws := g.out[h]
	for k := range ws {
		if ws[k].wave == w {
			ws[k].n++
			return
		}
	}
	g.out[h] = append(ws, waveCount{wave: w, n: 1})
}

// Ready reports whether move i may start now (see Gate).
func (g *Gate[H, I]) Ready(i int) bool {
	m := &g.moves[i]
	if m.started || m.stopped || (m.prev >= 0 && !g.moves[m.prev].stopped) {
		return false
	}
	if ws := g.out[m.to]; len(ws) > 0 && ws[0].wave < m.wave {
		return false
	}
	return g.perHost <= 0 || (g.inFlight[m.from] < g.perHost && g.inFlight[m.to] < g.perHost)
}

// Start records that move i is in flight.
func (g *Gate[H, I]) Start(i int) {
	m := &g.moves[i]
	if m.started || m.stopped {
		return
	}
	m.started = true
	g.inFlight[m.from]++
	if m.to != m.from {
		g.inFlight[m.to]++
	}
}

// End records that move i is over, whatever its outcome: done, failed,
// dropped or found unnecessary, started or not. Ending a move twice does
// nothing.
func (g *Gate[H, I]) End(i int) {
	m := &g.moves[i]
	if m.stopped {
		return
	}
	m.stopped = true
	if m.started {
		g.inFlight[m.from]--
		if m.to != m.from {
			g.inFlight[m.to]--
		}
	}
	ws := g.out[m.from]
	for k := range ws {
		if ws[k].wave == m.wave {
			ws[k].n--
			break
		}
	}
	for len(ws) > 0 && ws[0].n == 0 {
		ws = ws[1:]
	}
	if len(ws) == 0 {
		delete(g.out, m.from)
		return
	}
	g.out[m.from] = ws
}
