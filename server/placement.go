package server

import (
	"context"
	"fmt"
	"github.com/ecrae/ecrae/catalog"

	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pass is one Nova filter or weigher pass, validated and converted.
type pass struct {
	cat         *catalog.Catalog
	req         optimizer.Request
	prof        optimizer.Profile
	tag, source string
	hosts       []optimizer.Host
	buf         *[]optimizer.Host // backs hosts, recycled by done
	memo        []*held           // memo[i]: the held state hosts[i] came from, if any
	sc          *optimizer.Scratch
}

// newPass reads the KB view and validates and converts the instance and the
// hosts of a filter or weigher call.
func (s *Server) newPass(ctx context.Context, inst *ecraev1.InstanceRequest, hosts []*ecraev1.HostState, packed []byte) (*pass, error) {
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	p := &pass{cat: c}
	if p.req, p.prof, p.tag, p.source, err = convertInstance(c, inst, "instance", s.cfg.DefaultTag); err != nil {
		return nil, err
	}
	if err := s.moveRules(c, inst, "instance", &p.req, p.prof); err != nil {
		return nil, err
	}
	hosts, memo, err := s.resolveHosts(hosts, packed)
	if err != nil {
		return nil, err
	}
	buf, _ := s.hostBufs.Get().(*[]optimizer.Host)
	if buf == nil {
		buf = new([]optimizer.Host)
	}
	if p.hosts, err = convertHosts(c, hosts, *buf, memo); err != nil {
		s.hostBufs.Put(buf)
		return nil, err
	}
	*buf = p.hosts
	p.buf, p.memo = buf, memo
	return p, nil
}

// resolveHosts replaces the references among hosts by the states they stand
// for (see stateCache.resolve), once the call is known not to be oversized;
// with packed references (host_refs), hosts are the full states among them
// (see stateCache.resolvePacked).
func (s *Server) resolveHosts(hosts []*ecraev1.HostState, packed []byte) ([]*ecraev1.HostState, []*held, error) {
	if len(packed) > 0 {
		return s.states.resolvePacked(packed, hosts, s.cfg.MaxHosts, s.stats)
	}
	if len(hosts) > s.cfg.MaxHosts {
		return nil, nil, invalid("hosts", "%d hosts exceed the limit of %d per call", len(hosts), s.cfg.MaxHosts)
	}
	if s.baseline {
		return s.states.resolveLocked(hosts, s.stats)
	}
	return s.states.resolve(hosts, s.stats)
}

// done hands the pass's hosts back for the next pass to convert into: the
// answer holds none of them (names are strings, copied by value). They are
// not cleared: at 10,000 hosts that was 2.4 MB zeroed per call, and what
// they refer to (models, names) is the service's own, shared, and dropped
// with the buffer when the pool is emptied at a collection.
func (s *Server) done(p *pass) {
	s.hostBufs.Put(p.buf)
	if p.sc != nil {
		s.scratches.Put(p.sc)
	}
}

// scratch is the optimizer's working memory for p, given back by done.
func (s *Server) scratch(p *pass) *optimizer.Scratch {
	if p.sc == nil {
		if p.sc, _ = s.scratches.Get().(*optimizer.Scratch); p.sc == nil {
			p.sc = new(optimizer.Scratch)
		}
	}
	return p.sc
}

// FilterHosts answers one Nova filter pass.
func (s *Server) FilterHosts(ctx context.Context, req *ecraev1.FilterHostsRequest) (*ecraev1.FilterHostsResponse, error) {
	p, err := s.newPass(ctx, req.GetInstance(), req.GetHosts(), req.GetHostRefs())
	if err != nil {
		return nil, err
	}
	defer s.done(p)
	r, prof, tag, source, hosts := p.req, p.prof, p.tag, p.source, p.hosts
	s.live(p.cat, hosts, p.memo, false) // measured utilisation decides the ceiling
	out := &ecraev1.FilterHostsResponse{Tag: tag, TagSource: source, StatesHeld: true, RefsPacked: true}
	passed := 0
	var verdicts []optimizer.Verdict
	switch {
	case req.GetPassedOnly() && !s.baseline:
		out.Passed, passed = s.scratch(p).FilterPassed(r, prof, hosts)
	case req.GetPassedOnly():
		verdicts = optimizer.FilterHostsQuiet(r, prof, hosts)
	default:
		verdicts = optimizer.FilterHosts(r, prof, hosts)
	}
	if req.GetPassedOnly() && s.baseline {
		out.Passed = make([]bool, len(hosts))
		for i, v := range verdicts {
			out.Passed[i] = v.Passed
			if v.Passed {
				passed++
			}
		}
	} else if !req.GetPassedOnly() {
		out.Verdicts = make([]*ecraev1.HostVerdict, len(hosts))
		all := make([]ecraev1.HostVerdict, len(hosts))
		for i, v := range verdicts {
			hv := &all[i]
			hv.Host, hv.Nodename, hv.Passed, hv.Filter, hv.Reason = hosts[i].Name, hosts[i].Nodename, v.Passed, v.Filter, v.Reason
			out.Verdicts[i] = hv
			if v.Passed {
				passed++
			}
		}
	}
	s.stats.filtered(tag, len(hosts), passed)
	if passed == 0 && len(hosts) > 0 && s.cfg.NoRoom != nil {
		s.cfg.NoRoom()
	}
	return out, nil
}

// WeighHosts answers one Nova weigher pass.
func (s *Server) WeighHosts(ctx context.Context, req *ecraev1.WeighHostsRequest) (*ecraev1.WeighHostsResponse, error) {
	p, err := s.newPass(ctx, req.GetInstance(), req.GetHosts(), req.GetHostRefs())
	if err != nil {
		return nil, err
	}
	defer s.done(p)
	weights, err := s.weights(req.GetScorerWeights())
	if err != nil {
		return nil, err
	}
	r, prof, tag, source, hosts := p.req, p.prof, p.tag, p.source, p.hosts
	quiet := req.GetOmitExplanations() || req.GetScoresOnly()
	notes := s.live(p.cat, hosts, p.memo, !quiet)
	// A host the rules reject gets no score: it is not weighed, nor counted
	// in the others' normalisation.
	if req.GetScoresOnly() {
		var values []float64
		if s.baseline { // as before issue 15: every component built, then summed
			_, scored := optimizer.FilterWeigh(r, prof, hosts, weights, false)
			values = make([]float64, len(scored))
			for i := range scored {
				values[i] = scored[i].Score
			}
		} else {
			values = s.scratch(p).FilterWeighScores(r, prof, hosts, weights)
		}
		return &ecraev1.WeighHostsResponse{Tag: tag, TagSource: source, ScoreValues: values, StatesHeld: true, RefsPacked: true}, nil
	}
	verdicts, scored := optimizer.FilterWeigh(r, prof, hosts, weights, !quiet)
	for i := range notes {
		appendNote(scored[i].Components, notes[i])
	}
	out := &ecraev1.WeighHostsResponse{Tag: tag, TagSource: source, Scores: make([]*ecraev1.HostScore, len(hosts)), StatesHeld: true, RefsPacked: true}
	// One allocation for all scores and one for all components, not one per
	// message: this answer is on the path of every Nova boot.
	all := make([]ecraev1.HostScore, len(hosts))
	var k int // components per scored host (a rejected host has none)
	for i := range scored {
		k = max(k, len(scored[i].Components))
	}
	comps := make([]ecraev1.ScoreComponent, len(hosts)*k)
	ptrs := make([]*ecraev1.ScoreComponent, len(hosts)*k)
	for i := range scored {
		h, hs := &hosts[i], &all[i]
		if v := verdicts[i]; !v.Passed {
			hs.Host, hs.Nodename, hs.Architecture, hs.DefaultModel = h.Name, h.Nodename, h.Model.Name, h.Model.Default
			hs.Rejected, hs.Filter = true, v.Filter
			out.Scores[i] = hs
			continue
		}
		hs.Host, hs.Nodename, hs.Score = h.Name, h.Nodename, scored[i].Score
		hs.Architecture, hs.MarginalWatts, hs.DefaultModel = h.Model.Name, scored[i].MarginalWatts, h.Model.Default
		bd := ptrs[i*k : (i+1)*k : (i+1)*k]
		for j, c := range scored[i].Components {
			pc := &comps[i*k+j]
			pc.Scorer, pc.Raw, pc.Normalized, pc.Weight, pc.Weighted, pc.Explanation = c.Scorer, c.Raw, c.Normalized, c.Weight, c.Weighted, c.Explanation
			bd[j] = pc
		}
		hs.Breakdown = bd
		out.Scores[i] = hs
	}
	return out, nil
}

// WhatIf places a batch without committing anything.
func (s *Server) WhatIf(ctx context.Context, req *ecraev1.WhatIfRequest) (*ecraev1.WhatIfResponse, error) {
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if len(req.GetInstances()) == 0 {
		return nil, invalid("instances", "at least one instance is required")
	}
	if req.GetMaxAlternatives() < 0 {
		return nil, invalid("max_alternatives", "must not be negative, got %d", req.GetMaxAlternatives())
	}
	weights, err := s.weights(req.GetScorerWeights())
	if err != nil {
		return nil, err
	}
	var items []optimizer.WhatIfItem
	var tags []string
	var index []int32
	for i, ir := range req.GetInstances() {
		field := fmt.Sprintf("instances[%d]", i)
		r, prof, tag, _, err := convertInstance(c, ir, field, s.cfg.DefaultTag)
		if err != nil {
			return nil, err
		}
		if err := s.moveRules(c, ir, field, &r, prof); err != nil {
			return nil, err
		}
		n := max(1, int(ir.GetNumInstances()))
		if len(items)+n > 10000 {
			return nil, invalid(field+".num_instances", "the batch exceeds 10000 instances")
		}
		for range n {
			items = append(items, optimizer.WhatIfItem{Request: r, Profile: prof})
			tags = append(tags, tag)
			index = append(index, int32(i))
		}
	}
	var hosts []optimizer.Host
	var notes []string
	source := "request"
	if len(req.GetHosts()) > 0 {
		given, memo, err := s.resolveHosts(req.GetHosts(), nil)
		if err != nil {
			return nil, err
		}
		if hosts, err = convertHosts(c, given, nil, memo); err != nil {
			return nil, err
		}
		notes = s.live(c, hosts, memo, true)
	} else if hosts, notes, source = s.liveHosts(c); len(hosts) == 0 {
		// No live view, or it knows no host it can size yet.
		hosts, notes, source = c.KnownHosts(), nil, "knowledge base (hosts empty, sized by their architecture)"
		if len(hosts) == 0 {
			return nil, status.Error(codes.FailedPrecondition, "hosts: none given, the live view has none and the knowledge base lists none; add hosts to the KB or pass them in the request")
		}
	}
	maxAlt := int(req.GetMaxAlternatives())
	if maxAlt == 0 {
		maxAlt = 3
	}
	res := optimizer.WhatIf(items, hosts, weights, maxAlt)
	out := &ecraev1.WhatIfResponse{HostSource: source, TotalMarginalWatts: res.TotalMarginalWatts}
	for k, p := range res.Placements {
		ip := &ecraev1.InstancePlacement{Name: items[k].Request.Name, Index: index[k], Tag: tags[k]}
		if p.Host < 0 {
			ip.Error = "no host can take this instance"
			out.Unplaced++
			for i, v := range p.Verdicts {
				if !v.Passed {
					ip.Rejected = append(ip.Rejected, &ecraev1.HostVerdict{Host: hosts[i].Name, Nodename: hosts[i].Nodename, Filter: v.Filter, Reason: v.Reason})
				}
			}
		} else {
			h := &hosts[p.Host]
			if notes != nil {
				appendNote(p.Components, notes[p.Host])
			}
			ip.Host, ip.Nodename, ip.Architecture = h.Name, h.Nodename, h.Model.Name
			ip.MarginalWatts, ip.Score, ip.Breakdown = p.MarginalWatts, p.Score, components(p.Components)
			for _, a := range p.Alternatives {
				ah := &hosts[a.Host]
				ip.Alternatives = append(ip.Alternatives, &ecraev1.Alternative{Host: ah.Name, Nodename: ah.Nodename, Score: a.Score, MarginalWatts: a.MarginalWatts, Architecture: ah.Model.Name})
			}
		}
		out.Placements = append(out.Placements, ip)
	}
	return out, nil
}

func (s *Server) weights(override map[string]float64) (map[string]float64, error) {
	if len(override) == 0 {
		return s.cfg.Weights, nil
	}
	w := make(map[string]float64, len(s.cfg.Weights))
	for k, v := range s.cfg.Weights {
		w[k] = v
	}
	for k, v := range override {
		w[k] = v
	}
	if err := optimizer.ValidateWeights(w); err != nil {
		return nil, invalid("scorer_weights", "%v", err)
	}
	return w, nil
}

func components(cs []optimizer.Component) []*ecraev1.ScoreComponent {
	out := make([]*ecraev1.ScoreComponent, len(cs))
	for i, c := range cs {
		out[i] = &ecraev1.ScoreComponent{Scorer: c.Scorer, Raw: c.Raw, Normalized: c.Normalized, Weight: c.Weight, Weighted: c.Weighted, Explanation: c.Explanation}
	}
	return out
}
