package server

import (
	"fmt"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/proto"
)

func TestChunkLiveHostsRoundTrip(t *testing.T) {
	view := func(perHost ...int) *ecraev1.ListLiveHostsResponse {
		r := &ecraev1.ListLiveHostsResponse{AppliedSeq: 7, Sources: "test"}
		for h, n := range perHost {
			lh := &ecraev1.LiveHost{Host: fmt.Sprint("h", h), Instances: int32(n), VcpusTotal: 8}
			for i := range n {
				lh.InstanceList = append(lh.InstanceList, &ecraev1.LiveInstance{Uuid: fmt.Sprint(h, "-", i)})
			}
			r.Hosts = append(r.Hosts, lh)
			r.Instances += int32(n)
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		perHost []int
		// Messages cut at 2 hosts and 3 instances each.
		wantMsgs int
		wantLen  []int // entries per message
	}{
		{"empty view", nil, 1, []int{0}},
		// [h0:1 h1:1] [h2:0]
		{"hosts bound", []int{1, 1, 0}, 2, []int{2, 1}},
		// [h0:2 h1:1] [h2:3] [h3:0]: the third instance fills the first.
		{"instances bound", []int{2, 1, 3, 0}, 3, []int{2, 1, 1}},
		// h0's 7 instances: [h0:3] [h0+:3] [h0+:1 h1:0]
		{"a host across messages", []int{7, 0}, 3, []int{1, 1, 2}},
		// [h0:3] [h1:3] [h2:0]
		{"exact fits", []int{3, 3, 0}, 3, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := view(tc.perHost...)
			want := proto.Clone(all)
			msgs := chunkLiveHosts(all, 2, 3)
			if len(msgs) != tc.wantMsgs {
				t.Fatalf("%d messages, want %d", len(msgs), tc.wantMsgs)
			}
			for i, m := range msgs {
				n := 0
				for _, h := range m.GetHosts() {
					n += len(h.GetInstanceList())
					if h.GetContinued() && (h.GetVcpusTotal() != 0 || h.GetInstances() != 0) {
						t.Errorf("message %d: continuation of %s carries more than instances", i, h.GetHost())
					}
				}
				if len(m.GetHosts()) > 2 || n > 3 || len(m.GetHosts()) != tc.wantLen[i] {
					t.Errorf("message %d: %d entries (want %d), %d instances (limit 3)", i, len(m.GetHosts()), tc.wantLen[i], n)
				}
				if (i == 0) != (m.GetSources() == "test") {
					t.Errorf("message %d: summary %q, want it in the first message only", i, m.GetSources())
				}
			}
			if got := MergeLiveHosts(msgs); !proto.Equal(got, want) {
				t.Fatalf("merged back:\n%v\nwant\n%v", got, want)
			}
		})
	}
}
