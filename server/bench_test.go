package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// benchHosts makes n Nova host states over the default KB's models and two
// unknown ISAs' defaults, with varied load.
func benchHosts(n int) []*ecraev1.HostState {
	arches := []string{"x86_64", "aarch64", "x86_64", "ppc64le"}
	hosts := make([]*ecraev1.HostState, n)
	for i := range hosts {
		used := int32(i % 60)
		hosts[i] = &ecraev1.HostState{
			Host: fmt.Sprintf("compute-%05d", i), Nodename: fmt.Sprintf("compute-%05d", i),
			VcpusTotal: 64, VcpusUsed: used, CpuAllocationRatio: 4,
			TotalUsableRamMb: 262144, FreeRamMb: 262144 - int64(used)*2048, RamAllocationRatio: 1,
			TotalUsableDiskGb: 2000, FreeDiskMb: (2000 - int64(used)*20) * 1024, DiskAllocationRatio: 1,
			CpuInfo: `{"arch": "` + arches[i%len(arches)] + `", "model": "bench", "vendor": "bench", "topology": {"cores": 32, "threads": 2, "sockets": 1}}`,
			Metrics: map[string]float64{"cpu.percent": float64(i % 90)}, NumInstances: used / 2,
		}
	}
	return hosts
}

// BenchmarkPlacementCalls measures Nova's filter and weigher passes over
// gRPC on a loopback TCP listener, against the default KB on a real bbolt
// file, and reports the p99 of the calls besides the mean:
//   - weigh/hosts=N: the full breakdown, as the CLI and tools ask for it;
//   - weigh-quiet/hosts=1000: the numbers without the explanation text;
//   - weigh-scores/hosts=1000 and filter-flags/hosts=1000: what Nova's shim
//     asks for (scores_only, passed_only);
//   - ...-refs/hosts=1000: the same once the service holds the states, as
//     the shim sends them from its second call on (state_ref).
//
// Client and server share this process (and its collector setting); in
// production the client is the Python shim (see nova-shim/bench).
func BenchmarkPlacementCalls(b *testing.B) {
	// The collector as `ecrae serve` sets it (its --gc-percent and
	// --memory-limit defaults).
	defer debug.SetGCPercent(debug.SetGCPercent(DefaultGCPercent))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(DefaultMemoryLimit))
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(b.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	if _, err := store.SeedDefault(ctx); err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{}, store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(Codec{}))
	srv.Register(g)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.ForceCodecV2(Codec{})))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := ecraev1.NewPlacementServiceClient(conn)
	inst := &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "bench", Vcpus: 2, MemoryMb: 4096, RootGb: 20}}

	// Each call returns how many answers it got and whether they have the
	// form asked for.
	weigh := func(n int, quiet, scoresOnly bool) func() (bool, error) {
		req := &ecraev1.WeighHostsRequest{Instance: inst, Hosts: benchHosts(n), OmitExplanations: quiet, ScoresOnly: scoresOnly}
		return func() (bool, error) {
			resp, err := client.WeighHosts(ctx, req)
			if scoresOnly {
				return len(resp.GetScoreValues()) == n && len(resp.GetScores()) == 0, err
			}
			s := resp.GetScores()
			return len(s) == n && len(s[0].GetBreakdown()) > 0 && (s[0].GetBreakdown()[0].GetExplanation() == "") == quiet, err
		}
	}
	filter := func(n int) func() (bool, error) {
		req := &ecraev1.FilterHostsRequest{Instance: inst, Hosts: benchHosts(n), PassedOnly: true}
		return func() (bool, error) {
			resp, err := client.FilterHosts(ctx, req)
			return len(resp.GetPassed()) == n && len(resp.GetVerdicts()) == 0, err
		}
	}
	// The shim's calls once the service holds the states: the first call
	// sends them with their digests, every later one refers to them.
	byRef := func(n int, call func([]*ecraev1.HostState) (int, error)) func() (bool, error) {
		hosts := benchHosts(n)
		refs := make([]*ecraev1.HostState, n)
		for i, h := range hosts {
			h.StateDigest = uint64(i + 1)
			refs[i] = &ecraev1.HostState{Host: h.GetHost(), Nodename: h.GetNodename(), StateRef: h.GetStateDigest()}
		}
		sent := false
		return func() (bool, error) {
			if !sent {
				sent = true
				got, err := call(hosts)
				return got == n, err
			}
			got, err := call(refs)
			return got == n, err
		}
	}
	filterRefs := byRef(1000, func(hosts []*ecraev1.HostState) (int, error) {
		resp, err := client.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: inst, Hosts: hosts, PassedOnly: true})
		return len(resp.GetPassed()), err
	})
	weighRefs := byRef(1000, func(hosts []*ecraev1.HostState) (int, error) {
		resp, err := client.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: inst, Hosts: hosts, ScoresOnly: true})
		return len(resp.GetScoreValues()), err
	})
	for _, bc := range []struct {
		name string
		call func() (bool, error)
	}{
		{"weigh/hosts=100", weigh(100, false, false)},
		{"weigh/hosts=1000", weigh(1000, false, false)},
		{"weigh/hosts=10000", weigh(10000, false, false)},
		{"weigh-quiet/hosts=1000", weigh(1000, true, false)},
		{"weigh-scores/hosts=1000", weigh(1000, false, true)},
		{"filter-flags/hosts=1000", filter(1000)},
		{"weigh-scores-refs/hosts=1000", weighRefs},
		{"filter-flags-refs/hosts=1000", filterRefs},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// A service runs warm: its heap has grown to the collector's
			// target before these calls (the first calls of a 10,000-host
			// case would otherwise fault in a few hundred MB afresh).
			for range 10 {
				if ok, err := bc.call(); err != nil || !ok {
					b.Fatalf("warm-up call: %v (answer complete and in the form asked: %v)", err, ok)
				}
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if _, err := bc.call(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e6, "p99-ms")
		})
	}
}
