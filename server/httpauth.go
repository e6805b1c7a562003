package server

import (
	"context"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// HTTPGate runs an in-process call made for an HTTP request (the web
// console) through the same decisions as a gRPC call of that method: the
// Authorizer's identify logic (a verified client certificate's name, else an
// x-auth-token header) and methodAccess, then the audit record. Each console
// action names the gRPC method it stands for, so there is one table of who
// may do what.
type HTTPGate struct {
	// Authz decides; nil = authorization is off (loopback default) and
	// every request may do everything.
	Authz *Authorizer
	// Audit records operator-level calls; nil = none recorded.
	Audit *Auditor
	// Forward, in cluster mode, is the Forwarder's interceptor: a
	// leader-only call with a protobuf request (a plan or power action)
	// made on a follower's console runs on the leader, as the same call
	// over gRPC would. Other calls run here (the power panel's reads, of
	// the replicated history and this replica's view).
	Forward grpc.UnaryServerInterceptor
}

// Call runs h as fullMethod for r. Its errors are gRPC statuses:
// Unauthenticated or PermissionDenied when refused, else h's own.
func (g HTTPGate) Call(r *http.Request, fullMethod string, req any, h grpc.UnaryHandler) (any, error) {
	ctx := withConsole(httpCallContext(r))
	decide := func(ctx context.Context, req any) (any, error) {
		if g.Authz != nil {
			var err error
			if ctx, err = g.Authz.authorize(ctx, fullMethod); err != nil {
				return nil, err
			}
		}
		if _, ok := req.(proto.Message); ok && g.Forward != nil {
			return g.Forward(ctx, req, &grpc.UnaryServerInfo{FullMethod: fullMethod}, h)
		}
		return h(ctx, req)
	}
	if g.Audit == nil {
		return decide(ctx, req)
	}
	return g.Audit.Unary()(ctx, req, &grpc.UnaryServerInfo{FullMethod: fullMethod}, decide)
}

// httpCallContext dresses r's context as a gRPC call's: the peer (with its
// TLS state, so a verified client certificate counts) and the
// x-auth-token header as metadata.
func httpCallContext(r *http.Request) context.Context {
	p := &peer.Peer{Addr: httpAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS}
	}
	ctx := peer.NewContext(r.Context(), p)
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("x-auth-token", tok))
	}
	return ctx
}

// httpAddr is the remote address as a net.Addr (Caller prints it).
type httpAddr string

var _ net.Addr = httpAddr("")

func (a httpAddr) Network() string { return "tcp" }
func (a httpAddr) String() string  { return string(a) }
