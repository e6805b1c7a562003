package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// serveTCP serves testKB over real gRPC on a loopback listener with a
// message limit of max bytes (`ecrae serve --grpc-max-message`), and dials
// it with the default limit (the CLI's and the shim's).
func serveTCP(t testing.TB, max int) *grpc.ClientConn {
	t.Helper()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("testKB", []byte(testKB))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(context.Background(), kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(append(MessageLimitOptions(max), grpc.ForceServerCodecV2(Codec{}))...)
	srv.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(append(MessageLimitCallOptions(DefaultMaxMessage), grpc.ForceCodecV2(Codec{}))...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		store.Close()
	})
	return conn
}

// TestHugeBadValuesGetAShortInvalidArgument sends a 1 MiB bad value in
// each field that is echoed in an error: the answer must be the error the
// field earned, naming it, quoting at most 100 bytes of the value. (Echoed
// whole, the message no longer fits in gRPC's status trailer and the call
// fails with INTERNAL: RST_STREAM.)
func TestHugeBadValuesGetAShortInvalidArgument(t *testing.T) {
	conn := serveTCP(t, DefaultMaxMessage)
	place, kb := ecraev1.NewPlacementServiceClient(conn), ecraev1.NewKnowledgeBaseServiceClient(conn)
	ctx := context.Background()
	huge := strings.Repeat("x", 1<<20)
	hosts := func() []*ecraev1.HostState { return []*ecraev1.HostState{novaHost("h-old", "x86_64", 1, 1)} }
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"tag", func() error {
			_, err := place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: &ecraev1.InstanceRequest{Tag: huge, Flavor: small("").GetFlavor()}, Hosts: hosts()})
			return err
		}, codes.InvalidArgument, "instance.tag: unknown tag"},
		{"flavor name", func() error {
			_, err := place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: huge}}, Hosts: hosts()})
			return err
		}, codes.InvalidArgument, "instance.flavor.name: unknown flavor"},
		{"metric name", func() error {
			hs := hosts()
			hs[0].Metrics = map[string]float64{huge: math.NaN()}
			_, err := place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: hs})
			return err
		}, codes.InvalidArgument, "hosts[0].metrics["},
		{"KB tag candidate", func() error {
			_, err := kb.CreateTag(ctx, &ecraev1.CreateTagRequest{Tag: &ecraev1.Tag{Name: "t", Candidates: []*ecraev1.Candidate{{Architecture: huge, PerformanceFactor: 1}}}})
			return err
		}, codes.InvalidArgument, "candidates[0].architecture"},
		{"KB tag lookup", func() error {
			_, err := kb.GetTag(ctx, &ecraev1.GetTagRequest{Name: huge})
			return err
		}, codes.NotFound, "tag "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			msg := st.Message()
			// The field, at most 100 quoted bytes (with \x escapes at most
			// 400), the length, and the rest of the sentence.
			if len(msg) > 600 || !strings.Contains(msg, tc.field) || !strings.Contains(msg, "…(") {
				t.Fatalf("message of %d bytes, want at most 600 naming %q with the value cut: %.700s", len(msg), tc.field, msg)
			}
		})
	}
}

// libvirtHosts are n Nova host states whose cpu_info is what Nova's
// libvirt driver reports for a recent server CPU (testdata: the JSON
// LibvirtDriver._get_cpu_info gives, serialised by Nova's jsonutils, with
// 106 features).
func libvirtHosts(t testing.TB, n int) []*ecraev1.HostState {
	t.Helper()
	info, err := os.ReadFile("testdata/libvirt_cpu_info.json")
	if err != nil {
		t.Fatal(err)
	}
	hosts := make([]*ecraev1.HostState, n)
	for i := range hosts {
		used := int32(i % 60)
		hosts[i] = &ecraev1.HostState{
			Host: fmt.Sprintf("compute-%05d.cloud.example.org", i), Nodename: fmt.Sprintf("compute-%05d.cloud.example.org", i),
			VcpusTotal: 128, VcpusUsed: used, CpuAllocationRatio: 4,
			TotalUsableRamMb: 515072, FreeRamMb: 515072 - int64(used)*2048, RamAllocationRatio: 1,
			TotalUsableDiskGb: 3500, FreeDiskMb: (3500 - int64(used)*20) * 1024, DiskAllocationRatio: 1,
			CpuInfo: strings.TrimSpace(string(info)), NumInstances: used / 2,
			Metrics: map[string]float64{"cpu.percent": float64(i % 90)},
		}
	}
	return hosts
}

// TestTenThousandLibvirtHostsFitTheDefaultLimit measures a FilterHosts
// request of 10,000 hosts with libvirt's real cpu_info: it is past gRPC's
// own 4 MiB default (which refuses it, RESOURCE_EXHAUSTED: the shim's
// fail-open of issue 11) and within half of DefaultMaxMessage, which
// serves it over real gRPC.
func TestTenThousandLibvirtHostsFitTheDefaultLimit(t *testing.T) {
	req := &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: libvirtHosts(t, 10000), PassedOnly: true}
	size := proto.Size(req)
	t.Logf("FilterHosts request of 10,000 hosts with libvirt cpu_info: %d bytes (%.1f MiB, %d per host)", size, float64(size)/(1<<20), size/10000)
	if size <= 4<<20 || size > DefaultMaxMessage/2 {
		t.Fatalf("request of %d bytes: want it past 4 MiB (else this proves nothing) and within half of %d", size, DefaultMaxMessage)
	}
	ctx := context.Background()
	resp, err := ecraev1.NewPlacementServiceClient(serveTCP(t, DefaultMaxMessage)).FilterHosts(ctx, req)
	if err != nil {
		t.Fatalf("with the default limit: %v", err)
	}
	if len(resp.GetPassed()) != 10000 {
		t.Fatalf("%d answers for 10,000 hosts", len(resp.GetPassed()))
	}
	// The largest answer: the full breakdown of every host.
	weighed, err := ecraev1.NewPlacementServiceClient(serveTCP(t, DefaultMaxMessage)).WeighHosts(ctx,
		&ecraev1.WeighHostsRequest{Instance: req.GetInstance(), Hosts: req.GetHosts()})
	if err != nil {
		t.Fatalf("WeighHosts with the default limit: %v", err)
	}
	t.Logf("WeighHosts answer with the full breakdown: %d bytes", proto.Size(weighed))
	if n := proto.Size(weighed); n > DefaultMaxMessage/2 {
		t.Fatalf("WeighHosts answer of %d bytes: past half of %d", n, DefaultMaxMessage)
	}
	_, err = ecraev1.NewPlacementServiceClient(serveTCP(t, 4<<20)).FilterHosts(ctx, req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("with gRPC's 4 MiB default: got %v, want ResourceExhausted", err)
	}
}

// TestLongStatusMessagesAreCut: the net under the quoting. A handler error
// of 1 MiB reaches the client over real gRPC with its code, cut to
// maxStatusMessage bytes.
func TestLongStatusMessagesAreCut(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(MessageLimitOptions(DefaultMaxMessage)...)
	ecraev1.RegisterPlacementServiceServer(g, longErrors{})
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	defer func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = ecraev1.NewPlacementServiceClient(conn).FilterHosts(context.Background(), &ecraev1.FilterHostsRequest{})
	st, _ := status.FromError(err)
	// 4,096 bytes of "é" is 2,048 characters: cut on a character boundary.
	want := strings.Repeat("é", maxStatusMessage/2) + "…(1048576 bytes)"
	if st.Code() != codes.InvalidArgument || st.Message() != want {
		t.Fatalf("got %v, %d bytes, want InvalidArgument with %d bytes", st.Code(), len(st.Message()), len(want))
	}
}

type longErrors struct {
	ecraev1.UnimplementedPlacementServiceServer
}

func (longErrors) FilterHosts(context.Context, *ecraev1.FilterHostsRequest) (*ecraev1.FilterHostsResponse, error) {
	return nil, status.Error(codes.InvalidArgument, strings.Repeat("é", 1<<19))
}
