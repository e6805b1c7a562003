package server

import (
	"context"

	"github.com/ecrae/ecrae/hostview"
)

// ModelMaxWatts is the most power h's model draws (the top of its curve):
// node samples above twice that are refused by the host view's ingestion.
// It is false when the host has no model worth the name (neither the KB
// nor Placement sizes it) or the KB cannot be read: such samples are not
// bounded.
func (s *Server) ModelMaxWatts(ctx context.Context, h *hostview.Host) (float64, bool) {
	c, err := s.catalog(ctx)
	if err != nil {
		return 0, false
	}
	if !h.Capacity.Known() && c.HostModel(h.Name) == nil && c.HostModel(h.Nodename) == nil {
		return 0, false
	}
	m := c.ModelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved)
	top := 0.0
	for _, w := range m.Curve {
		top = max(top, w)
	}
	return top, top > 0
}
