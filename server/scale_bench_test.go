package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/memlimit"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// encoded is a request marshalled once: the benchmark's client sends the
// same bytes every time, so the CPU measured is the service's (and gRPC's),
// not the test's encoding.
type encoded []byte

// benchClientCodec passes encoded requests through and decodes answers as
// the service's codec does.
type benchClientCodec struct{ Codec }

func (c benchClientCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(*e)}, nil
	}
	return c.Codec.Marshal(v)
}

// scaleView is a live view of n hosts named as benchHosts names them, with
// perHost instances each (10 vCPUs' worth of 1- and 2-vCPU flavors, two tags).
func scaleView(n, perHost int) *hostview.View {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for j := range n {
		name := fmt.Sprintf("compute-%05d", j)
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: name, Nodename: name, ISA: "x86_64", State: "up",
			Capacity: hostview.Capacity{VCPUs: 64, CPURatio: 4, MemoryMB: 262144, RAMRatio: 1, DiskGB: 2000, DiskRatio: 1}})
		for i := range perHost {
			tag := []string{"", "web-frontend"}[i%2]
			inv.Instances = append(inv.Instances, hostview.Instance{UUID: fmt.Sprintf("i-%05d-%03d", j, i), Name: fmt.Sprintf("vm-%05d-%03d", j, i),
				Host: name, Node: name, State: "active", PowerState: "running", Tag: tag,
				Flavor: hostview.Flavor{Name: "f", VCPUs: 1 + i%2, MemoryMB: 2048, RootGB: 10}})
		}
	}
	view.Reconcile(inv)
	return view
}

// BenchmarkPlacementScale is issue 15's placement path: one Nova pass
// (FilterHosts passed_only + WeighHosts scores_only, as the shim asks) over
// 10,000 hosts sent as references, by 1, 4 and 16 concurrent clients,
// with an empty live view or one of 10,000 hosts and 100,000 instances.
//
//   - path=before is the code before issue 15, callable here: the generated
//     decoder (one message per reference), references resolved under the
//     state cache's exclusive lock, the live view applied to every host on
//     every call, the fixed 1 GiB memory limit;
//   - path=after is the service as `ecrae serve` runs it now: references
//     decoded once per digest, resolved under a read lock, enrichment cached
//     per view revision, the limit derived from the live heap.
//
// cpu-ms/pass is the process's CPU time (user+system, getrusage) per pass:
// client and service share the process, but the client sends pre-encoded
// bytes, so nearly all of it is the service and gRPC. passes/s is wall-clock
// throughput. Compare before and after within one run: the machine is shared.
func BenchmarkPlacementScale(b *testing.B) {
	const hosts = 10000
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
	views := map[string]func() LiveView{
		"view=empty":          func() LiveView { return hostview.New(hostview.Options{StaleAfter: time.Hour}) },
		"view=100k-instances": func() LiveView { return scaleView(hosts, 10) },
	}
	for _, vname := range []string{"view=empty", "view=100k-instances"} {
		view := views[vname]()
		for _, path := range []string{"before", "after"} {
			srv, err := New(Config{Live: view}, store, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			codec := NewCodec()
			if path == "before" {
				codec = Codec{}
				srv.baseline = true
			}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			g := grpc.NewServer(append(codec.ServerOptions(), grpc.MaxRecvMsgSize(64<<20))...)
			srv.Register(g)
			go g.Serve(lis)
			// The client's buffers are not zeroed either: its share of the
			// CPU measured is the same for both paths, and kept small.
			conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), experimental.WithBufferPool(newDirtyPool()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20), grpc.ForceCodecV2(benchClientCodec{})))
			if err != nil {
				b.Fatal(err)
			}
			pass := scalePass(b, conn, hosts, path == "after")
			for _, clients := range []int{1, 4, 16} {
				b.Run(fmt.Sprintf("%s/path=%s/clients=%d", vname, path, clients), func(b *testing.B) {
					debug.SetMemoryLimit(DefaultMemoryLimit)
					runtime.GC()
					if path == "after" {
						(&memlimit.Controller{Floor: memlimit.DefaultFloor, Factor: memlimit.DefaultFactor}).Apply()
					}
					for range 3 { // warm: the heap grows to its target first
						if err := pass(); err != nil {
							b.Fatal(err)
						}
					}
					cpu0 := cpuTime()
					b.ResetTimer()
					start := time.Now()
					var wg sync.WaitGroup
					errs := make(chan error, clients)
					for k := range clients {
						wg.Go(func() {
							for i := k; i < b.N; i += clients {
								if err := pass(); err != nil {
									errs <- err
									return
								}
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					close(errs)
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(cpuTime()-cpu0)/1e6/float64(b.N), "cpu-ms/pass")
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "passes/s")
				})
			}
			conn.Close()
			g.Stop()
		}
	}
}

// scalePass returns one shim pass by reference over n hosts, after a first
// call has sent the full states; it checks every answer is complete. The
// references are packed (host_refs) or, as before, one HostState each.
func scalePass(b *testing.B, conn *grpc.ClientConn, n int, packed bool) func() error {
	full := benchHosts(n)
	refs := make([]*ecraev1.HostState, n)
	var hostRefs []byte
	for i, h := range full {
		h.StateDigest = uint64(i + 1)
		refs[i] = &ecraev1.HostState{Host: h.GetHost(), Nodename: h.GetNodename(), StateRef: h.GetStateDigest()}
		hostRefs = appendPacked(hostRefs, h.GetStateDigest(), h.GetHost(), h.GetNodename())
	}
	if packed {
		refs = nil
	}
	inst := &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "bench", Vcpus: 2, MemoryMb: 4096, RootGb: 20}}
	enc := func(m proto.Message) *encoded {
		e, err := proto.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		return (*encoded)(&e)
	}
	ctx := context.Background()
	filter := func(req *encoded) error {
		out := &ecraev1.FilterHostsResponse{}
		if err := conn.Invoke(ctx, ecraev1.PlacementService_FilterHosts_FullMethodName, req, out); err != nil {
			return err
		}
		if len(out.GetPassed()) != n {
			return fmt.Errorf("filter: %d answers for %d hosts", len(out.GetPassed()), n)
		}
		return nil
	}
	weigh := func(req *encoded) error {
		out := &ecraev1.WeighHostsResponse{}
		if err := conn.Invoke(ctx, ecraev1.PlacementService_WeighHosts_FullMethodName, req, out); err != nil {
			return err
		}
		if len(out.GetScoreValues()) != n {
			return fmt.Errorf("weigh: %d answers for %d hosts", len(out.GetScoreValues()), n)
		}
		return nil
	}
	if err := filter(enc(&ecraev1.FilterHostsRequest{Instance: inst, Hosts: full, PassedOnly: true})); err != nil {
		b.Fatal(err)
	}
	if !packed {
		hostRefs = nil
	}
	f := enc(&ecraev1.FilterHostsRequest{Instance: inst, Hosts: refs, HostRefs: hostRefs, PassedOnly: true})
	w := enc(&ecraev1.WeighHostsRequest{Instance: inst, Hosts: refs, HostRefs: hostRefs, ScoresOnly: true})
	return func() error {
		if err := filter(f); err != nil {
			return err
		}
		return weigh(w)
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
