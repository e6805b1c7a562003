package server

import (
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
)

// streamMessageBytes is what one StreamLiveHosts message holds, about:
// a message passes it by at most a host and one of its instances, whose
// sizes the view's field bounds keep small. 1 MiB is far
// below any sane message limit and makes the stream's messages few
// (100,000 instances: about 15).
const streamMessageBytes = 1 << 20

// StreamLiveHosts answers `ecrae hosts` with the view cut into bounded
// messages (see the proto for how a long instance list continues).
func (s *Server) StreamLiveHosts(req *ecraev1.ListLiveHostsRequest, stream grpc.ServerStreamingServer[ecraev1.ListLiveHostsResponse]) error {
	all, err := s.ListLiveHosts(stream.Context(), req)
	if err != nil {
		return err
	}
	for _, m := range chunkLiveHosts(all, streamMessageBytes) {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// entryOverhead is a repeated entry's tag and length prefix, at most.
const entryOverhead = 1 + 5

// chunkLiveHosts cuts a full answer (which it takes apart) into messages
// of about maxBytes each; the first carries the summary. Always at least
// one message, so an empty view still says when it was taken.
func chunkLiveHosts(all *ecraev1.ListLiveHostsResponse, maxBytes int) []*ecraev1.ListLiveHostsResponse {
	cur := &ecraev1.ListLiveHostsResponse{
		AsOf: all.GetAsOf(), StaleAfter: all.GetStaleAfter(), AppliedSeq: all.GetAppliedSeq(),
		Instances: all.GetInstances(), Sources: all.GetSources(),
	}
	out := []*ecraev1.ListLiveHostsResponse{cur}
	room := maxBytes - cur.SizeVT() // what the current message may still take
	next := func() {
		cur = &ecraev1.ListLiveHostsResponse{}
		out = append(out, cur)
		room = maxBytes
	}
	for _, h := range all.GetHosts() {
		list := h.InstanceList
		h.InstanceList = nil
		if size := h.SizeVT() + entryOverhead; size > room && len(cur.Hosts) > 0 {
			next()
		}
		// The host with what fits of its instances, then continuation
		// entries with the rest. An entry alone in its message takes at
		// least one instance, so the cutting ends.
		entry, start := h, 0
		cur.Hosts = append(cur.Hosts, entry)
		room -= h.SizeVT() + entryOverhead
		for i, in := range list {
			size := in.SizeVT() + entryOverhead
			if size > room && (i > start || len(cur.Hosts) > 1) {
				entry.InstanceList = list[start:i:i]
				next()
				entry, start = &ecraev1.LiveHost{Host: h.GetHost(), Continued: true}, i
				cur.Hosts = append(cur.Hosts, entry)
				room -= entry.SizeVT() + entryOverhead
			}
			room -= size
		}
		entry.InstanceList = list[start:]
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
