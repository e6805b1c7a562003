package server

import (
	"context"
	"fmt"
	"github.com/ecrae/ecrae/catalog"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// LiveView is what the server reads of the live host view.
type LiveView interface {
	// Snapshot is the current hosts; shared, never modified.
	Snapshot() *hostview.Snapshot
	Freshness(h *hostview.Host, now time.Time) hostview.Freshness
	Now() time.Time
	StaleAfter() time.Duration
	// Instances lists the instances of one host ("" = all).
	Instances(host string) []hostview.Instance
	// SnapshotWithInstances is Snapshot and Instances("") at one instant.
	SnapshotWithInstances() (*hostview.Snapshot, []hostview.Instance)
}

var _ LiveView = (*hostview.View)(nil)

// live applies the live view to hosts built from a request's HostStates:
// measured utilisation and power where fresh, the instance mix, staleness.
// notes[i], when notes is not nil, says what it did to host i ("" =
// nothing to say); it is nil when asked not to explain or when there is
// nothing to say at all.
//
// memo[i], when memo is not nil, is the held state hosts[i] was converted
// from (see stateCache.resolve): its host as enriched for the current
// snapshot, KB revision and freshness is reused rather than looked up and
// enriched again.
func (s *Server) live(c *catalog.Catalog, hosts []optimizer.Host, memo []*held, explain bool) (notes []string) {
	lv := s.cfg.Live
	if lv == nil {
		return nil
	}
	snap := lv.Snapshot()
	if len(snap.Hosts) == 0 {
		return nil
	}
	if s.baseline {
		memo = nil
	}
	now, load := lv.Now(), c.Load(s.cfg.DefaultTag)
	for i := range hosts {
		var e *held
		var cached *enriched
		if memo != nil {
			if e = memo[i]; e != nil {
				if en := e.live.Load(); en != nil && en.version == snap.Version && en.revision == c.Revision() {
					cached = en
				}
			}
		}
		if cached != nil && !explain && cached.index >= 0 && !now.Before(cached.at) && !now.After(cached.until) {
			// Its freshness cannot have changed: no need to read the
			// snapshot's host at all.
			hosts[i] = cached.host
			continue
		}
		var h *hostview.Host
		index := -1
		switch {
		case cached != nil && cached.index >= 0:
			index, h = cached.index, &snap.Hosts[cached.index]
		case cached == nil:
			if j, ok := snap.Index(hosts[i].Name, hosts[i].Nodename); ok {
				index, h = j, &snap.Hosts[j]
			}
		}
		if h == nil {
			if e != nil && cached == nil {
				e.live.Store(&enriched{version: snap.Version, revision: c.Revision(), index: -1})
			}
			continue
		}
		fr := lv.Freshness(h, now)
		if cached != nil && !explain && cached.fresh == freshKeyOf(fr) {
			hosts[i] = cached.host
			continue
		}
		n := hostview.Enrich(&hosts[i], h, fr, load)
		if e != nil {
			e.live.Store(&enriched{version: snap.Version, revision: c.Revision(), index: index, fresh: freshKeyOf(fr),
				at: now, until: freshUntil(h, now, lv.StaleAfter()), host: hosts[i]})
		}
		if !explain {
			continue
		}
		if text := n.String(); text != "" {
			if notes == nil {
				notes = make([]string, len(hosts))
			}
			notes[i] = text
		}
	}
	return notes
}

// freshUntil is the last instant up to which h's freshness (its freshKey)
// stays what it is at now, going forward: the next deadline after now of its
// last report and its measurements, each stale once older than limit (see
// hostview.View.Freshness).
func freshUntil(h *hostview.Host, now time.Time, limit time.Duration) time.Time {
	until := time.Unix(1<<62, 0) // no deadline ahead
	for _, at := range [...]time.Time{h.LastSeen, h.CPU.At, h.Utilization.At, h.Watts.At} {
		if at.IsZero() {
			continue
		}
		if d := at.Add(limit); !d.Before(now) && d.Before(until) {
			until = d
		}
	}
	return until
}

// appendNote adds a live-view note to the energy scorer's explanation (the
// one about power), or to the first component when energy is disabled.
func appendNote(comps []optimizer.Component, note string) {
	if note == "" || len(comps) == 0 {
		return
	}
	k := 0
	for j := range comps {
		if comps[j].Scorer == optimizer.ScorerEnergy {
			k = j
			break
		}
	}
	comps[k].Explanation += "; " + note
}

// liveHosts is what WhatIf places on when the request names no hosts: the
// hosts of the live view Nova could schedule to, sized by Placement (or by
// their KB architecture when the service runs on events alone).
func (s *Server) liveHosts(c *catalog.Catalog) (hosts []optimizer.Host, notes []string, source string) {
	lv := s.cfg.Live
	if lv == nil {
		return nil, nil, ""
	}
	snap := lv.Snapshot()
	now, load := lv.Now(), c.Load(s.cfg.DefaultTag)
	var fromPlacement, fromKB, stale, unsized int
	for i := range snap.Hosts {
		h := &snap.Hosts[i]
		if !h.Compute || !h.Service.Placeable() {
			continue
		}
		if !h.Capacity.Known() && c.HostModel(h.Name) == nil && c.HostModel(h.Nodename) == nil {
			unsized++ // no Placement inventory and no KB entry: its size is unknown
			continue
		}
		oh := hostview.Base(h, c.ModelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved))
		n := hostview.Enrich(&oh, h, lv.Freshness(h, now), load)
		if h.Capacity.Known() {
			fromPlacement++
		} else {
			fromKB++
		}
		if n.Stale {
			stale++
		}
		hosts = append(hosts, oh)
		notes = append(notes, n.String())
	}
	source = fmt.Sprintf("live view (%d hosts: %d sized by Placement, %d by their KB architecture; %d stale", len(hosts), fromPlacement, fromKB, stale)
	if unsized > 0 {
		source += fmt.Sprintf("; %d left out, neither in Placement nor in the KB", unsized)
	}
	return hosts, notes, source + ")"
}

// ListLiveHosts answers `ecrae hosts`.
func (s *Server) ListLiveHosts(ctx context.Context, req *ecraev1.ListLiveHostsRequest) (*ecraev1.ListLiveHostsResponse, error) {
	lv := s.cfg.Live
	if lv == nil {
		return nil, status.Error(codes.FailedPrecondition, "this service runs without a live host view")
	}
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	// One instant: a host's counts and the instance list must agree.
	snap, all := lv.SnapshotWithInstances()
	now, load := lv.Now(), c.Load(s.cfg.DefaultTag)
	out := &ecraev1.ListLiveHostsResponse{
		AsOf: timestamppb.New(now), StaleAfter: durationpb.New(lv.StaleAfter()),
		AppliedSeq: snap.AppliedSeq, Sources: s.cfg.LiveSources,
	}
	var byHost map[string][]hostview.Instance
	out.Instances = int32(len(all))
	if req.GetIncludeInstances() {
		byHost = map[string][]hostview.Instance{}
		for _, i := range all {
			byHost[i.Host] = append(byHost[i.Host], i)
		}
	}
	for i := range snap.Hosts {
		h := &snap.Hosts[i]
		m := c.ModelFor(h.Name, h.Nodename, h.ISA, h.Capacity.VCPUs-h.Capacity.VCPUsReserved)
		// Neither Placement nor the KB sizes it: no model to estimate
		// with, only what was measured.
		unsized := !h.Capacity.Known() && c.HostModel(h.Name) == nil && c.HostModel(h.Nodename) == nil
		oh := hostview.Base(h, m)
		if unsized {
			oh.Model = nil
		}
		fr := lv.Freshness(h, now)
		n := hostview.Enrich(&oh, h, fr, load)
		u, measured := oh.CurrentUtilization()
		isa := h.ISA
		if isa == "" && !m.Default {
			isa = m.ISA
		}
		lh := &ecraev1.LiveHost{
			Host: h.Name, Nodename: h.Nodename, Uuid: h.UUID, Isa: isa,
			Architecture: m.Name, DefaultModel: m.Default, ServiceState: string(h.Service), DisabledReason: h.DisabledReason,
			CapacitySource: "model", Instances: int32(h.Instances),
			VcpusUsed: int32(h.Usage.VCPUs), VcpusTotal: int32(oh.VCPUsTotal), CpuAllocationRatio: oh.CPURatio,
			MemoryMbUsed: h.Usage.MemoryMB, MemoryMbTotal: oh.TotalRAMMB,
			DiskGbUsed: h.Usage.DiskGB, DiskGbTotal: oh.TotalDiskGB,
			Utilization: u, UtilizationSource: n.UtilSource,
			ModelWatts: m.Curve.Watts(u), Stale: fr.Stale, Note: n.String(), Compute: h.Compute,
		}
		if lh.ServiceState == "" {
			lh.ServiceState = "unknown"
		}
		switch {
		case h.Capacity.Known():
			lh.CapacitySource = "placement"
		case unsized:
			// Say so rather than show a one-thread default model's numbers.
			lh.CapacitySource, lh.Architecture, lh.DefaultModel = "unknown", "", false
			lh.VcpusTotal, lh.MemoryMbTotal, lh.DiskGbTotal, lh.ModelWatts = 0, 0, 0, 0
		}
		switch {
		case lh.UtilizationSource != "":
		case unsized && !measured:
			lh.Utilization, lh.UtilizationSource = 0, "unknown"
		default:
			lh.UtilizationSource = "estimate"
		}
		if fr.Demand {
			d := h.Demand.Value
			lh.CpuDemand = &d
		}
		lh.Watts = lh.ModelWatts
		if oh.MeasuredWatts > 0 {
			lh.Watts, lh.WattsMeasured = oh.MeasuredWatts, true
		}
		if !h.LastSeen.IsZero() {
			lh.LastSeen = timestamppb.New(h.LastSeen)
		}
		for _, in := range byHost[h.Name] {
			lh.InstanceList = append(lh.InstanceList, liveInstance(in))
		}
		out.Hosts = append(out.Hosts, lh)
	}
	return out, nil
}

func liveInstance(in hostview.Instance) *ecraev1.LiveInstance {
	li := &ecraev1.LiveInstance{
		Uuid: in.UUID, Name: in.Name, ProjectId: in.Project, Flavor: in.Flavor.Name,
		Vcpus: int32(in.Flavor.VCPUs), MemoryMb: in.Flavor.MemoryMB, DiskGb: in.Flavor.DiskGB(),
		Tag: in.Tag, State: in.State, PowerState: in.PowerState, Kind: "vm",
	}
	if in.Kind != "" {
		li.Kind = in.Kind
	}
	if !in.Updated.IsZero() {
		li.Updated = timestamppb.New(in.Updated)
	}
	return li
}
