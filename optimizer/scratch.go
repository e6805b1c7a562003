package optimizer

import "slices"

// Scratch is the working memory of filter and weigher calls, for a caller
// that makes many (the service: a Nova pass per call). Kept between calls,
// it spares a call over 10,000 hosts allocating and zeroing a megabyte of
// per-host state. The zero value is ready; one call at a time.
type Scratch struct {
	quiet    evaluator
	verdicts []Verdict
	raw      []float64
}

func (sc *Scratch) verdictsFor(n int) []Verdict {
	sc.verdicts = slices.Grow(sc.verdicts[:0], n)[:n]
	return sc.verdicts
}

// FilterPassed is FilterHostsQuiet's Passed flags, in a fresh slice, and
// how many passed.
func (sc *Scratch) FilterPassed(req Request, prof Profile, hosts []Host) (flags []bool, passed int) {
	st := newState(req, prof)
	e := &sc.quiet
	e.quiet = true
	e.reset(len(hosts))
	verdicts := sc.verdictsFor(len(hosts))
	passed = e.runFilters(st, verdicts, st.fitter(hosts))
	flags = make([]bool, len(hosts))
	for i := range verdicts {
		flags[i] = verdicts[i].Passed
	}
	return flags, passed
}
