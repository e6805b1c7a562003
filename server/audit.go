package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ecrae/ecrae/audit"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// AuditLog is where audited calls go.
type AuditLog interface {
	Append(ctx context.Context, r audit.Record) error
	List(ctx context.Context, since time.Time, limit int) ([]audit.Record, error)
	Capacity() int
}

// Auditor records every call that needs the operator role (every call that
// can change state; a method nobody listed is operator-only, so a new write
// is audited too), allowed or refused, with who made it and how it ended.
// It runs outside the Authorizer, which tells it who the caller was.
type Auditor struct {
	ecraev1.UnimplementedAuditServiceServer
	log   AuditLog
	slog  *slog.Logger
	clock func() time.Time
}

// NewAuditor records into l.
func NewAuditor(l AuditLog, log *slog.Logger) *Auditor {
	return &Auditor{log: l, slog: log, clock: time.Now}
}

// Register adds the AuditService to g.
func (a *Auditor) Register(g *grpc.Server) { ecraev1.RegisterAuditServiceServer(g, a) }

// identitySlot lets the Authorizer, further in, tell the Auditor who the
// caller was, also when it refuses the call.
type identitySlot struct {
	id  Identity
	set bool
	// forwarded: the leader ran the call (this replica forwarded it) and
	// recorded it in the cluster's trail, which this replica shares.
	forwarded bool
}

type slotKey struct{}

func fillSlot(ctx context.Context, id Identity) {
	if s, ok := ctx.Value(slotKey{}).(*identitySlot); ok {
		s.id, s.set = id, true
	}
}

// markForwarded tells the Auditor that the leader ran and recorded the
// call in ctx: a record here would be a second one of the same call.
func markForwarded(ctx context.Context) {
	if s, ok := ctx.Value(slotKey{}).(*identitySlot); ok {
		s.forwarded = true
	}
}

// Unary is the interceptor.
func (a *Auditor) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if methodAccess(info.FullMethod) != operator || info.FullMethod == "/ecrae.v1.AuditService/ListAuditRecords" {
			return handler(ctx, req)
		}
		slot := &identitySlot{}
		resp, err := handler(context.WithValue(ctx, slotKey{}, slot), req)
		if slot.forwarded {
			return resp, err
		}
		r := audit.Record{Time: a.clock().UTC(), Method: info.FullMethod, Code: status.Code(err).String(), Who: Caller(ctx)}
		if slot.set {
			r.Who, r.Role = slot.id.Subject, string(slot.id.Role)
		}
		if m, ok := req.(proto.Message); ok {
			r.Target = target(m)
		}
		if err != nil {
			r.Message = truncate(status.Convert(err).Message(), 200)
		}
		// The call's own context may be cancelled once it answered; the
		// record must still be written.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if aerr := a.log.Append(wctx, r); aerr != nil {
			a.slog.Error("audit record not written", "method", r.Method, "who", r.Who, "err", aerr)
		}
		return resp, err
	}
}

// Stream is the stream interceptor: an operator-level streaming call
// (none today; a new RPC is operator-level until listed) is recorded like
// a unary one, once it ends.
func (a *Auditor) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		var err error
		_, _ = a.Unary()(ss.Context(), nil, &grpc.UnaryServerInfo{FullMethod: info.FullMethod}, func(ctx context.Context, _ any) (any, error) {
			err = handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
			return nil, err
		})
		return err
	}
}

// ListAuditRecords serves `ecrae audit`.
func (a *Auditor) ListAuditRecords(ctx context.Context, req *ecraev1.ListAuditRecordsRequest) (*ecraev1.ListAuditRecordsResponse, error) {
	if req.GetLimit() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit: %d is negative", req.GetLimit())
	}
	var since time.Time
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		since = req.GetSince().AsTime()
	}
	recs, err := a.log.List(ctx, since, int(req.GetLimit()))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "audit: %v", err)
	}
	out := &ecraev1.ListAuditRecordsResponse{Capacity: int32(a.log.Capacity())}
	for _, r := range recs {
		out.Records = append(out.Records, &ecraev1.AuditRecord{
			Time: timestamppb.New(r.Time), Who: r.Who, Role: r.Role, Method: r.Method,
			Target: r.Target, Code: r.Code, Message: r.Message, Seq: r.Seq,
			Replica: r.Replica, Pending: r.Pending,
		})
	}
	return out, nil
}

// target names what a request acts on: its short scalar fields (a plan ID,
// a host name, replace=true), and the size of long ones (a KB document),
// never their content.
func target(m proto.Message) string {
	// Range's order is unspecified (protobuf varies it with the binary):
	// the fields are put in field-number order so a record reads the same
	// from every build.
	type field struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var fields []field
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		fields = append(fields, field{fd, v})
		return true
	})
	slices.SortFunc(fields, func(a, b field) int { return cmp.Compare(a.fd.Number(), b.fd.Number()) })
	var parts []string
	for _, f := range fields {
		fd, v := f.fd, f.v
		name := string(fd.Name())
		switch {
		case fd.IsList() || fd.IsMap():
			parts = append(parts, fmt.Sprintf("%s=[%d]", name, lenOf(fd, v)))
		case fd.Kind() == protoreflect.MessageKind:
			if inner := target(v.Message().Interface()); inner != "" {
				parts = append(parts, name+"{"+inner+"}")
			}
		case fd.Kind() == protoreflect.StringKind && len(v.String()) > 64:
			parts = append(parts, fmt.Sprintf("%s=(%d bytes)", name, len(v.String())))
		case fd.Kind() == protoreflect.BytesKind:
			parts = append(parts, fmt.Sprintf("%s=(%d bytes)", name, len(v.Bytes())))
		case fd.Kind() == protoreflect.StringKind && strings.ContainsFunc(v.String(), unicode.IsControl):
			// A short KB document ("hosts: []\n") or a name with a newline
			// or tab would break the one-line record and `ecrae audit`'s table.
			parts = append(parts, name+"="+strconv.Quote(v.String()))
		default:
			parts = append(parts, name+"="+v.String())
		}
	}
	return truncate(strings.Join(parts, " "), 300)
}

func lenOf(fd protoreflect.FieldDescriptor, v protoreflect.Value) int {
	if fd.IsMap() {
		return v.Map().Len()
	}
	return v.List().Len()
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
