package server

import (
	"context"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkFilterHostsLibvirt sends Nova's filter pass for 10,000 hosts
// with libvirt's real cpu_info over real gRPC (loopback TCP, the default
// message limit) and reports the request's size besides the time per call.
func BenchmarkFilterHostsLibvirt(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(DefaultGCPercent))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(DefaultMemoryLimit))
	client := ecraev1.NewPlacementServiceClient(serveTCP(b, DefaultMaxMessage))
	ctx := context.Background()
	for _, passedOnly := range []bool{true, false} {
		name := "flags/hosts=10000"
		if !passedOnly {
			name = "verdicts/hosts=10000"
		}
		req := &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: libvirtHosts(b, 10000), PassedOnly: passedOnly}
		b.Run(name, func(b *testing.B) {
			call := func() error {
				resp, err := client.FilterHosts(ctx, req)
				if err == nil && len(resp.GetPassed())+len(resp.GetVerdicts()) != 10000 {
					b.Fatalf("%d answers for 10,000 hosts", len(resp.GetPassed())+len(resp.GetVerdicts()))
				}
				return err
			}
			for range 3 {
				if err := call(); err != nil {
					b.Fatalf("warm-up call: %v", err)
				}
			}
			lat := make([]time.Duration, 0, 64)
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				if err := call(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(proto.Size(req)), "req-bytes")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e6, "p99-ms")
		})
	}
}
