package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// callFrom is the context of a call over mutual TLS from a verified
// certificate named cn, with incoming metadata kv.
func callFrom(cn string, kv ...string) context.Context {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
	p := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 41000},
		AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}}}
	return metadata.NewIncomingContext(peer.NewContext(context.Background(), p), metadata.Pairs(kv...))
}

// TestAuthorizerForwardedIdentity: a call a replica forwarded runs as the
// caller it names, with that caller's role (an operator's power off is
// allowed, a scheduler's refused), named with the replica for audit; the
// same metadata from a certificate that is not a replica's changes
// nothing; a replica on its own may call health only.
func TestAuthorizerForwardedIdentity(t *testing.T) {
	a := NewAuthorizer(RoleNames{"ecrae-r1": RoleReplica, "ops": RoleOperator, "nova": RoleScheduler}, nil, nil, nil)
	const off = "/ecrae.v1.PowerService/PowerOff"
	fwd := func(role string) []string {
		return []string{MDForwardedBy, "r1", MDCaller, "cert:alice", MDCallerRole, role}
	}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		method string
		code   codes.Code
		who    string
	}{
		{"operator forwarded by a replica", callFrom("ecrae-r1", fwd("operator")...), off, codes.OK, "cert:alice via r1 (cert:ecrae-r1)"},
		{"scheduler forwarded by a replica", callFrom("ecrae-r1", fwd("scheduler")...), off, codes.PermissionDenied, ""},
		{"a replica's role is not forwardable", callFrom("ecrae-r1", fwd("replica")...), off, codes.PermissionDenied, ""},
		{"replica on its own", callFrom("ecrae-r1"), off, codes.PermissionDenied, ""},
		{"replica on its own, health", callFrom("ecrae-r1"), "/grpc.health.v1.Health/Check", codes.OK, "cert:ecrae-r1"},
		{"claims from a scheduler's certificate", callFrom("nova", fwd("operator")...), off, codes.PermissionDenied, ""},
		{"claims from an operator's certificate", callFrom("ops", fwd("scheduler")...), off, codes.OK, "cert:ops"},
	} {
		ctx, err := a.authorize(tc.ctx, tc.method)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
			continue
		}
		if err == nil {
			if got := Caller(ctx); got != tc.who {
				t.Errorf("%s: caller %q, want %q", tc.name, got, tc.who)
			}
		}
	}
	if _, err := ParseRoleNames("f", []byte("replica: [ecrae-r1]\n")); err != nil {
		t.Errorf("replica role in --authz: %v", err)
	}
}

// TestCallerWithoutAuthorizationLabelsClaims: without authorization a
// forwarded caller is reported, marked unverified, and cut short.
func TestCallerWithoutAuthorizationLabelsClaims(t *testing.T) {
	long := strings.Repeat("x", 300)
	ctx := callFrom("", MDForwardedBy, "r1", MDCaller, long)
	got := Caller(ctx)
	if !strings.HasPrefix(got, "unauthenticated@10.0.0.2:41000 (forwarded by r1 for ") || !strings.HasSuffix(got, ", unverified)") || len(got) > 200 {
		t.Errorf("Caller = %q", got)
	}
}

// fixedLeader is a Leadership that never changes.
type fixedLeader struct {
	leads        bool
	leader, addr string
}

func (f fixedLeader) Name() string                     { return "r1" }
func (f fixedLeader) IsLeader() bool                   { return f.leads }
func (f fixedLeader) LeaderEndpoint() (string, string) { return f.leader, f.addr }

// TestForwarderRefusesWithoutALeader: a follower that knows no leader
// until the caller's deadline answers UNAVAILABLE and runs nothing; a
// method that is not leader-only, or a leader, runs here.
func TestForwarderRefusesWithoutALeader(t *testing.T) {
	ran := 0
	handler := func(context.Context, any) (any, error) { ran++; return &ecraev1.GetPlanResponse{}, nil }
	req := &ecraev1.PlanRebalanceRequest{}
	f := NewForwarder(fixedLeader{}, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := f.Unary()(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/ecrae.v1.RebalanceService/PlanRebalance"}, handler)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "knows no leader") || ran != 0 {
		t.Errorf("no leader: %v (ran %d)", err, ran)
	}
	if _, err := f.Unary()(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: "/ecrae.v1.RebalanceService/GetPlan"}, handler); err != nil || ran != 1 {
		t.Errorf("GetPlan on a follower: %v (ran %d), want it served here", err, ran)
	}
	// The power history is replicated: read where asked, though no leader is known.
	if _, err := f.Unary()(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: "/ecrae.v1.PowerService/ListPowerEvents"}, handler); err != nil || ran != 2 {
		t.Errorf("ListPowerEvents on a follower: %v (ran %d), want it served here", err, ran)
	}
	lead := NewForwarder(fixedLeader{leads: true}, nil, nil)
	if _, err := lead.Unary()(context.Background(), req, &grpc.UnaryServerInfo{FullMethod: "/ecrae.v1.RebalanceService/PlanRebalance"}, handler); err != nil || ran != 3 {
		t.Errorf("PlanRebalance on the leader: %v (ran %d), want it served here", err, ran)
	}
	for _, m := range []string{"/ecrae.v1.RebalanceService/PlanRebalance", "/ecrae.v1.PowerService/PowerOff", "/ecrae.v1.PowerService/ListPowerEvents"} {
		if _, err := newReply(m); err != nil {
			t.Errorf("newReply(%s): %v", m, err)
		}
	}
}

// movingLeader is a Leadership whose view of the leader can change.
type movingLeader struct {
	name string
	mu   sync.Mutex
	view [2]string // leader name, gRPC address
	// next, if set, becomes the view after the first read: the lease
	// round that names a new leader comes after the call looked.
	next [2]string
}

func (m *movingLeader) Name() string   { return m.name }
func (m *movingLeader) IsLeader() bool { return false }
func (m *movingLeader) LeaderEndpoint() (string, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.view
	if m.next[0] != "" {
		m.view, m.next = m.next, [2]string{}
	}
	return v[0], v[1]
}
func (m *movingLeader) set(name, addr string) {
	m.mu.Lock()
	m.view = [2]string{name, addr}
	m.mu.Unlock()
}

// cancelServer answers CancelPlan with its replica's name in the message.
type cancelServer struct {
	ecraev1.UnimplementedRebalanceServiceServer
	name string
	ran  atomic.Int32
}

func (c *cancelServer) CancelPlan(context.Context, *ecraev1.CancelPlanRequest) (*ecraev1.CancelPlanResponse, error) {
	c.ran.Add(1)
	return &ecraev1.CancelPlanResponse{Plan: &ecraev1.Plan{Message: "cancelled by " + c.name}}, nil
}

// serveReplica serves the rebalance service behind interceptors on a
// loopback port and returns its address.
func serveReplica(t *testing.T, srv *cancelServer, interceptors ...grpc.UnaryServerInterceptor) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(interceptors...))
	ecraev1.RegisterRebalanceServiceServer(g, srv)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// TestForwarderFollowsTheNextLeader: a follower forwards to the replica it
// last saw leading, which has just stopped leading and runs nothing; the
// follower sends the call on to the next leader once its lease view names
// it (before, the operator got UNAVAILABLE during every takeover). If its
// view never moves, the caller gets the UNAVAILABLE, within its deadline.
func TestForwarderFollowsTheNextLeader(t *testing.T) {
	const method = "/ecrae.v1.RebalanceService/CancelPlan"
	follower := &movingLeader{name: "r2"}

	next := &cancelServer{name: "r0"}
	nextAddr := serveReplica(t, next, NewForwarder(fixedLeader{leads: true}, nil, nil).Unary())

	former := &cancelServer{name: "r1"}
	// r1 no longer leads and still names itself (its last view); reaching
	// it is when the follower's lease round names r0.
	seen := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		follower.set("r0", nextAddr)
		return h(ctx, req)
	}
	formerLease := &movingLeader{name: "r1"}
	formerAddr := serveReplica(t, former, seen, NewForwarder(formerLease, nil, nil).Unary())
	formerLease.set("r1", formerAddr)
	follower.set("r1", formerAddr)

	f := NewForwarder(follower, nil, nil)
	defer f.Close()
	handler := func(context.Context, any) (any, error) { t.Error("the follower ran the call itself"); return nil, nil }
	out, err := f.Unary()(context.Background(), &ecraev1.CancelPlanRequest{PlanId: "p1"}, &grpc.UnaryServerInfo{FullMethod: method}, handler)
	if err != nil {
		t.Fatalf("forwarded during a takeover: %v", err)
	}
	if got := out.(*ecraev1.CancelPlanResponse).GetPlan().GetMessage(); got != "cancelled by r0" || former.ran.Load() != 0 || next.ran.Load() != 1 {
		t.Errorf("answer %q; ran on r1 %d, on r0 %d; want r0 once, r1 never", got, former.ran.Load(), next.ran.Load())
	}

	// A follower between two leaders waits for the next one.
	electing := &movingLeader{name: "r2", next: [2]string{"r0", nextAddr}}
	out, err = NewForwarder(electing, nil, nil).Unary()(context.Background(), &ecraev1.CancelPlanRequest{PlanId: "p1"}, &grpc.UnaryServerInfo{FullMethod: method}, handler)
	if err != nil || out.(*ecraev1.CancelPlanResponse).GetPlan().GetMessage() != "cancelled by r0" || next.ran.Load() != 2 {
		t.Errorf("between two leaders: %v, %v; want it forwarded to r0 once elected", out, err)
	}

	// A view that never moves: UNAVAILABLE once the caller's deadline ends.
	stuck := &movingLeader{name: "r2"}
	stuck.set("r1", formerAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = NewForwarder(stuck, nil, nil).Unary()(ctx, &ecraev1.CancelPlanRequest{PlanId: "p1"}, &grpc.UnaryServerInfo{FullMethod: method}, handler)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "which does not lead") || next.ran.Load() != 2 {
		t.Errorf("no next leader: %v (ran on r0 %d), want UNAVAILABLE naming the replica that does not lead", err, next.ran.Load())
	}
}

// byRecorder is a power manager that records who each power off is made
// by (the rest answers nothing).
type byRecorder struct {
	errManager
	mu sync.Mutex
	by []string
}

func (b *byRecorder) Off(_ context.Context, _, by string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.by = append(b.by, by)
	return nil
}

// TestConsolePowerForwardedNamesConsole: a power off made on a follower's
// web console runs on the leader, whose history names the console, as
// when it is made on the leader's console; the same call over gRPC names
// the CLI. (Before, the forwarded console action was recorded as "cli".)
func TestConsolePowerForwardedNamesConsole(t *testing.T) {
	rec := &byRecorder{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.ChainUnaryInterceptor(NewForwarder(fixedLeader{leads: true}, nil, nil).Unary()))
	NewPowerService(rec).Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)

	f := NewForwarder(fixedLeader{leader: "r0", addr: lis.Addr().String()}, nil, nil)
	defer f.Close()
	const method = "/ecrae.v1.PowerService/PowerOff"
	here := func(context.Context, any) (any, error) {
		t.Error("the follower ran the power off itself")
		return nil, nil
	}
	console := HTTPGate{Forward: f.Unary()}
	r := httptest.NewRequest(http.MethodPost, "/power/c1/off", nil)
	if _, err := console.Call(r, method, &ecraev1.PowerOffRequest{Host: "c1"}, here); err != nil {
		t.Fatalf("console power off through the follower: %v", err)
	}
	if _, err := f.Unary()(context.Background(), &ecraev1.PowerOffRequest{Host: "c1"}, &grpc.UnaryServerInfo{FullMethod: method}, here); err != nil {
		t.Fatalf("gRPC power off through the follower: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if want := []string{"console", "cli"}; !slices.Equal(rec.by, want) {
		t.Errorf("the leader recorded power offs by %q, want %q", rec.by, want)
	}
}
