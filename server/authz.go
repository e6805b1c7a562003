package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"
)

// Role is what a caller may do.
type Role string

// The roles, from least to most.
const (
	RoleAgent     Role = "agent"     // node agents: NATS only, nothing on gRPC but health
	RoleScheduler Role = "scheduler" // Nova's shim and read-only tools
	RoleOperator  Role = "operator"  // everything, KB writes, plans, power actions
	// RoleReplica is another `ecrae serve` of the cluster: on its own
	// nothing but health; a call it forwarded runs as the caller it
	// names (MDCaller, MDCallerRole).
	RoleReplica Role = "replica"
)

// access is the least role a method needs.
type access int

const (
	anyone access = iota // health: load balancers and the shim's checks
	scheduler
	operator
)

func (r Role) level() access {
	switch r {
	case RoleOperator:
		return operator
	case RoleScheduler:
		return scheduler
	}
	return anyone
}

// methodAccess is the one table of who may call what. An exact method wins
// over its service's entry; a method in neither (a new RPC) is
// operator-only, so forgetting to list a method never opens it.
func methodAccess(fullMethod string) access {
	switch fullMethod {
	case "/ecrae.v1.KnowledgeBaseService/ListTags", "/ecrae.v1.KnowledgeBaseService/GetTag",
		"/ecrae.v1.KnowledgeBaseService/ListArchitectures", "/ecrae.v1.KnowledgeBaseService/GetArchitecture",
		"/ecrae.v1.KnowledgeBaseService/ListFlavors", "/ecrae.v1.KnowledgeBaseService/GetFlavor",
		"/ecrae.v1.KnowledgeBaseService/ListHosts", "/ecrae.v1.KnowledgeBaseService/GetHost",
		"/ecrae.v1.KnowledgeBaseService/ExportKnowledgeBase", "/ecrae.v1.KnowledgeBaseService/ListKnowledgeBaseRevisions",
		"/ecrae.v1.RebalanceService/GetPlan", "/ecrae.v1.RebalanceService/ListPlans",
		"/ecrae.v1.PowerService/GetPowerStatus", "/ecrae.v1.PowerService/ListPowerEvents":
		return scheduler
	}
	service, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	switch service {
	case "grpc.health.v1.Health":
		return anyone
	case "ecrae.v1.PlacementService", "ecrae.v1.HostViewService",
		"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection":
		return scheduler
	}
	return operator
}

// Allowed reports whether role may call fullMethod.
func Allowed(role Role, fullMethod string) bool { return role.level() >= methodAccess(fullMethod) }

// Identity is who made a call, as the authorizer established it.
type Identity struct {
	Role    Role
	Subject string // certificate subject ("CN=…") or "keystone:user@project"
}

type identityKey struct{}

// Caller names who made the call in ctx, for audit records and "executed
// by": the authenticated subject when authorization is on, else the peer's
// address.
func Caller(ctx context.Context) string {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id.Subject
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		who := "unauthenticated@" + p.Addr.String()
		if by := forwardedBy(ctx); by != "" {
			// Without authentication anyone may claim anything: kept, and
			// labelled so.
			who += fmt.Sprintf(" (forwarded by %s for %s, unverified)", truncate(by, 100), truncate(firstMD(ctx, MDCaller), 100))
		}
		return who
	}
	return "unknown"
}

// forwardedIdentity is the caller a replica forwarded a call for (ok:
// the call carries one with a role a person or tool can hold).
func forwardedIdentity(ctx context.Context, replica string) (Identity, bool) {
	by, caller, role := forwardedBy(ctx), firstMD(ctx, MDCaller), Role(firstMD(ctx, MDCallerRole))
	if by == "" || caller == "" {
		return Identity{}, false
	}
	switch role {
	case RoleOperator, RoleScheduler, RoleAgent:
	default:
		return Identity{}, false
	}
	return Identity{Role: role, Subject: fmt.Sprintf("%s via %s (cert:%s)", truncate(caller, 100), truncate(by, 100), replica)}, true
}

// CallerIdentity is the caller's identity when authorization is on.
func CallerIdentity(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// RoleNames maps certificate names (CN, DNS or URI SAN) to roles: the
// --authz file, YAML {operator: [NAMES], scheduler: [NAMES], agent: [NAMES],
// replica: [NAMES]}.
type RoleNames map[string]Role

// LoadRoleNames reads an --authz file. A name under two roles is an error:
// which one was meant cannot be guessed.
func LoadRoleNames(file string) (RoleNames, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--authz: %w", err)
	}
	return ParseRoleNames(file, b)
}

// ParseRoleNames parses the --authz YAML.
func ParseRoleNames(file string, b []byte) (RoleNames, error) {
	var doc map[string][]string
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // an empty file: no names
		return nil, fmt.Errorf("--authz %s: %w", file, err)
	}
	out := RoleNames{}
	for role, names := range doc {
		r := Role(role)
		if r != RoleOperator && r != RoleScheduler && r != RoleAgent && r != RoleReplica {
			return nil, fmt.Errorf("--authz %s: unknown role %s (want operator, scheduler, agent or replica)", file, quote.Value(role))
		}
		for _, n := range names {
			if n == "" {
				return nil, fmt.Errorf("--authz %s: empty name under %s", file, role)
			}
			if prev, dup := out[n]; dup && prev != r {
				return nil, fmt.Errorf("--authz %s: %s is listed under both %s and %s", file, quote.Value(n), prev, r)
			}
			out[n] = r
		}
	}
	return out, nil
}

// roleOf is the role of a verified client certificate: its CN, then its
// DNS and URI SANs, in that order; the first listed name decides.
func (n RoleNames) roleOf(cert *x509.Certificate) (Role, string, bool) {
	names := append([]string{cert.Subject.CommonName}, cert.DNSNames...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	for _, name := range names {
		if r, ok := n[name]; ok && name != "" {
			return r, name, true
		}
	}
	return "", "", false
}

// TokenValidator checks an OpenStack Keystone token (x-auth-token).
type TokenValidator interface {
	Validate(ctx context.Context, token string) (KeystoneToken, error)
}

// KeystoneToken is what a validated token says.
type KeystoneToken struct {
	User, Project string
	Roles         []string
	Expires       time.Time
}

// KeystoneRole maps Keystone roles to ours: admin or ecrae-operator →
// operator; ecrae-scheduler → scheduler; anything else → no role.
func KeystoneRole(roles []string) (Role, bool) {
	switch {
	case slices.Contains(roles, "admin"), slices.Contains(roles, "ecrae-operator"):
		return RoleOperator, true
	case slices.Contains(roles, "ecrae-scheduler"):
		return RoleScheduler, true
	}
	return "", false
}

// Authorizer is the one interceptor that decides every call: it finds the
// caller's role (client certificate, else Keystone token) and checks it
// against methodAccess.
type Authorizer struct {
	names    atomic.Pointer[RoleNames]
	keystone TokenValidator
	log      *slog.Logger
	refused  *prometheus.CounterVec
}

// NewAuthorizer takes the --authz names (nil: certificates give no role) and
// an optional Keystone validator; reg receives ecrae_grpc_refused_total.
func NewAuthorizer(names RoleNames, keystone TokenValidator, log *slog.Logger, reg prometheus.Registerer) *Authorizer {
	a := &Authorizer{keystone: keystone, log: log, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ecrae_grpc_refused_total", Help: "gRPC calls refused by authorization, by method, role and code.",
	}, []string{"method", "role", "code"})}
	if names == nil {
		names = RoleNames{}
	}
	a.names.Store(&names)
	if reg != nil {
		reg.MustRegister(a.refused)
	}
	return a
}

// SetNames replaces the certificate names (on SIGHUP).
func (a *Authorizer) SetNames(n RoleNames) { a.names.Store(&n) }

func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	id, err := a.identify(ctx)
	if err == nil {
		fillSlot(ctx, id)
	}
	if err != nil {
		a.refused.WithLabelValues(method, "none", codes.Unauthenticated.String()).Inc()
		return nil, status.Errorf(codes.Unauthenticated, "%s: %v", method, err)
	}
	if !Allowed(id.Role, method) {
		a.refused.WithLabelValues(method, string(id.Role), codes.PermissionDenied.String()).Inc()
		return nil, status.Errorf(codes.PermissionDenied, "%s is not allowed for role %s (%s)", method, id.Role, id.Subject)
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

func (a *Authorizer) identify(ctx context.Context) (Identity, error) {
	var certSubject string
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 && len(ti.State.VerifiedChains[0]) > 0 {
			leaf := ti.State.VerifiedChains[0][0]
			certSubject = leaf.Subject.String()
			if r, name, ok := (*a.names.Load()).roleOf(leaf); ok {
				if r == RoleReplica {
					if id, ok := forwardedIdentity(ctx, name); ok {
						return id, nil
					}
				}
				return Identity{Role: r, Subject: "cert:" + name}, nil
			}
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok && a.keystone != nil {
		if tok := md.Get("x-auth-token"); len(tok) > 0 && tok[0] != "" {
			kt, err := a.keystone.Validate(ctx, tok[0])
			if err != nil {
				return Identity{}, fmt.Errorf("keystone token refused: %w", err)
			}
			subject := "keystone:" + kt.User + "@" + kt.Project
			r, ok := KeystoneRole(kt.Roles)
			if !ok {
				return Identity{Role: RoleAgent, Subject: subject}, nil // no role: health only
			}
			return Identity{Role: r, Subject: subject}, nil
		}
	}
	if certSubject != "" {
		return Identity{Role: RoleAgent, Subject: "cert:" + certSubject}, nil // a valid certificate with no role: health only
	}
	return Identity{}, errors.New("no client certificate with a role and no x-auth-token")
}

// Unary is the unary interceptor.
func (a *Authorizer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the stream interceptor.
func (a *Authorizer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
