package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ecrae/ecrae/audit"
	"github.com/ecrae/ecrae/openstack"
	"github.com/ecrae/ecrae/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// securityServe are serve's TLS, authorization and exposure flags.
type securityServe struct {
	tlsCert, tlsKey, tlsClientCA string
	authz                        string
	keystoneURL                  string
	insecure                     bool
	auditKeep                    int
	// insecureWarnEvery is how often --insecure is logged again.
	insecureWarnEvery time.Duration
}

func (s *securityServe) register(fs *flag.FlagSet) {
	fs.StringVar(&s.tlsCert, "tls-cert", "", "certificate (PEM) for gRPC and HTTP; reloaded on SIGHUP")
	fs.StringVar(&s.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert; reloaded on SIGHUP")
	fs.StringVar(&s.tlsClientCA, "tls-client-ca", "", "CA (PEM) that must sign every gRPC client's certificate (mutual TLS); reloaded on SIGHUP")
	fs.StringVar(&s.authz, "authz", "", "roles by client certificate name: YAML {operator: [NAMES], scheduler: [NAMES], agent: [NAMES]} matched against the CN and DNS/URI SANs; reloaded on SIGHUP")
	fs.StringVar(&s.keystoneURL, "keystone-url", "", "Keystone /v3 URL: callers may authenticate with an x-auth-token (role admin or ecrae-operator → operator, ecrae-scheduler → scheduler)")
	fs.BoolVar(&s.insecure, "insecure", false, "allow listening on a non-loopback address without TLS (logged every hour)")
	fs.IntVar(&s.auditKeep, "audit-keep", audit.DefaultCapacity, "audit records kept in audit.db beside the KB; the oldest go first")
	s.insecureWarnEvery = time.Hour
}

// securityRuntime is what the flags became: server options for gRPC, the
// HTTP TLS config, and a loop that reloads on SIGHUP.
type securityRuntime struct {
	s       securityServe
	tls     *server.TLSFiles   // nil: no TLS
	authz   *server.Authorizer // nil: every caller may call everything (loopback default)
	audit   *server.Auditor
	store   *audit.Store
	exposed []string // non-loopback listeners without TLS (with --insecure)
	log     *slog.Logger
	// hup is subscribed in setup, before anything serves, so a SIGHUP
	// never meets the default action (exit) while the service runs.
	hup chan os.Signal
}

func (s securityServe) setup(c *serveConfig, reg prometheus.Registerer, log *slog.Logger) (*securityRuntime, error) {
	if s.insecureWarnEvery <= 0 {
		s.insecureWarnEvery = time.Hour
	}
	rt := &securityRuntime{s: s, log: log}
	useTLS := s.tlsCert != "" || s.tlsKey != ""
	if useTLS {
		rt.tls = &server.TLSFiles{CertFile: s.tlsCert, KeyFile: s.tlsKey, ClientCAFile: s.tlsClientCA}
		if err := rt.tls.Reload(); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
	} else if s.tlsClientCA != "" {
		return nil, fmt.Errorf("%w: --tls-client-ca needs --tls-cert and --tls-key", errUsage)
	}
	if s.authz != "" && s.tlsClientCA == "" {
		return nil, fmt.Errorf("%w: --authz gives roles to client certificates: it needs --tls-client-ca", errUsage)
	}
	if s.keystoneURL != "" && !useTLS {
		return nil, fmt.Errorf("%w: --keystone-url: tokens must not cross the network in clear: it needs --tls-cert and --tls-key", errUsage)
	}
	if s.authz != "" || s.keystoneURL != "" {
		var names server.RoleNames
		if s.authz != "" {
			n, err := server.LoadRoleNames(s.authz)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errUsage, err)
			}
			names = n
		}
		var kv server.TokenValidator
		if s.keystoneURL != "" {
			v, err := openstack.NewTokenValidator(s.keystoneURL, nil)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errUsage, err)
			}
			kv = keystoneAdapter{v}
		}
		rt.authz = server.NewAuthorizer(names, kv, log, reg)
	}
	if !useTLS {
		listeners := map[string]string{"--grpc-addr": c.grpcAddr, "--http-addr": c.httpAddr}
		if c.natsURL == "embedded" && !c.natsSecured() {
			listeners["--nats-addr"] = c.natsAddr
		}
		for _, flagName := range []string{"--grpc-addr", "--http-addr", "--nats-addr"} {
			addr, ok := listeners[flagName]
			if ok && !loopback(addr) {
				rt.exposed = append(rt.exposed, flagName+" "+addr)
			}
		}
		if len(rt.exposed) > 0 && !s.insecure {
			return nil, fmt.Errorf("%w: %s listens beyond this machine without TLS: give --tls-cert and --tls-key (see docs/security.md), or --insecure to accept it", errUsage, strings.Join(rt.exposed, ", "))
		}
	}
	rt.hup = make(chan os.Signal, 1)
	signal.Notify(rt.hup, syscall.SIGHUP)
	if rt.authz == nil && useTLS {
		log.Info("TLS on; no --authz or --keystone-url: every client that completes the handshake may call every method")
	}
	return rt, nil
}

// serverOptions are the gRPC server's credentials and the authorization
// interceptors (which run after the metrics interceptor, so refusals are
// counted by code there too).
func (rt *securityRuntime) serverOptions() (creds []grpc.ServerOption, unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor) {
	if rt.tls != nil {
		creds = append(creds, grpc.Creds(credentials.NewTLS(rt.tls.Config(true))))
	}
	unary = append(unary, rt.audit.Unary())
	stream = append(stream, rt.audit.Stream())
	if rt.authz != nil {
		unary = append(unary, rt.authz.Unary())
		stream = append(stream, rt.authz.Stream())
	}
	return creds, unary, stream
}

// httpTLS is the HTTP listener's TLS config (nil: plain HTTP). A client
// certificate is verified when given, not required: a scraper may have none,
// and /metrics and /healthz change nothing.
func (rt *securityRuntime) httpTLS() *tls.Config {
	if rt.tls == nil {
		return nil
	}
	return rt.tls.Config(false)
}

// run reloads certificates and role names on SIGHUP, and repeats the
// --insecure warning, until ctx ends.
func (rt *securityRuntime) run(ctx context.Context) error {
	warn := func() {
		if len(rt.exposed) > 0 {
			rt.log.Warn("--insecure: listening beyond this machine without TLS; anyone who can reach it can change the knowledge base and run plans", "listeners", strings.Join(rt.exposed, ", "))
		}
	}
	warn()
	t := time.NewTicker(rt.s.insecureWarnEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			warn()
		case <-rt.hup:
			rt.reload()
		}
	}
}

// openAudit opens audit.db beside the KB (after the KB, whose lock error
// is the one a second service on the same files should see).
func (rt *securityRuntime) openAudit(dbPath string) error {
	st, err := audit.Open(filepath.Join(filepath.Dir(dbPath), "audit.db"), rt.s.auditKeep)
	if err != nil {
		return err
	}
	rt.store, rt.audit = st, server.NewAuditor(st, rt.log)
	return nil
}

// close stops the SIGHUP subscription and closes the audit file.
func (rt *securityRuntime) close() {
	signal.Stop(rt.hup)
	if rt.store != nil {
		if err := rt.store.Close(); err != nil {
			rt.log.Error("audit file close", "err", err)
		}
	}
}

func (rt *securityRuntime) reload() {
	if rt.tls != nil {
		if err := rt.tls.Reload(); err != nil {
			rt.log.Error("SIGHUP: TLS files not reloaded; the previous ones stay in use", "err", err)
		} else {
			rt.log.Info("SIGHUP: TLS certificate reloaded", "cert", rt.tls.CertFile)
		}
	}
	if rt.authz != nil && rt.s.authz != "" {
		n, err := server.LoadRoleNames(rt.s.authz)
		if err != nil {
			rt.log.Error("SIGHUP: --authz not reloaded; the previous roles stay in force", "err", err)
			return
		}
		rt.authz.SetNames(n)
		rt.log.Info("SIGHUP: roles reloaded", "authz", rt.s.authz, "names", len(n))
	}
}

// loopback reports whether addr (host:port) listens on this machine only.
// An empty host or 0.0.0.0/:: listens everywhere; a name other than
// localhost is taken as reachable from outside.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

type keystoneAdapter struct{ v *openstack.TokenValidator }

func (k keystoneAdapter) Validate(ctx context.Context, token string) (server.KeystoneToken, error) {
	t, err := k.v.Validate(ctx, token)
	return server.KeystoneToken{User: t.User, Project: t.Project, Roles: t.Roles, Expires: t.Expires}, err
}
