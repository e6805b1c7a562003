package optimizer

import (
	"math"
	"strings"
)

// state is what one request needs, computed once before the host loop (the
// PreFilter/PreScore step): the sanitised request and profile, normalised
// ISAs, and each candidate's effective factor and ceiling.
type state struct {
	tag      string // the profile's tag, for explanations
	exact    bool
	open     bool // no candidate list: every host is a candidate at factor 1
	cands    []candidate
	candText string // "ampere-altra, any aarch64", for reasons

	imageISA             string
	vcpus, ramMB, diskMB float64
	load                 float64 // busy share of each requested vCPU, (0, 1]
	busy                 float64 // busy cores the request adds: vcpus × load, or Request.Busy
	relax                HintRelax
	group                GroupRule
	groupSet             map[string]struct{} // group.Hosts, when too many to scan per host
	ceiling              float64             // the profile's ceiling, 0 = none
	relaxed              bool                // hint mode and no candidate can take it; set by the candidates stage
	noModel              Model               // stands in for a nil Host.Model
}

// candidate is a Candidate with its inputs sanitised.
type candidate struct {
	arch    string
	isa     string  // normalised
	factor  float64 // > 0
	ceiling float64 // the candidate's, else the profile's; 0 = none
}

// fit is one host as one request sees it, computed once per host.
type fit struct {
	h        *Host
	model    *Model
	isa      string // normalised host ISA, "" = unknown
	cand     int    // index in state.cands, -1 = not a candidate (or no list)
	factor   float64
	ceiling  float64 // 0 = none
	u, du    float64 // utilisation now, and what the request adds
	measured bool
	empty    bool    // no instances and no vCPUs in use: the host could sleep
	marginal float64 // set by state.marginal

	// Filter bookkeeping, kept here to spare FilterHosts two arrays.
	out bool // rejected by a stage
	why span // the reason or note in the evaluator's buffer; empty = none
}

// newState sanitises the request and profile (see the package doc on
// NaN/Inf handling) and precomputes what every host needs.
func newState(req Request, prof Profile) *state {
	st := &state{
		tag:      prof.Tag,
		exact:    prof.Mode == ModeExact,
		open:     len(prof.Candidates) == 0,
		imageISA: NormalizeISA(req.ImageISA),
		vcpus:    float64(max(req.VCPUs, 0)),
		ramMB:    float64(max(req.MemoryMB, 0)),
		diskMB:   float64(max(req.DiskGB, 0)) * 1024,
		load:     share(prof.CPULoad),
		ceiling:  positive(prof.UtilizationCeiling),
		relax:    req.Relax,
		group:    req.Group,
	}
	if len(st.group.Hosts) > 16 {
		st.groupSet = make(map[string]struct{}, len(st.group.Hosts))
		for _, h := range st.group.Hosts {
			st.groupSet[h] = struct{}{}
		}
	}
	st.busy = st.vcpus * st.load
	if req.BusyKnown && req.Busy >= 0 && req.Busy <= math.MaxFloat64 {
		st.busy = req.Busy
	}
	if st.open {
		return st
	}
	st.cands = make([]candidate, len(prof.Candidates))
	var text strings.Builder
	for i, c := range prof.Candidates {
		f := positive(c.PerformanceFactor)
		if f == 0 {
			f = 1 // unknown factor: count as the reference
		}
		ceil := positive(c.UtilizationCeiling)
		if ceil == 0 {
			ceil = st.ceiling
		}
		st.cands[i] = candidate{arch: c.Architecture, isa: NormalizeISA(c.ISA), factor: f, ceiling: ceil}
		if i > 0 {
			text.WriteString(", ")
		}
		if c.Architecture != "" {
			text.WriteString(c.Architecture)
		} else {
			text.WriteString("any ")
			text.WriteString(st.cands[i].isa)
		}
	}
	st.candText = text.String()
	return st
}

// fit fills f for host h at utilisation u. Callers pass u so that WhatIf can
// carry the load it has already placed.
func (st *state) fit(h *Host, u float64, measured bool, f *fit) {
	m := h.Model
	if m == nil {
		m = &st.noModel
	}
	isa := NormalizeISA(h.ISA)
	if isa == "" {
		isa = NormalizeISA(m.ISA)
	}
	*f = fit{
		h: h, model: m, isa: isa, cand: -1, factor: 1, ceiling: st.ceiling,
		u: u, du: st.busy / h.cores(), measured: measured,
		empty: h.NumInstances <= 0 && h.VCPUsUsed <= 0,
	}
	for i := range st.cands {
		c := &st.cands[i]
		if (c.arch != "" && c.arch == m.Name) || (c.arch == "" && c.isa != "" && c.isa == isa) {
			f.cand, f.factor, f.ceiling = i, c.factor, c.ceiling
			break
		}
	}
}

// marginal sets f.marginal: the watts the host draws more with the request,
// plus its idle power if it is empty (it could otherwise sleep).
func (st *state) marginal(f *fit) {
	c := &f.model.Curve
	m := c.Watts(f.u+f.du) - c.Watts(f.u)
	if f.empty {
		m += watts(c[0])
	}
	f.marginal = m
}

// candidate reports whether the host counts as a candidate of the profile.
func (st *state) candidate(f *fit) bool { return st.open || f.cand >= 0 }

// overCeiling reports whether the host would pass its utilisation ceiling.
// A tolerance of 1e-9 keeps "exactly at the ceiling" from failing on
// rounding.
func (f *fit) overCeiling() bool {
	return f.ceiling > 0 && f.u+f.du > f.ceiling+1e-9
}

// ceilingOr1 is the host's ceiling, 1 when it has none.
func (f *fit) ceilingOr1() float64 {
	if f.ceiling == 0 {
		return 1
	}
	return f.ceiling
}

// pastCeiling reports whether the host would pass its ceiling, or 100 %
// busy when it has none.
func (f *fit) pastCeiling() bool { return f.u+f.du > f.ceilingOr1()+1e-9 }

// after is the utilisation once the request runs, capped at 1.
func (f *fit) after() float64 { return clamp01(f.u + f.du) }
