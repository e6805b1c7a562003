package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Metadata of a call one replica forwarded to the leader (cluster mode).
const (
	// MDForwardedBy names the replica that forwarded the call: a call that
	// carries it is never forwarded again.
	MDForwardedBy = "x-ecrae-forwarded-by"
	// MDCaller and MDCallerRole are the original caller, as the forwarding
	// replica authenticated it; the leader believes them only from a peer
	// whose certificate has the replica role (Authorizer).
	MDCaller     = "x-ecrae-caller"
	MDCallerRole = "x-ecrae-caller-role"
	// MDVia is the channel the original call came through, when not gRPC:
	// "console" for the web console's (the power history's by).
	MDVia = "x-ecrae-via"
	// MDNotLeader, in the trailer of a forwarded call's answer, says the
	// replica it reached no longer leads and ran nothing: the forwarding
	// replica may send it on to the next leader.
	MDNotLeader = "x-ecrae-not-leader"
)

// A call that a follower receives between two leaders waits for the next
// one, and a forwarded call that reaches a replica which just stopped
// leading is sent on to the next leader, once this replica's lease view
// names it (a follower sees a new leader within a lease round). These
// bound it.
const (
	forwardHops       = 3
	newLeaderWait     = 5 * time.Second
	newLeaderInterval = 20 * time.Millisecond
)

// LeaderOnly reports whether a method acts through the leader alone (its
// plan store writes, executor or power manager): a follower forwards it.
// Reading plans stays local: the plan store is replicated.
func LeaderOnly(fullMethod string) bool {
	switch fullMethod {
	case "/ecrae.v1.RebalanceService/PlanRebalance", "/ecrae.v1.RebalanceService/ExecutePlan",
		"/ecrae.v1.RebalanceService/CancelPlan", "/ecrae.v1.RebalanceService/AbortPlan",
		// The leader's mover is the fenced one.
		"/ecrae.v1.RebalanceService/MigrateContainer":
		return true
	}
	// The power manager runs on the leader: the hosts it powered off, its
	// pause and the BMCs it asks are the leader's. Its history is every
	// replica's (replicated, ha.PowerLog): read where asked, as plans are,
	// also while no leader is elected.
	return strings.HasPrefix(fullMethod, "/ecrae.v1.PowerService/") && fullMethod != "/ecrae.v1.PowerService/ListPowerEvents"
}

// Leadership is what forwarding needs of the leader lease (ha.Lease).
type Leadership interface {
	// Name is this replica's name.
	Name() string
	// IsLeader reports whether this replica believes it leads (the fence
	// checks it again before acting).
	IsLeader() bool
	// LeaderEndpoint is the leader last seen and its advertised gRPC
	// address ("" when none).
	LeaderEndpoint() (name, grpcAddr string)
}

// Forwarder sends the leader-only calls a follower receives to the leader
// over gRPC, with the original caller in metadata, and answers what the
// leader answered. It runs after the authorizer: a caller the follower
// refuses is never forwarded.
type Forwarder struct {
	lease Leadership
	creds credentials.TransportCredentials
	opts  []grpc.DialOption
	log   *slog.Logger

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by leader address
}

// NewForwarder forwards through connections made with creds (the
// replica's client TLS when the service uses TLS) and opts.
func NewForwarder(lease Leadership, creds credentials.TransportCredentials, log *slog.Logger, opts ...grpc.DialOption) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &Forwarder{lease: lease, creds: creds, opts: opts, log: log, conns: map[string]*grpc.ClientConn{}}
}

// Close closes the connections to the leaders.
func (f *Forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, c := range f.conns {
		_ = c.Close()
		delete(f.conns, addr)
	}
}

func (f *Forwarder) conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.conns[addr]; c != nil {
		return c, nil
	}
	c, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(f.creds)}, f.opts...)...)
	if err != nil {
		return nil, err
	}
	// One leader at a time: the connections to former ones go.
	for a, old := range f.conns {
		_ = old.Close()
		delete(f.conns, a)
	}
	f.conns[addr] = c
	return c, nil
}

// Unary is the interceptor.
func (f *Forwarder) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !LeaderOnly(info.FullMethod) || f.lease.IsLeader() {
			return handler(ctx, req)
		}
		leader, addr := f.lease.LeaderEndpoint()
		if by := forwardedBy(ctx); by != "" {
			// Forwarded once already: the leadership moved meanwhile, and a
			// second hop could bounce between two replicas that each see
			// the other as leader. The forwarding replica sends it on.
			_ = grpc.SetTrailer(ctx, metadata.Pairs(MDNotLeader, f.lease.Name()))
			return nil, status.Errorf(codes.Unavailable, "%s: forwarded by %s to %s, which does not lead (leader: %q): retry", info.FullMethod, by, f.lease.Name(), leader)
		}
		if leader == "" {
			// Between two leaders (the last one released the lease): the
			// next one is elected within a lease round or two.
			leader, addr = f.awaitNewLeader(ctx, "")
			if f.lease.IsLeader() {
				return handler(ctx, req)
			}
		}
		if leader == "" || addr == "" {
			return nil, status.Errorf(codes.Unavailable, "%s: this replica (%s) does not lead and knows no leader to forward to (leader: %q): retry once one is elected", info.FullMethod, f.lease.Name(), leader)
		}
		in, ok := req.(proto.Message)
		if !ok {
			return nil, status.Errorf(codes.Internal, "forward %s: request %T is not a protobuf message", info.FullMethod, req)
		}
		for hop := 1; ; hop++ {
			out, notLeader, ran, err := f.forward(ctx, info.FullMethod, leader, addr, in)
			if ran {
				// The leader recorded the call in the cluster's audit trail.
				markForwarded(ctx)
			}
			if !notLeader || hop == forwardHops {
				return out, err
			}
			// The replica we knew as leader ran nothing: wait for the lease
			// to name the next one (it may be this replica).
			next, nextAddr := f.awaitNewLeader(ctx, leader)
			if f.lease.IsLeader() {
				return handler(ctx, req)
			}
			if next == "" || nextAddr == "" {
				return nil, err
			}
			f.log.Debug("forwarding to the next leader", "method", info.FullMethod, "former", leader, "leader", next)
			leader, addr = next, nextAddr
		}
	}
}

// forward sends one call to the leader at addr; notLeader reports that it
// answered that it no longer leads (and ran nothing), ran that the leader
// ran the call and gave its answer (err is then the leader's own).
func (f *Forwarder) forward(ctx context.Context, method, leader, addr string, in proto.Message) (out proto.Message, notLeader, ran bool, err error) {
	out, err = newReply(method)
	if err != nil {
		return nil, false, false, status.Errorf(codes.Internal, "forward %s: %v", method, err)
	}
	c, err := f.conn(addr)
	if err != nil {
		return nil, false, false, status.Errorf(codes.Unavailable, "%s: leader %s at %s: %v", method, leader, addr, err)
	}
	md := metadata.Pairs(MDForwardedBy, f.lease.Name(), MDCaller, Caller(ctx))
	if id, ok := CallerIdentity(ctx); ok {
		md.Set(MDCallerRole, string(id.Role))
	}
	if fromConsole(ctx) {
		md.Set(MDVia, byConsole)
	}
	// The caller's deadline and cancellation go along (gRPC sends the
	// deadline); its own metadata (a Keystone token) does not.
	var trailer metadata.MD
	err = c.Invoke(metadata.NewOutgoingContext(ctx, md), method, in, out, grpc.Trailer(&trailer))
	if err == nil {
		return out, false, true, nil
	}
	st := status.Convert(err)
	f.log.Debug("forwarded call failed", "method", method, "leader", leader, "code", st.Code(), "err", st.Message())
	if st.Code() == codes.Unavailable {
		// Unreachable, or no longer leading: whether the leader ran it is
		// not known, so this replica records it too.
		return nil, len(trailer.Get(MDNotLeader)) > 0, false, status.Errorf(codes.Unavailable, "forwarded to the leader %s at %s: %s", leader, addr, st.Message())
	}
	return nil, false, true, err // the leader's answer, as it gave it
}

// awaitNewLeader waits until this replica's lease view names a leader
// other than former (or this replica leads), for at most newLeaderWait
// and while ctx lasts; it returns the leader it then sees.
func (f *Forwarder) awaitNewLeader(ctx context.Context, former string) (name, grpcAddr string) {
	ctx, cancel := context.WithTimeout(ctx, newLeaderWait)
	defer cancel()
	tick := time.NewTicker(newLeaderInterval)
	defer tick.Stop()
	for {
		name, grpcAddr = f.lease.LeaderEndpoint()
		if (name != "" && name != former) || f.lease.IsLeader() {
			return name, grpcAddr
		}
		select {
		case <-ctx.Done():
			return "", ""
		case <-tick.C:
		}
	}
}

// newReply makes an empty response message of a method, from the
// registered descriptors of the generated code.
func newReply(fullMethod string) (proto.Message, error) {
	svc, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("method name %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("no method %s in %s", method, svc)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

type consoleKey struct{}

// withConsole marks ctx as a call the web console makes (HTTPGate).
func withConsole(ctx context.Context) context.Context {
	return context.WithValue(ctx, consoleKey{}, true)
}

func fromConsole(ctx context.Context) bool {
	v, _ := ctx.Value(consoleKey{}).(bool)
	return v
}

// actionBy names who a power action is recorded as made by: "console"
// for the web console's, on this replica or forwarded by another, else
// "cli" (ecrae power, or any gRPC client). A label: who made the call is
// in the audit record.
func actionBy(ctx context.Context) string {
	if fromConsole(ctx) || (forwardedBy(ctx) != "" && firstMD(ctx, MDVia) == byConsole) {
		return byConsole
	}
	return "cli"
}

// forwardedBy is the replica that forwarded the call in ctx, "" if none.
func forwardedBy(ctx context.Context) string {
	return firstMD(ctx, MDForwardedBy)
}

func firstMD(ctx context.Context, key string) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
