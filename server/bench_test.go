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

// BenchmarkWeighHosts measures one Nova weigher pass over gRPC on a loopback
// TCP listener, against the default KB on a real bbolt file. It reports the
// p99 of the calls besides the mean. quiet/ is the shim's call, which leaves
// the explanation text out. Client and server share this process (and its
// collector setting); in production the client is the Python shim.
func BenchmarkWeighHosts(b *testing.B) {
	// The collector as `ecrae serve` sets it (its --gc-percent default).
	defer debug.SetGCPercent(debug.SetGCPercent(DefaultGCPercent))
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
	g := grpc.NewServer(grpc.ForceServerCodec(Codec{}))
	srv.Register(g)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.ForceCodec(Codec{})))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := ecraev1.NewPlacementServiceClient(conn)
	inst := &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "bench", Vcpus: 2, MemoryMb: 4096, RootGb: 20}}
	for _, bc := range []struct {
		name  string
		n     int
		quiet bool
	}{{"hosts=100", 100, false}, {"hosts=1000", 1000, false}, {"hosts=10000", 10000, false}, {"quiet/hosts=1000", 1000, true}} {
		n := bc.n
		b.Run(bc.name, func(b *testing.B) {
			req := &ecraev1.WeighHostsRequest{Instance: inst, Hosts: benchHosts(n), OmitExplanations: bc.quiet}
			resp, err := client.WeighHosts(ctx, req)
			if err != nil || len(resp.GetScores()) != n || len(resp.GetScores()[0].GetBreakdown()) == 0 || (resp.GetScores()[0].GetBreakdown()[0].GetExplanation() == "") != bc.quiet {
				b.Fatalf("warm-up call: %v (%d scores)", err, len(resp.GetScores()))
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if _, err := client.WeighHosts(ctx, req); err != nil {
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
