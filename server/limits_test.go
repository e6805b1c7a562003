package server

import (
	"context"
	"math"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// serveTCP serves testKB over real gRPC on a loopback listener with the
// service's message limit, as `ecrae serve` does, and dials it with the
// CLI's.
func serveTCP(t *testing.T) *grpc.ClientConn {
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
	g := grpc.NewServer(append(MessageLimitOptions(DefaultMaxMessage), grpc.ForceServerCodecV2(Codec{}))...)
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
	conn := serveTCP(t)
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
