package server

import (
	"unicode/utf8"

	"github.com/ecrae/ecrae/catalog"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// Limits on a request's server group, far above any real group.
const (
	maxGroupHosts     = 10000
	maxGroupHostBytes = 255
)

// instanceFinder is the part of the live view a move needs: where the
// instance runs now. hostview.View has it.
type instanceFinder interface {
	Instance(uuid string) (hostview.Instance, bool)
}

var _ instanceFinder = (*hostview.View)(nil)

// moveRules adds to req what the one rule set needs beyond the instance's
// size: its server group, and for a move how its hint may be relaxed,
// judged against the cluster (optimizer.MoveRelax): Nova's call for a live
// migration may hold the one requested host, and a hint relaxed within
// that call would let the instance leave its candidates.
func (s *Server) moveRules(c *catalog.Catalog, ir *ecraev1.InstanceRequest, field string, req *optimizer.Request, prof optimizer.Profile) error {
	switch p := ir.GetGroupPolicy(); p {
	case "", "soft-affinity", "soft-anti-affinity":
		// Soft policies are Nova weighers' business, not rules.
	case "affinity":
		req.Group.Policy = optimizer.PolicyAffinity
	case "anti-affinity":
		req.Group.Policy = optimizer.PolicyAntiAffinity
	default:
		return invalid(field+".group_policy", "want affinity, anti-affinity, soft-affinity or soft-anti-affinity, got %q", clipRuleValue(p))
	}
	hosts := ir.GetGroupHosts()
	if len(hosts) > maxGroupHosts {
		return invalid(field+".group_hosts", "%d hosts exceed the limit of %d", len(hosts), maxGroupHosts)
	}
	for _, h := range hosts {
		if len(h) > maxGroupHostBytes {
			return invalid(field+".group_hosts", "a host name is longer than %d bytes: %q", maxGroupHostBytes, clipRuleValue(h))
		}
	}
	if req.Group.Policy != optimizer.PolicyNone {
		req.Group.Hosts = hosts
	}
	if !ir.GetMove() {
		return nil
	}
	req.Relax = optimizer.RelaxNever // without a live view, never relax a move
	if len(prof.Candidates) == 0 || prof.Mode == optimizer.ModeExact {
		return nil
	}
	all, _, _ := s.liveHosts(c)
	if len(all) == 0 {
		return nil
	}
	var from *optimizer.Host
	if f, ok := s.cfg.Live.(instanceFinder); ok && ir.GetInstanceUuid() != "" {
		if in, ok := f.Instance(ir.GetInstanceUuid()); ok && in.Host != "" {
			if h, ok := s.cfg.Live.Snapshot().Lookup(in.Host, in.Node); ok {
				oh := hostview.Base(h, c.ModelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved))
				from = &oh
			}
		}
	}
	req.Relax = optimizer.MoveRelax(*req, prof, from, all)
	return nil
}

// clipRuleValue keeps at most 100 bytes of a bad value for an error message, cut at
// a rune boundary.
func clipRuleValue(s string) string {
	if len(s) <= 100 {
		return s
	}
	n := 100
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
