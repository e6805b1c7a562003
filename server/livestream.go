package server

import (
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
)

// The bounds of one StreamLiveHosts message. A LiveInstance is about 150
// bytes and a LiveHost about 400, so a message stays under 1 MiB, far
// below any sane message limit, whatever the size of the view.
const (
	streamHostsPerMessage     = 500
	streamInstancesPerMessage = 2000
)

// StreamLiveHosts answers `ecrae hosts` with the view cut into bounded
// messages (see the proto for how a long instance list continues).
func (s *Server) StreamLiveHosts(req *ecraev1.ListLiveHostsRequest, stream grpc.ServerStreamingServer[ecraev1.ListLiveHostsResponse]) error {
	all, err := s.ListLiveHosts(stream.Context(), req)
	if err != nil {
		return err
	}
	for _, m := range chunkLiveHosts(all, streamHostsPerMessage, streamInstancesPerMessage) {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// chunkLiveHosts cuts a full answer into messages of at most maxHosts
// entries and maxInstances instances; the first carries the summary.
// Always at least one message, so an empty view still says when it was
// taken.
func chunkLiveHosts(all *ecraev1.ListLiveHostsResponse, maxHosts, maxInstances int) []*ecraev1.ListLiveHostsResponse {
	cur := &ecraev1.ListLiveHostsResponse{
		AsOf: all.GetAsOf(), StaleAfter: all.GetStaleAfter(), AppliedSeq: all.GetAppliedSeq(),
		Instances: all.GetInstances(), Sources: all.GetSources(),
	}
	out := []*ecraev1.ListLiveHostsResponse{cur}
	room := maxInstances // instances the current message may still take
	next := func() {
		cur = &ecraev1.ListLiveHostsResponse{}
		out = append(out, cur)
		room = maxInstances
	}
	for _, h := range all.GetHosts() {
		if len(cur.Hosts) >= maxHosts || room == 0 {
			next()
		}
		list := h.InstanceList
		// The host itself with what fits of its instances, then
		// continuation entries with the rest.
		entry := h
		for {
			n := min(len(list), room)
			entry.InstanceList = list[:n:n]
			cur.Hosts = append(cur.Hosts, entry)
			room -= n
			list = list[n:]
			if len(list) == 0 {
				break
			}
			next()
			entry = &ecraev1.LiveHost{Host: h.GetHost(), Continued: true}
		}
	}
	return out
}

// MergeLiveHosts puts a StreamLiveHosts answer back together as the
// ListLiveHosts answer it was cut from.
func MergeLiveHosts(msgs []*ecraev1.ListLiveHostsResponse) *ecraev1.ListLiveHostsResponse {
	if len(msgs) == 0 {
		return &ecraev1.ListLiveHostsResponse{}
	}
	first := msgs[0]
	out := &ecraev1.ListLiveHostsResponse{
		AsOf: first.GetAsOf(), StaleAfter: first.GetStaleAfter(), AppliedSeq: first.GetAppliedSeq(),
		Instances: first.GetInstances(), Sources: first.GetSources(),
	}
	for _, m := range msgs {
		for _, h := range m.GetHosts() {
			if h.GetContinued() && len(out.Hosts) > 0 && out.Hosts[len(out.Hosts)-1].GetHost() == h.GetHost() {
				last := out.Hosts[len(out.Hosts)-1]
				last.InstanceList = append(last.InstanceList, h.GetInstanceList()...)
				continue
			}
			out.Hosts = append(out.Hosts, h)
		}
	}
	return out
}
