package optimizer

// The one rule set, seen from a rebalance: the stages of filterChain that
// need no load are run here for cluster hosts and instances, so a plan and
// a boot are judged by the same code. Capacity, ceilings and server groups
// depend on the load a plan changes step by step; the solver checks them on
// its load vectors with the same arithmetic (TestPlanStepsPassFilterHosts
// replays every step through FilterHosts).

// FilterHost is h as FilterHosts sees it, without load: name, ISA, model and
// the states that decide whether it may receive. A host the operator
// excluded counts as disabled: it receives nothing either.
func (h *ClusterHost) FilterHost() Host {
	return Host{
		Name: h.Name, Nodename: h.Name, ISA: h.ISA, Model: h.Model,
		Disabled: h.State == HostDisabled || h.State == HostDown || h.NoTarget,
		Stale:    h.State == HostStale,
		Draining: h.Draining,
	}
}

// Receives reports whether a plan may bring an instance to h: the host
// stage of the filter chain, and not stale. The filter lets a stale host
// pass, as Nova's call carries its resources; a plan knows the host from
// the view alone, and does not add load to one whose load it does not know.
func (h *ClusterHost) Receives() bool {
	fh := h.FilterHost()
	f := fit{h: &fh}
	ok, _ := hostFilter{}.filter(nil, &f, nil)
	return ok && !fh.Stale
}

// AllowedOn reports whether the instance may move to host h at all, by the
// filter chain's ISA and candidates stages for a move (a hint is never
// relaxed: a plan moves an instance to a candidate or leaves it where it
// is), and the utilisation ceiling it sets there (0 = none): the matching
// candidate's, else the profile's. instISA is the instance's image ISA, ""
// = any. The host's state is Receives' business.
func (in *ClusterInstance) AllowedOn(instISA string, h *ClusterHost) (bool, float64) {
	st := newState(Request{ImageISA: instISA, Relax: RelaxNever}, in.Profile)
	fh := Host{Name: h.Name, ISA: h.ISA, Model: h.Model}
	var f fit
	st.fit(&fh, 0, false, &f)
	for _, fl := range [...]filter{isaFilter{}, candidatesFilter{}} {
		if ok, _ := fl.filter(st, &f, nil); !ok {
			return false, 0
		}
	}
	return true, f.ceiling
}

// MoveRelax judges whether a move of an instance may relax its hint-mode
// tag, against the cluster rather than the call (whose hosts may be just
// the one requested destination): never when the instance runs on a
// candidate (from), nor when some candidate among hosts (every host the
// cluster has) passes the filter chain for it; otherwise the hint is
// relaxed, as it would be for a boot on that cluster. from is nil when the
// instance runs on no known host.
func MoveRelax(req Request, prof Profile, from *Host, hosts []Host) HintRelax {
	if prof.Mode == ModeExact || len(prof.Candidates) == 0 {
		return RelaxNever // nothing to relax
	}
	req.Relax = RelaxNever
	if from != nil {
		st := newState(req, prof)
		var f fit
		st.fit(from, 0, false, &f)
		if f.cand >= 0 {
			return RelaxNever
		}
	}
	for _, v := range FilterHostsQuiet(req, prof, hosts) {
		if v.Passed {
			return RelaxNever // a candidate can take it
		}
	}
	return RelaxAllowed
}
