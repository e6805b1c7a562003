package optimizer

import (
	"cmp"
	"slices"
)

// Gate says when a move of a plan may start, so that a plan runs as fast as
// its hosts allow rather than wave by wave: a move of wave w may start once
// every move of an earlier wave on its source or on its destination has
// ended. The waves prove every intermediate state feasible one host at a
// time (a move in flight counts on both ends, and every rule the plan
// checks, capacity, ceilings, anti-affinity, the moves in flight per host,
// is a host's own), so each of the move's two hosts then holds what the
// plan checked for that wave or less: its earlier moves have all ended, its
// later ones have not started, and whatever the rest of the plan is doing
// elsewhere does not matter. A host therefore never waits for the slowest
// migration of a wave on other hosts.
//
// An instance moved twice is safe too: its second move leaves the host
// its first one goes to, so it waits for it. The moves in flight at a
// host all belong to one wave, which the plan bounded per host
// (MaxPerHost); the bound on all moves in flight (MaxParallel) is the
// caller's to keep. Not safe for concurrent use.
type Gate[H comparable] struct {
	moves []gateMove[H]
	// open lists, per host, the waves that still have moves there, lowest
	// first, with how many.
	open map[H][]waveCount
}

type gateMove[H comparable] struct {
	from, to H
	wave     int
	ended    bool
}

type waveCount struct{ wave, n int }

// NewGate tracks n moves; move(i) is move i's source, destination and
// wave (0-based).
func NewGate[H comparable](n int, move func(i int) (from, to H, wave int)) *Gate[H] {
	g := &Gate[H]{moves: make([]gateMove[H], n), open: map[H][]waveCount{}}
	for i := range g.moves {
		from, to, w := move(i)
		g.moves[i] = gateMove[H]{from: from, to: to, wave: w}
		g.count(from, w)
		if to != from {
			g.count(to, w)
		}
	}
	for h, ws := range g.open {
		slices.SortFunc(ws, func(a, b waveCount) int { return cmp.Compare(a.wave, b.wave) })
		g.open[h] = ws
	}
	return g
}

func (g *Gate[H]) count(h H, w int) {
	ws := g.open[h]
	for k := range ws {
		if ws[k].wave == w {
			ws[k].n++
			return
		}
	}
	g.open[h] = append(ws, waveCount{wave: w, n: 1})
}

// Ready reports whether move i may start: it has not ended, and no move of
// an earlier wave on its source or destination is still to end.
func (g *Gate[H]) Ready(i int) bool {
	m := &g.moves[i]
	return !m.ended && g.open[m.from][0].wave == m.wave && g.open[m.to][0].wave == m.wave
}

// End records that move i is over, whatever its outcome: done, failed,
// dropped or found unnecessary. Ending a move twice does nothing.
func (g *Gate[H]) End(i int) {
	m := &g.moves[i]
	if m.ended {
		return
	}
	m.ended = true
	g.release(m.from, m.wave)
	if m.to != m.from {
		g.release(m.to, m.wave)
	}
}

func (g *Gate[H]) release(h H, w int) {
	ws := g.open[h]
	for k := range ws {
		if ws[k].wave == w {
			ws[k].n--
			break
		}
	}
	for len(ws) > 0 && ws[0].n == 0 {
		ws = ws[1:]
	}
	if len(ws) == 0 {
		delete(g.open, h)
		return
	}
	g.open[h] = ws
}
