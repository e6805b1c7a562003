package optimizer

// Filter stage names, as they appear in Verdict.Filter.
const (
	FilterHost       = "host"
	FilterCapacity   = "capacity"
	FilterGroup      = "group"
	FilterISA        = "isa"
	FilterCandidates = "candidates"
	FilterCeiling    = "ceiling"
)

// Verdict is one host's answer from FilterHosts.
type Verdict struct {
	Passed bool
	// Filter is the stage that rejected the host; "" when it passed.
	Filter string
	// Reason says why the host was rejected, or carries a note on why it
	// passed (a relaxed hint); often "" for a pass.
	Reason string
}

// filter is one stage of the filter chain.
type filter interface {
	name() string
	// filter reports whether the host passes. It appends to why the reason
	// for a rejection, or a note on a pass, and returns the buffer.
	filter(st *state, f *fit, why []byte) (bool, []byte)
	// applies is false when, for this request, filter passes every host
	// and says nothing (no group, no image ISA, no ceiling...): the stage
	// is then skipped, not called 10,000 times to no effect.
	applies(st *state) bool
}

// preparer is implemented by a stage that must see every host still in the
// running before it decides any one of them (the soft hint).
type preparer interface {
	prepare(st *state, fits []fit)
}

var (
	_ filter   = hostFilter{}
	_ filter   = capacityFilter{}
	_ filter   = groupFilter{}
	_ filter   = isaFilter{}
	_ filter   = candidatesFilter{}
	_ preparer = candidatesFilter{}
	_ filter   = ceilingFilter{}
)

// filterChain is the filter pipeline, in order: the one rule set of ECRAE.
// Placement runs it per request (FilterHosts); consolidation compiles its
// load-free stages per instance kind and host (ClusterInstance.AllowedOn,
// ClusterHost.Receives) and checks capacity, ceilings and groups with the
// same arithmetic on its own load vectors, which a property test holds to
// FilterHosts. The stages are stateless values, so building the chain costs
// nothing.
func filterChain() [6]filter {
	return [6]filter{
		// host first: a host that may receive nothing (disabled, down,
		// draining) needs no other test.
		hostFilter{},
		// capacity next: it is a hard constraint Nova enforces anyway, the
		// cheapest test and the most selective; and the soft hint below must
		// only count candidates that can really take the instance.
		capacityFilter{},
		// isa next: an image cannot boot on another instruction set. Before
		// candidates for the same reason as capacity.
		isaFilter{},
		// group: a hard server group policy, before candidates for the
		// same reason: a host the group forbids cannot take it.
		groupFilter{},
		// candidates: needs every host that passed the hard constraints, to
		// decide whether a hint may be relaxed; it also fixes the candidate
		// entry (factor, ceiling) the next stage and the scorers use.
		candidatesFilter{},
		// ceiling last: its threshold comes from the host's candidate entry.
		ceilingFilter{},
	}
}

// hostFilter: the host's state. A disabled (or down) host and a host a
// running plan is emptying receive nothing. A stale host passes: Nova's
// call carries its resources, and only the measured utilisation falls back
// to the estimate (a plan, which has the view alone, refuses it: see
// ClusterHost.Receives).
type hostFilter struct{}

func (hostFilter) name() string { return FilterHost }

func (hostFilter) applies(*state) bool { return true }

func (hostFilter) filter(_ *state, f *fit, why []byte) (bool, []byte) {
	h := f.h
	switch {
	case h.Disabled:
		return false, append(why, "host is disabled or down"...)
	case h.Draining != "":
		why = append(why, "host is being emptied by rebalance plan "...)
		return false, append(why, h.Draining...)
	}
	return true, why
}

// groupFilter: a server group's hard policy, as Nova's
// ServerGroupAffinityFilter and ServerGroupAntiAffinityFilter.
type groupFilter struct{}

func (groupFilter) name() string { return FilterGroup }

func (groupFilter) applies(st *state) bool { return len(st.group.Hosts) > 0 }

func (groupFilter) filter(st *state, f *fit, why []byte) (bool, []byte) {
	g := &st.group
	if len(g.Hosts) == 0 {
		return true, why
	}
	var on bool
	if st.groupSet != nil {
		_, on = st.groupSet[f.h.Name]
	} else {
		for _, h := range g.Hosts {
			if h == f.h.Name {
				on = true
				break
			}
		}
	}
	switch {
	case g.Policy == PolicyAffinity && !on:
		return false, append(why, "affinity group: its other members run elsewhere"...)
	case g.Policy == PolicyAntiAffinity && on:
		return false, append(why, "anti-affinity group: another member runs here"...)
	}
	return true, why
}

// capacityFilter: vCPUs, RAM and disk with Nova's allocation ratios.
type capacityFilter struct{}

func (capacityFilter) name() string { return FilterCapacity }

func (capacityFilter) applies(st *state) bool { return st.vcpus > 0 || st.ramMB > 0 || st.diskMB > 0 }

func (capacityFilter) filter(st *state, f *fit, why []byte) (bool, []byte) {
	h := f.h
	if st.vcpus > 0 {
		r := ratio(h.CPURatio)
		free := float64(h.VCPUsTotal)*r - float64(h.VCPUsUsed)
		if free < st.vcpus {
			why = append(why, "needs "...)
			why = appendShort(why, st.vcpus)
			why = append(why, " vCPUs, "...)
			why = appendShort(why, free)
			why = append(why, " free of "...)
			why = appendShort(why, float64(h.VCPUsTotal))
			why = append(why, "×"...)
			return false, appendRatio(why, r)
		}
	}
	if st.ramMB > 0 {
		r := ratio(h.RAMRatio)
		free := float64(h.FreeRAMMB) + float64(h.TotalRAMMB)*(r-1)
		if free < st.ramMB {
			why = append(why, "needs "...)
			why = appendShort(why, st.ramMB)
			why = append(why, " MB RAM, "...)
			why = appendFixed(why, free, 0)
			why = append(why, " MB free of "...)
			why = appendShort(why, float64(h.TotalRAMMB))
			why = append(why, " MB×"...)
			return false, appendRatio(why, r)
		}
	}
	if st.diskMB > 0 {
		r := ratio(h.DiskRatio)
		free := float64(h.FreeDiskMB) + float64(h.TotalDiskGB)*1024*(r-1)
		if free < st.diskMB {
			why = append(why, "needs "...)
			why = appendShort(why, st.diskMB/1024)
			why = append(why, " GB disk, "...)
			why = appendFixed(why, free/1024, 1)
			why = append(why, " GB free of "...)
			why = appendShort(why, float64(h.TotalDiskGB))
			why = append(why, " GB×"...)
			return false, appendRatio(why, r)
		}
	}
	return true, why
}

// isaFilter: the image's hw_architecture must equal the host's ISA, after
// normalisation. An image that names no ISA runs anywhere; a host whose ISA
// is unknown cannot take an image that names one (as Nova's
// ImagePropertiesFilter).
type isaFilter struct{}

func (isaFilter) name() string { return FilterISA }

func (isaFilter) applies(st *state) bool { return st.imageISA != "" }

func (isaFilter) filter(st *state, f *fit, why []byte) (bool, []byte) {
	if st.imageISA == "" || st.imageISA == f.isa {
		return true, why
	}
	why = append(why, "image needs "...)
	why = append(why, st.imageISA...)
	if f.isa == "" {
		return false, append(why, ", host ISA unknown"...)
	}
	why = append(why, ", host is "...)
	return false, append(why, f.isa...)
}

// candidatesFilter: the host's model must be one of the tag's candidates.
// Exact mode rejects every other host. Hint mode rejects them only when some
// candidate host can take the instance; otherwise they pass with a note.
type candidatesFilter struct{}

func (candidatesFilter) name() string { return FilterCandidates }

// applies: without a candidate list every host is a candidate.
func (candidatesFilter) applies(st *state) bool { return !st.open }

// prepare decides, in hint mode, whether the hint must be relaxed. A
// candidate "can take it" when it passed the earlier stages and is within
// its ceiling: the ceiling stage comes later, but a candidate that would fail
// it cannot take the instance either, and rejecting everyone else because of
// it would turn a hint into a refusal.
//
// For a move the request says (Request.Relax): its call may hold just the
// requested host, so the call cannot tell whether a candidate could take it.
func (candidatesFilter) prepare(st *state, fits []fit) {
	st.relaxed = false
	if st.open || st.exact {
		return
	}
	switch st.relax {
	case RelaxNever:
		return
	case RelaxAllowed:
		st.relaxed = true
		return
	}
	for i := range fits {
		if !fits[i].out && fits[i].cand >= 0 && !fits[i].overCeiling() {
			return
		}
	}
	st.relaxed = true
}

func (candidatesFilter) filter(st *state, f *fit, why []byte) (bool, []byte) {
	if st.candidate(f) {
		return true, why
	}
	if st.relaxed {
		return true, append(why, "hint relaxed: no candidate architecture can take it"...)
	}
	if st.relax == RelaxNever && !st.exact {
		why = append(why, "not a candidate for tag "...)
		why = append(why, st.tag...)
		why = append(why, "; a move keeps to the candidates ("...)
		why = append(why, st.candText...)
		return false, append(why, ')')
	}
	why = append(why, "not a candidate for tag "...)
	why = append(why, st.tag...)
	if st.exact {
		why = append(why, " (exact: "...)
		why = append(why, st.candText...)
		return false, append(why, ')')
	}
	why = append(why, "; a candidate ("...)
	why = append(why, st.candText...)
	return false, append(why, ") can take it"...)
}

// ceilingFilter: utilisation after placement must stay within the ceiling
// of the host's candidate entry, else the profile's (0 = none).
type ceilingFilter struct{}

func (ceilingFilter) name() string { return FilterCeiling }

// applies: some host may have a ceiling, the profile's or a candidate's.
func (ceilingFilter) applies(st *state) bool {
	if st.ceiling > 0 {
		return true
	}
	for i := range st.cands {
		if st.cands[i].ceiling > 0 {
			return true
		}
	}
	return false
}

func (ceilingFilter) filter(st *state, f *fit, why []byte) (bool, []byte) {
	if !f.overCeiling() {
		return true, why
	}
	why = append(why, "would reach "...)
	why = appendFixed(why, (f.u+f.du)*100, 1)
	why = append(why, "% CPU, over the "...)
	why = appendFixed(why, f.ceiling*100, 1)
	why = append(why, "% ceiling"...)
	if st.tag != "" {
		why = append(why, " for tag "...)
		why = append(why, st.tag...)
	}
	return false, why
}

// FilterHosts runs the filter chain for one request over all hosts and
// answers one Verdict per host, in input order. It needs all hosts at once:
// whether a hint is relaxed depends on the others. Reasons share one string
// (see the package doc).
func FilterHosts(req Request, prof Profile, hosts []Host) []Verdict {
	return filterHosts(req, prof, hosts, false)
}

// FilterHostsQuiet is FilterHosts without the reasons (Reason stays empty):
// what Nova's filter asks for, where a thousand reasons are text nobody
// reads.
func FilterHostsQuiet(req Request, prof Profile, hosts []Host) []Verdict {
	return filterHosts(req, prof, hosts, true)
}

func filterHosts(req Request, prof Profile, hosts []Host, quiet bool) []Verdict {
	st := newState(req, prof)
	e := evaluator{quiet: quiet}
	e.reset(len(hosts))
	verdicts := make([]Verdict, len(hosts))
	e.runFilters(st, verdicts, st.fitter(hosts))
	e.reasons(verdicts)
	return verdicts
}

// evaluator holds the per-host scratch of one call; WhatIf reuses it across
// the items of a batch.
type evaluator struct {
	fits []fit
	why  []byte // reasons and notes of this pass, see fit.why
	// quiet drops each reason once written: why then holds one at most.
	quiet bool
}

// fitter sets the fit of hosts[i] at its current utilisation.
func (st *state) fitter(hosts []Host) func(int, *fit) {
	return func(i int, f *fit) {
		u, m := hosts[i].CurrentUtilization()
		st.fit(&hosts[i], u, m, f)
	}
}

func (e *evaluator) reset(n int) {
	if cap(e.fits) < n {
		e.fits = make([]fit, n)
		// Reasons run to 40-60 bytes; usually fewer than half the hosts
		// get one.
		if !e.quiet {
			e.why = make([]byte, 0, 32*n)
		}
	}
	e.fits = e.fits[:n]
	e.why = e.why[:0]
}

// runFilters sets each host's fit with fitHost(i, &e.fits[i]), runs the
// chain over them and sets Passed and Filter of verdicts (and clears
// Reason: verdicts may be reused); reasons stay in
// e.why until e.reasons. A later stage's text replaces an earlier one's (a
// relaxed-hint note, then a ceiling rejection).
//
// The stages between two preparers run host by host, all of them for one
// host before the next: at 10,000 hosts a stage-by-stage sweep reads every
// host's data once per stage, and that memory traffic was most of a pass.
// Each stage still sees exactly the hosts the earlier ones passed, and a
// preparer every host the stages before it passed. Fits are set in the
// first sweep, with the first stages (the chain does not start with a
// preparer).
func (e *evaluator) runFilters(st *state, verdicts []Verdict, fitHost func(i int, f *fit)) (passed int) {
	chain := filterChain()
	for from := 0; from < len(chain); {
		if p, ok := chain[from].(preparer); ok {
			p.prepare(st, e.fits)
		}
		to := from + 1
		for to < len(chain) {
			if _, ok := chain[to].(preparer); ok {
				break
			}
			to++
		}
		var buf [len(chain)]filter
		stages := buf[:0]
		for _, fl := range chain[from:to] {
			if fl.applies(st) {
				stages = append(stages, fl)
			}
		}
		for i := range e.fits {
			f := &e.fits[i]
			if from == 0 {
				fitHost(i, f)
			}
			for _, fl := range stages {
				if f.out {
					break
				}
				start := len(e.why)
				ok, why := fl.filter(st, f, e.why)
				e.why = why
				if e.quiet {
					e.why = why[:start]
				} else if len(why) > start {
					f.why = span{start, len(why)}
				}
				if !ok {
					f.out = true
					verdicts[i].Filter = fl.name()
				}
			}
		}
		from = to
	}
	for i := range e.fits {
		if e.fits[i].out { // Filter was set when it was rejected
			verdicts[i].Passed, verdicts[i].Reason = false, ""
			continue
		}
		verdicts[i] = Verdict{Passed: true}
		passed++
	}
	return passed
}

// reasons copies the reasons into verdicts, all sharing one string.
func (e *evaluator) reasons(verdicts []Verdict) {
	if len(e.why) == 0 {
		return
	}
	text := string(e.why)
	for i := range e.fits {
		verdicts[i].Reason = e.fits[i].why.of(text)
	}
}
