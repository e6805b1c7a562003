package server

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/proto"
)

// TestChunkLiveHostsRoundTrip cuts random views (hosts with 0 to 60
// instances of random sizes, a few far larger than the budget) into
// messages of a random budget, and checks that every message keeps to it
// but for a host and one instance, that only the first carries the summary,
// that continuations carry nothing but instances, and that merging gives
// the view back.
func TestChunkLiveHostsRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 8))
	for run := range 100 {
		all := &ecraev1.ListLiveHostsResponse{AppliedSeq: 7, Sources: "test"}
		biggest := 0 // the largest single host entry or instance
		for h := range rng.IntN(40) {
			lh := &ecraev1.LiveHost{Host: fmt.Sprint("h", h), VcpusTotal: 8, Note: strings.Repeat("n", rng.IntN(300))}
			for i := range rng.IntN(4) * rng.IntN(20) {
				in := &ecraev1.LiveInstance{Uuid: fmt.Sprint(h, "-", i), Name: strings.Repeat("x", rng.IntN(200))}
				if rng.IntN(50) == 0 {
					in.Name = strings.Repeat("y", 5000)
				}
				biggest = max(biggest, proto.Size(in)+entryOverhead)
				lh.InstanceList = append(lh.InstanceList, in)
			}
			lh.Instances = int32(len(lh.InstanceList))
			all.Instances += lh.Instances
			biggest = max(biggest, proto.Size(&ecraev1.LiveHost{Host: lh.Host, VcpusTotal: 8, Note: lh.Note, Instances: lh.Instances})+entryOverhead)
			all.Hosts = append(all.Hosts, lh)
		}
		budget := 200 + rng.IntN(4000)
		want := proto.Clone(all)
		msgs := chunkLiveHosts(all, budget)
		if len(msgs) == 0 {
			t.Fatalf("run %d: no message", run)
		}
		for i, m := range msgs {
			if n := proto.Size(m); n > budget+2*biggest {
				t.Errorf("run %d: message %d of %d bytes, budget %d, largest item %d", run, i, n, budget, biggest)
			}
			if (i == 0) != (m.GetSources() == "test") {
				t.Errorf("run %d: message %d: summary %q, want it in the first message only", run, i, m.GetSources())
			}
			for _, h := range m.GetHosts() {
				if h.GetContinued() && (h.GetVcpusTotal() != 0 || h.GetNote() != "" || len(h.GetInstanceList()) == 0) {
					t.Errorf("run %d: message %d: continuation of %s: %v", run, i, h.GetHost(), h)
				}
			}
		}
		if got := MergeLiveHosts(msgs); !proto.Equal(got, want) {
			t.Fatalf("run %d: merged back differs:\n%v\nwant\n%v", run, got, want)
		}
	}
}
