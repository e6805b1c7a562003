package optimizer

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
)

// Scorer names, as they appear in Component.Scorer and weight maps.
const (
	ScorerEnergy        = "energy"
	ScorerConsolidation = "consolidation"
)

// Component is one scorer's contribution to a host's score.
type Component struct {
	Scorer string
	// Raw is the scorer's own measure (watts per unit of work, share of the
	// ceiling).
	Raw float64
	// Normalized is Raw mapped to [0, 100] among the hosts of the call,
	// 100 = best.
	Normalized float64
	Weight     float64
	// Weighted is Normalized × Weight.
	Weighted    float64
	Explanation string
}

// Scored is one host's answer from WeighHosts.
type Scored struct {
	// Score is the sum of the components' Weighted; higher is better.
	Score float64
	// MarginalWatts is the power the host draws more with the instance,
	// including its idle power when it is empty.
	MarginalWatts float64
	// Factor is the performance factor of the host's candidate entry (1 when
	// the host matches none, or the profile lists none).
	Factor     float64
	Components []Component
}

// scorer is one extension point of the score step: a raw measure per host,
// and its explanation. Normalisation and weighting are separate steps.
type scorer interface {
	name() string
	defaultWeight() float64
	// lowerIsBetter asks normalisation to reverse the measure.
	lowerIsBetter() bool
	raw(st *state, f *fit) float64
	// explain appends the explanation of raw to b.
	explain(st *state, f *fit, raw float64, b []byte) []byte
}

var (
	_ scorer = energyScorer{}
	_ scorer = consolidationScorer{}
)

// scoreChain is every scorer, in the order of Components.
func scoreChain() [2]scorer {
	return [2]scorer{energyScorer{}, consolidationScorer{}}
}

// DefaultWeights returns a fresh map of every scorer's default weight.
func DefaultWeights() map[string]float64 {
	chain := scoreChain()
	w := make(map[string]float64, len(chain))
	for _, s := range chain {
		w[s.name()] = s.defaultWeight()
	}
	return w
}

// ValidateWeights checks a weights map: every name must be a scorer, and
// every weight a finite number ≥ 0 (0 disables the scorer). A scorer the map
// leaves out keeps its default weight.
func ValidateWeights(weights map[string]float64) error {
	names := make([]string, 0, len(weights))
	for name := range weights {
		names = append(names, name)
	}
	slices.Sort(names) // report the same error whatever the map order
	known := scoreChain()
	for _, name := range names {
		if !slices.ContainsFunc(known[:], func(s scorer) bool { return s.name() == name }) {
			all := make([]string, len(known))
			for i, s := range known {
				all[i] = s.name()
			}
			return fmt.Errorf("unknown scorer %s (known: %s)", quote.Value(name), strings.Join(all, ", "))
		}
		if w := weights[name]; !(w >= 0) || math.IsInf(w, 0) {
			return fmt.Errorf("scorer %s: weight must be a finite number >= 0, got %v", quote.Value(name), w)
		}
	}
	return nil
}

// weightedScorer is an enabled scorer and its weight.
type weightedScorer struct {
	s scorer
	w float64
}

// enabled lists the scorers with a positive weight, in chain order. A name
// missing from weights keeps its default (nil means all defaults); unknown
// names are ignored; a weight that is not a finite positive number disables
// the scorer (ValidateWeights reports those).
func enabled(weights map[string]float64) (out [2]weightedScorer, n int) {
	for _, s := range scoreChain() {
		w := s.defaultWeight()
		if v, ok := weights[s.name()]; ok {
			w = v
		}
		if w > 0 && w <= math.MaxFloat64 {
			out[n] = weightedScorer{s, w}
			n++
		}
	}
	return out, n
}

// energyScorer: watts per unit of work, lower is better.
type energyScorer struct{}

func (energyScorer) name() string           { return ScorerEnergy }
func (energyScorer) defaultWeight() float64 { return 1 }
func (energyScorer) lowerIsBetter() bool    { return true }

// raw is marginal watts ÷ performance factor: the power of adding the
// instance, per unit of the reference architecture's work.
func (energyScorer) raw(_ *state, f *fit) float64 { return f.marginal / f.factor }

// explain: "ampere-altra does 0.70x the work of the reference for tag
// web-frontend at 38.0 W marginal (54.3 W per unit of work); utilisation 45%
// measured".
func (energyScorer) explain(st *state, f *fit, raw float64, b []byte) []byte {
	b = appendModel(b, f)
	b = append(b, " does "...)
	b = appendFixed(b, f.factor, 2)
	b = append(b, "x the work of the reference"...)
	switch {
	case st.open && st.tag == "":
		b = append(b, " (no tag)"...)
	case st.open:
		b = append(b, " (tag "...)
		b = append(b, st.tag...)
		b = append(b, " lists no candidates)"...)
	case f.cand < 0:
		b = append(b, " (assumed: not a candidate for tag "...)
		b = append(b, st.tag...)
		b = append(b, ')')
	default:
		b = append(b, " for tag "...)
		b = append(b, st.tag...)
	}
	b = append(b, " at "...)
	b = appendFixed(b, f.marginal, 1)
	b = append(b, " W marginal"...)
	if f.empty {
		b = append(b, ", "...)
		b = appendFixed(b, watts(f.model.Curve[0]), 1)
		b = append(b, " W of it idle to wake the empty host"...)
	}
	b = append(b, " ("...)
	b = appendFixed(b, raw, 1)
	b = append(b, " W per unit of work); utilisation "...)
	b = appendPct(b, f.u)
	if f.measured {
		return append(b, " measured"...)
	}
	return append(b, " estimated"...)
}

func appendModel(b []byte, f *fit) []byte {
	switch {
	case f.model.Default:
		b = append(b, "default model for "...)
		if f.isa == "" {
			return append(b, "unknown ISA"...)
		}
		return append(b, f.isa...)
	case f.model.Name == "":
		return append(b, "unnamed model"...)
	}
	return append(b, f.model.Name...)
}

// consolidationScorer: prefer hosts that are on and busy, up to their
// ceiling; higher is better.
type consolidationScorer struct{}

func (consolidationScorer) name() string           { return ScorerConsolidation }
func (consolidationScorer) defaultWeight() float64 { return 0.5 }
func (consolidationScorer) lowerIsBetter() bool    { return false }

// raw is utilisation after placement ÷ ceiling (1 when none), and 0 for an
// empty host: waking a host is the opposite of consolidating. A host the
// instance would take past its ceiling (or past 100 % busy, without one)
// gets 0 too: going over is no consolidation to reward, and the ceiling
// filter rejects it anyway.
func (consolidationScorer) raw(_ *state, f *fit) float64 {
	if f.empty || f.pastCeiling() {
		return 0
	}
	return f.after() / f.ceilingOr1()
}

// explain: "host at 45% → 52% of its 80% ceiling".
func (consolidationScorer) explain(_ *state, f *fit, _ float64, b []byte) []byte {
	switch {
	case f.empty:
		b = append(b, "host is empty: choosing it wakes it, "...)
	case f.pastCeiling():
		b = append(b, "no credit, past the ceiling: "...)
	default:
		b = append(b, "host at "...)
	}
	b = appendPct(b, f.u)
	b = append(b, " → "...)
	if f.pastCeiling() {
		b = appendPct(b, f.u+f.du)
	} else {
		b = appendPct(b, f.after())
	}
	if f.ceiling == 0 {
		return append(b, ", no ceiling"...)
	}
	b = append(b, " of its "...)
	b = appendPct(b, f.ceiling)
	return append(b, " ceiling"...)
}

// normalizeColumn maps the Raw of column col of a host-major component table
// (stride components per host) to Normalized in [0, 100] by min-max, reversed
// when lower is better, and sets Weighted. When all finite raws are equal
// they all get 100. A raw that is NaN or infinite gets 0 and does not take
// part in the min and max.
func normalizeColumn(comps []Component, col, stride int, lowerIsBetter bool) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := col; i < len(comps); i += stride {
		if r := comps[i].Raw; finite(r) {
			lo, hi = min(lo, r), max(hi, r)
		}
	}
	// Halves keep hi-lo finite even for raws near ±MaxFloat64.
	width := hi/2 - lo/2
	for i := col; i < len(comps); i += stride {
		c := &comps[i]
		c.Normalized = normalized(c.Raw, lo, width, lowerIsBetter)
		c.Weighted = c.Normalized * c.Weight
	}
}

// normalized is raw mapped to [0, 100] between lo and lo+2×width (see
// normalizeColumn).
func normalized(raw, lo, width float64, lowerIsBetter bool) float64 {
	switch {
	case !finite(raw):
		return 0
	case !(width > 0):
		return 100
	}
	n := (raw/2 - lo/2) / width * 100
	if lowerIsBetter {
		n = 100 - n
	}
	return min(100, max(0, n))
}

// FilterWeighScores is FilterWeigh for a caller that needs each host's
// Score alone (Nova's weigher): the same numbers, bit for bit (normalised
// and weighted as normalizeColumn does, summed in component order), 0 for a
// rejected host, without a Component per host and scorer (at 10,000 hosts,
// 1.6 MB written and read again per call).
func FilterWeighScores(req Request, prof Profile, hosts []Host, weights map[string]float64) []float64 {
	return new(Scratch).FilterWeighScores(req, prof, hosts, weights)
}

// FilterWeighScores is the package's FilterWeighScores in sc's memory.
func (sc *Scratch) FilterWeighScores(req Request, prof Profile, hosts []Host, weights map[string]float64) []float64 {
	st := newState(req, prof)
	e := &sc.quiet
	e.quiet = true
	e.reset(len(hosts))
	passed := e.runFilters(st, sc.verdictsFor(len(hosts)), st.fitter(hosts))
	active, k := enabled(weights)
	sc.raw = slices.Grow(sc.raw[:0], passed*k)[:passed*k]
	raw := sc.raw // host-major, as weigh's components
	n := 0
	for i := range e.fits {
		f := &e.fits[i]
		if f.out {
			continue
		}
		st.marginal(f)
		for j, a := range active[:k] {
			raw[n*k+j] = a.s.raw(st, f)
		}
		n++
	}
	for j, a := range active[:k] {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := j; i < len(raw); i += k {
			if r := raw[i]; finite(r) {
				lo, hi = min(lo, r), max(hi, r)
			}
		}
		width := hi/2 - lo/2
		for i := j; i < len(raw); i += k {
			raw[i] = normalized(raw[i], lo, width, a.s.lowerIsBetter()) * a.w
		}
	}
	scores := make([]float64, len(hosts))
	n = 0
	for i := range e.fits {
		if e.fits[i].out {
			continue
		}
		var sum float64
		for _, w := range raw[n*k : (n+1)*k] {
			sum += w
		}
		scores[i] = sum
		n++
	}
	return scores
}

// WeighHosts scores every host for one request, in input order: each enabled
// scorer's raw measure is normalised to [0, 100] among these hosts, weighted,
// and summed. It does not filter: callers pass the hosts that passed
// FilterHosts, or use FilterWeigh. weights: see ValidateWeights; nil means
// DefaultWeights.
//
// Every Component carries its Explanation. All explanations of one call are
// substrings of a single string (see the package doc), so the call allocates
// a fixed handful of times whatever the number of hosts.
func WeighHosts(req Request, prof Profile, hosts []Host, weights map[string]float64) []Scored {
	return weighHosts(req, prof, hosts, weights, true)
}

// WeighHostsQuiet is WeighHosts without the explanations: the same scores
// and components, every Explanation empty. Nova's weigher needs only the
// scores, and the text is most of the cost of a pass.
func WeighHostsQuiet(req Request, prof Profile, hosts []Host, weights map[string]float64) []Scored {
	return weighHosts(req, prof, hosts, weights, false)
}

// FilterWeigh runs FilterHostsQuiet, then WeighHosts (explain) or
// WeighHostsQuiet over the hosts that passed, computing each host's fit
// once for both: a rejected host gets a zero Scored, no score and no
// components, and takes no part in the normalisation of the others.
func FilterWeigh(req Request, prof Profile, hosts []Host, weights map[string]float64, explain bool) ([]Verdict, []Scored) {
	st := newState(req, prof)
	e := evaluator{quiet: true}
	e.reset(len(hosts))
	verdicts := make([]Verdict, len(hosts))
	passed := e.runFilters(st, verdicts, st.fitter(hosts))
	return verdicts, weigh(st, hosts, e.fits, passed, weights, explain)
}

func weighHosts(req Request, prof Profile, hosts []Host, weights map[string]float64, explain bool) []Scored {
	return weigh(newState(req, prof), hosts, nil, len(hosts), weights, explain)
}

// weigh scores the hosts; with fits (from the filter chain), only those
// not out, kept of them.
func weigh(st *state, hosts []Host, fits []fit, kept int, weights map[string]float64, explain bool) []Scored {
	active, k := enabled(weights)
	out := make([]Scored, len(hosts))
	comps := make([]Component, kept*k)
	ends := make([]int32, len(comps)) // explanations are contiguous in text
	// text collects every explanation; a Builder grows without zeroing and
	// turns into a string without copying.
	var text strings.Builder
	if explain {
		text.Grow(len(comps) * 112)
	}
	var line []byte // one explanation at a time
	var own fit
	n := 0 // hosts scored so far
	for i := range hosts {
		f := &own
		if fits != nil {
			if f = &fits[i]; f.out {
				continue
			}
		} else {
			u, m := hosts[i].CurrentUtilization()
			st.fit(&hosts[i], u, m, f)
		}
		st.marginal(f)
		out[i].MarginalWatts, out[i].Factor = f.marginal, f.factor
		cs := comps[n*k : (n+1)*k : (n+1)*k]
		for j, a := range active[:k] {
			c := &cs[j]
			c.Scorer, c.Weight, c.Raw = a.s.name(), a.w, a.s.raw(st, f)
			if explain {
				line = a.s.explain(st, f, c.Raw, line[:0])
				text.Write(line)
			}
			ends[n*k+j] = int32(text.Len())
		}
		out[i].Components = cs
		n++
	}
	all, start := text.String(), int32(0)
	for i := range comps {
		comps[i].Explanation = all[start:ends[i]]
		start = ends[i]
	}
	for j, a := range active[:k] {
		normalizeColumn(comps, j, k, a.s.lowerIsBetter())
	}
	for i := range out {
		for _, c := range out[i].Components {
			out[i].Score += c.Weighted
		}
	}
	return out
}
