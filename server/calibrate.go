package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/powerfit"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PowerSamples is what calibration needs of the live view: the running
// sums of each host's measured (utilisation, watts) samples.
type PowerSamples interface {
	PowerStats(host string) (powerfit.Stats, bool)
	PowerStatsHosts() []string
}

var _ PowerSamples = (*hostview.View)(nil)

// calibrationPrior is the weight of the scaled model at each point, in
// samples: it fixes the points no sample reaches and yields to a point a
// few dozen samples reach.
const calibrationPrior = 1

// DefaultCalibrationMinSamples is the fewest samples a fit needs by
// default (5 minutes at the agent's 10 s).
const DefaultCalibrationMinSamples = 30

// CalibratedPrefix names the architecture a host's fit is written to.
const CalibratedPrefix = "calibrated-"

// CalibrateHosts implements ecrae.v1.KnowledgeBaseService.
func (s *Server) CalibrateHosts(ctx context.Context, req *ecraev1.CalibrateHostsRequest) (*ecraev1.CalibrateHostsResponse, error) {
	ps, ok := s.cfg.Live.(PowerSamples)
	if !ok || s.cfg.Live == nil {
		return nil, status.Error(codes.FailedPrecondition, "no live host view: calibration needs the node agents' samples (ecrae serve with NATS)")
	}
	if req.GetAll() == (len(req.GetHosts()) > 0) {
		return nil, status.Error(codes.InvalidArgument, "hosts: name hosts or set all, not both nor neither")
	}
	minSamples := float64(req.GetMinSamples())
	switch {
	case req.GetMinSamples() < 0:
		return nil, status.Errorf(codes.InvalidArgument, "min_samples: %d, want ≥ 1", req.GetMinSamples())
	case minSamples == 0:
		minSamples = DefaultCalibrationMinSamples
	}
	kb, err := s.kb.Snapshot(ctx)
	if err != nil {
		return nil, kbError(err, "calibrate")
	}
	archs := make(map[string]kbstore.Architecture, len(kb.Architectures))
	for _, a := range kb.Architectures {
		archs[a.Name] = a
	}
	kbHosts := make(map[string]kbstore.Host, len(kb.Hosts))
	for _, h := range kb.Hosts {
		kbHosts[h.Name] = h
	}
	names := req.GetHosts()
	if req.GetAll() {
		names = ps.PowerStatsHosts()
	}
	resp := &ecraev1.CalibrateHostsResponse{}
	var write kbstore.KB
	for i, name := range names {
		if name == "" {
			return nil, status.Errorf(codes.InvalidArgument, "hosts[%d]: empty host name", i)
		}
		c := &ecraev1.HostCalibration{Host: name}
		resp.Hosts = append(resp.Hosts, c)
		h, inKB := kbHosts[name]
		if !inKB {
			c.Skipped = "not in the KB: map it to its model first (ecrae kb host set " + name + " --arch ARCH)"
			continue
		}
		a := archs[h.Architecture]
		c.Architecture, c.ModelWatts = a.Name, slices.Clone(a.PowerWatts)
		st, ok := ps.PowerStats(name)
		if !ok {
			c.Skipped = "no measured whole-node samples (a node agent publishing watts from ipmi or redfish, and utilisation, on ecrae.metrics." + name + "; RAPL covers CPU packages and DRAM only)"
			continue
		}
		c.Samples, c.MinUtilization, c.MaxUtilization = st.N, st.MinU, st.MaxU
		fit, err := powerfit.Fit(st, a.PowerWatts, calibrationPrior, minSamples)
		if err != nil {
			c.Skipped = err.Error()
			continue
		}
		c.FittedWatts, c.Support = fit.Watts[:], fit.Support[:]
		c.Scale, c.RmsModelWatts, c.RmsFittedWatts = fit.Scale, fit.RMSModel, fit.RMSFit
		if !req.GetWrite() {
			continue
		}
		cal := a
		cal.Name = CalibratedPrefix + name
		cal.PowerWatts = slices.Clone(fit.Watts[:])
		cal.Estimate = false
		cal.Source = fmt.Sprintf("ecrae kb calibrate: least-squares fit of %.0f measured samples (utilisation %.0f–%.0f %%) of host %s, over the curve of %s",
			st.N, 100*st.MinU, 100*st.MaxU, name, a.Name)
		h.Architecture = cal.Name
		write.Architectures = append(write.Architectures, cal)
		write.Hosts = append(write.Hosts, h)
		c.WrittenArchitecture = cal.Name
	}
	if req.GetWrite() && len(write.Hosts) > 0 {
		// One merge: every fit or none is stored.
		if err := s.kb.Import(ctx, &write, false); err != nil {
			for _, c := range resp.Hosts {
				c.WrittenArchitecture = ""
			}
			return nil, kbError(err, "calibrate")
		}
		resp.Written = true
		s.log.Info("power curves calibrated", "hosts", len(write.Hosts))
	}
	return resp, nil
}
