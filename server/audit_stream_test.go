package server

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecrae/ecrae/audit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/emptypb"
)

// tokens stands in for Keystone's token validation (Keystone does not run
// here).
type tokens map[string][]string

func (k tokens) Validate(_ context.Context, tok string) (KeystoneToken, error) {
	roles, ok := k[tok]
	if !ok {
		return KeystoneToken{}, errors.New("token not found")
	}
	return KeystoneToken{User: tok, Project: "p", Roles: roles, Expires: time.Now().Add(time.Hour)}, nil
}

// TestAuditedStream: a streaming method nobody listed is operator-level,
// so it is audited like a unary one, over real gRPC: who called it (from
// the Authorizer inside), and how it ended, refused or not.
func TestAuditedStream(t *testing.T) {
	store, err := audit.Open(filepath.Join(t.TempDir(), "audit.db"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := NewAuditor(store, nil)
	authz := NewAuthorizer(nil, tokens{"ops": {"admin"}, "viewer": {"ecrae-scheduler"}}, nil, nil)
	g := grpc.NewServer(grpc.ChainStreamInterceptor(a.Stream(), authz.Stream()))
	// A streaming service of the test's own: no ecrae RPC streams a write.
	g.RegisterService(&grpc.ServiceDesc{ServiceName: "ecrae.v1.TestService", HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Watch", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			return ss.SendMsg(&emptypb.Empty{})
		}}}}, struct{}{})
	lis := bufconn.Listen(1 << 20)
	go g.Serve(lis)
	defer g.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	desc := &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
	watch := func(token string) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-auth-token", token)
		cs, err := conn.NewStream(ctx, desc, "/ecrae.v1.TestService/Watch")
		if err != nil {
			return err
		}
		if err := cs.CloseSend(); err != nil {
			return err
		}
		for {
			if err := cs.RecvMsg(&emptypb.Empty{}); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	if err := watch("viewer"); err == nil {
		t.Error("a scheduler's token called an operator-level stream")
	}
	if err := watch("ops"); err != nil {
		t.Fatalf("operator: %v", err)
	}
	recs, err := store.List(context.Background(), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		if r.Method != "/ecrae.v1.TestService/Watch" {
			t.Errorf("record of %s", r.Method)
		}
		got[r.Who+" "+r.Role] = r.Code
	}
	if len(recs) != 2 || got["keystone:viewer@p scheduler"] != "PermissionDenied" || got["keystone:ops@p operator"] != "OK" {
		t.Errorf("audit records: %+v", recs)
	}
}
