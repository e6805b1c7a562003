package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// securedServe starts serve with TLS on gRPC and HTTP, client certificates
// signed by ca, and the roles in authz; it waits for /healthz over HTTPS.
func securedServe(t *testing.T, dir string, ca *testCA, authz string) serveConfig {
	t.Helper()
	cert, key, _ := ca.issue("server", "ecrae-server", []string{"localhost"})
	authzFile := filepath.Join(dir, "authz.yaml")
	writeFile(t, authzFile, authz)
	a := freeAddrs(t, 3)
	c := serveConfig{grpcAddr: a[0], httpAddr: a[1], natsURL: "embedded", natsAddr: a[2],
		dbPath: filepath.Join(dir, "ecrae.db"), defaultTag: "default", shutdownGrace: 5 * time.Second,
		security: securityServe{tlsCert: cert, tlsKey: key, tlsClientCA: ca.File, authz: authzFile, insecureWarnEvery: time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, nil, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitHTTPS(t, ca, c.httpAddr, done)
	return c
}

// TestMutualTLSAndRoles: with a client CA every client needs a certificate
// signed by it; the certificate's name gives the role, and each role may
// call only its methods.
func TestMutualTLSAndRoles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ecrae")
	c := securedServe(t, dir, ca, "operator: [ops.example.org]\nscheduler: [nova-scheduler]\nagent: [spiffe://cloud/agent/compute1]\n")
	srv := "--server=" + c.grpcAddr
	schedCert, schedKey, _ := ca.issue("sched", "nova-scheduler", nil)
	opsCert, opsKey, _ := ca.issue("ops", "alice", []string{"ops.example.org"})
	agentCert, agentKey, _ := ca.issue("agent", "compute1", nil, "spiffe://cloud/agent/compute1")
	noRoleCert, noRoleKey, _ := ca.issue("norole", "mallory", nil)
	other := newTestCA(t, dir, "other")
	foreignCert, foreignKey, _ := other.issue("foreign", "nova-scheduler", nil)
	as := func(cert, key string) []string {
		return []string{srv, "--tls-ca=" + ca.File, "--tls-cert=" + cert, "--tls-key=" + key, "--timeout=5s"}
	}
	kbFile := filepath.Join(dir, "lab.yaml")
	writeFile(t, kbFile, labHostsYAML(t, c))

	// scheduler (CN): reads and placement, not KB writes.
	if out, err := cli(t, append([]string{"kb", "show"}, as(schedCert, schedKey)...)...); err != nil {
		t.Fatalf("scheduler kb show: %v\n%s", err, out)
	}
	if out, err := cli(t, append([]string{"score", "--vcpus=2", "--ram-mb=2048", "--hosts=../../examples/nova-hosts.yaml"}, as(schedCert, schedKey)...)...); err != nil {
		t.Fatalf("scheduler score: %v\n%s", err, out)
	}
	_, err := cli(t, append([]string{"kb", "import", kbFile}, as(schedCert, schedKey)...)...)
	if st := statusOf(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "ImportKnowledgeBase") || !strings.Contains(st.Message(), "role scheduler") {
		t.Fatalf("scheduler kb import: want PermissionDenied naming the method and role, got %v", err)
	}
	// operator (DNS SAN): KB writes.
	if out, err := cli(t, append([]string{"kb", "import", kbFile}, as(opsCert, opsKey)...)...); err != nil {
		t.Fatalf("operator kb import: %v\n%s", err, out)
	}
	// The streamed host list (`ecrae hosts`) is decided by the same table:
	// a scheduler's, not an agent's.
	if out, err := cli(t, append([]string{"hosts"}, as(schedCert, schedKey)...)...); err != nil {
		t.Fatalf("scheduler hosts: %v\n%s", err, out)
	}
	if _, err := cli(t, append([]string{"hosts"}, as(agentCert, agentKey)...)...); statusOf(err).Code() != codes.PermissionDenied || !strings.Contains(statusOf(err).Message(), "StreamLiveHosts") {
		t.Errorf("agent hosts: want PermissionDenied naming StreamLiveHosts, got %v", err)
	}
	// agent (URI SAN) and a certificate with no role: nothing but health.
	for name, certKey := range map[string][2]string{"agent": {agentCert, agentKey}, "no role": {noRoleCert, noRoleKey}} {
		_, err := cli(t, append([]string{"kb", "show"}, as(certKey[0], certKey[1])...)...)
		if st := statusOf(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "role agent") {
			t.Errorf("%s kb show: want PermissionDenied for role agent, got %v", name, err)
		}
	}
	// No certificate, a certificate of another CA, or no TLS at all: the
	// handshake fails.
	for name, args := range map[string][]string{
		"no client certificate": {srv, "--tls-ca=" + ca.File, "--timeout=3s"},
		"foreign CA":            as(foreignCert, foreignKey),
		"plaintext":             {srv, "--timeout=3s"},
	} {
		if _, err := cli(t, append([]string{"kb", "show"}, args...)...); statusOf(err).Code() != codes.Unavailable {
			t.Errorf("%s: want Unavailable (handshake refused), got %v", name, err)
		}
	}
	// The audit trail has the refused and the allowed import, with who.
	out, err := cli(t, append([]string{"audit", "--json"}, as(opsCert, opsKey)...)...)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	out = regexp.MustCompile(`":\s+`).ReplaceAllString(out, `": `) // protojson varies its spacing
	for _, want := range []string{`"who": "cert:nova-scheduler"`, `"code": "PermissionDenied"`, `"who": "cert:ops.example.org"`, `"role": "operator"`, `"method": "/ecrae.v1.KnowledgeBaseService/ImportKnowledgeBase"`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
	if _, err := cli(t, append([]string{"audit"}, as(schedCert, schedKey)...)...); statusOf(err).Code() != codes.PermissionDenied {
		t.Errorf("a scheduler read the audit trail: %v", err)
	}
	// Refusals are counted.
	metrics := httpsGet(t, ca, "https://"+c.httpAddr+"/metrics")
	if !strings.Contains(metrics, `ecrae_grpc_refused_total{code="PermissionDenied",method="/ecrae.v1.KnowledgeBaseService/ImportKnowledgeBase",role="scheduler"} 1`) {
		t.Errorf("refusal not counted:\n%s", grepLines(metrics, "ecrae_grpc_refused_total"))
	}
	// Streams are counted like unary calls, refused or not.
	for _, want := range []string{
		`ecrae_grpc_requests_total{code="OK",method="/ecrae.v1.HostViewService/StreamLiveHosts"} 1`,
		`ecrae_grpc_requests_total{code="PermissionDenied",method="/ecrae.v1.HostViewService/StreamLiveHosts"} 1`,
		`ecrae_grpc_refused_total{code="PermissionDenied",method="/ecrae.v1.HostViewService/StreamLiveHosts",role="agent"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("no %s in\n%s", want, grepLines(metrics, "StreamLiveHosts"))
		}
	}
}

// TestTLSReloadOnSIGHUP: a SIGHUP swaps in a rotated certificate for new
// handshakes while a connection made before keeps working.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ecrae")
	c := securedServe(t, dir, ca, "operator: [ops]\n")
	opsCert, opsKey, _ := ca.issue("ops", "ops", nil)
	cf := clientFlags{server: c.grpcAddr, timeout: 5 * time.Second, tlsCA: ca.File, tlsCert: opsCert, tlsKey: opsKey}
	conn, err := cf.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return conn.Invoke(ctx, "/ecrae.v1.KnowledgeBaseService/ListTags", &ecraev1.ListTagsRequest{}, &ecraev1.ListTagsResponse{})
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	before := servedSerial(t, ca, c.grpcAddr)
	_, _, rotated := ca.issue("server", "ecrae-server", []string{"localhost"}) // same files, new serial
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for servedSerial(t, ca, c.grpcAddr) != rotated {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %d after SIGHUP, want %d", before, rotated)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := call(); err != nil {
		t.Errorf("the connection made before the reload: %v", err)
	}
}

// TestNonLoopbackNeedsTLS: listening beyond loopback without TLS refuses to
// start (before the KB file is made) unless --insecure.
func TestNonLoopbackNeedsTLS(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--grpc-addr=0.0.0.0:0"}, "--grpc-addr 0.0.0.0:0 listens beyond this machine without TLS"},
		{[]string{"--http-addr=:0"}, "--http-addr :0"},
		{[]string{"--nats-addr=[::]:0"}, "--nats-addr [::]:0"},
		{[]string{"--tls-client-ca=x.pem"}, "--tls-client-ca needs --tls-cert"},
		{[]string{"--tls-cert=x.pem"}, "--tls-cert and --tls-key go together"},
	} {
		dir := t.TempDir()
		db := filepath.Join(dir, "ecrae.db")
		err := run(context.Background(), append([]string{"serve", "--db=" + db, "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--nats-addr=127.0.0.1:0"}, tc.args...), strings.NewReader(""), io.Discard, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: want usage error containing %q, got %v", tc.args, tc.wantErr, err)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("%v: the KB file was created before the flags were checked", tc.args)
		}
	}
	// --insecure accepts it, and says so.
	var sec securityServe
	sec.insecure, sec.insecureWarnEvery = true, time.Hour
	c := serveConfig{grpcAddr: "0.0.0.0:50051", httpAddr: "127.0.0.1:9180", natsURL: "embedded", natsAddr: "127.0.0.1:4222", dbPath: filepath.Join(t.TempDir(), "ecrae.db")}
	rt, err := sec.setup(&c, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.close()
	if len(rt.exposed) != 1 || rt.exposed[0] != "--grpc-addr 0.0.0.0:50051" {
		t.Errorf("exposed %v", rt.exposed)
	}
}

func statusOf(err error) *status.Status {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if st, ok := status.FromError(e); ok {
			return st
		}
	}
	return status.New(codes.OK, "")
}

func servedSerial(t *testing.T, ca *testCA, addr string) int64 {
	t.Helper()
	tc, err := server.ClientTLS(ca.File, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// In TLS 1.3 the client's side of the handshake ends before the server
	// checks the (missing) client certificate: enough to see the server's.
	conn, err := tls.Dial("tcp", addr, tc)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func httpsGet(t *testing.T, ca *testCA, url string) string {
	t.Helper()
	body, err := tryHTTPS(ca, url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func tryHTTPS(ca *testCA, url string) (string, error) {
	tc, err := server.ClientTLS(ca.File, "", "")
	if err != nil {
		return "", err
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return string(b), err
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestKBReplaceIsUndoable: a replace that wipes the KB is kept in the
// history; diff shows what a rollback brings back, rollback needs --yes.
func TestKBReplaceIsUndoable(t *testing.T) {
	dir := t.TempDir()
	c, _ := startServe(t, dir)
	srv := "--server=" + c.grpcAddr
	lab := filepath.Join(dir, "lab.yaml")
	writeFile(t, lab, labHostsYAML(t, c))
	if out, err := cli(t, "kb", "import", lab, srv); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	empty := filepath.Join(dir, "empty.yaml")
	writeFile(t, empty, "hosts: []\n")
	// Without --yes and nobody to ask: refused, naming --yes, after listing
	// what would go; nothing changes (still revision 3 below).
	out, err := cli(t, "kb", "import", empty, "--replace", srv)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "add --yes") || !strings.Contains(out, "  - host lab-1\n") {
		t.Fatalf("replace without --yes: %v\n%s", err, out)
	}
	// With --json the list goes to stderr: stdout is kept for the one JSON document.
	var jout, jerr bytes.Buffer
	err = run(context.Background(), []string{"kb", "import", empty, "--replace", "--json", srv}, strings.NewReader(""), &jout, &jerr)
	if exitCode(err) != exitUsage || jout.Len() != 0 || !strings.Contains(jerr.String(), "  - host lab-1\n") {
		t.Fatalf("replace --json without --yes: %v\nstdout %q\nstderr %q", err, jout.String(), jerr.String())
	}
	out, err = cli(t, "kb", "import", empty, "--replace", "--yes", srv)
	if err != nil {
		t.Fatalf("replace: %v\n%s", err, out)
	}
	// Seed (1→2), merge (2→3), replace (3→4).
	if !strings.Contains(out, "the KB is now revision 4 (undo: ecrae kb rollback 3 --yes)") {
		t.Errorf("replace output:\n%s", out)
	}
	out, err = cli(t, "kb", "history", srv)
	if err != nil || !strings.Contains(out, "import --replace") || !strings.Contains(out, "4 (current)") {
		t.Errorf("history: %v\n%s", err, out)
	}
	// The current revision (the KB replaced by an empty one) has its counts too.
	if !regexp.MustCompile(`(?m)^4 \(current\)\s+0\s+0\s+0\s+0\s+-\s+-$`).MatchString(out) {
		t.Errorf("history: the current row has no counts:\n%s", out)
	}
	out, err = cli(t, "kb", "diff", "3", srv)
	if err != nil || !strings.Contains(out, "+ host lab-1") {
		t.Errorf("diff: %v\n%s", err, out)
	}
	out, err = cli(t, "kb", "rollback", "3", srv)
	if !errors.Is(err, errUsage) || !strings.Contains(out, "+ host lab-2") {
		t.Errorf("rollback without --yes: %v\n%s", err, out)
	}
	if out, _ := cli(t, "kb", "show", srv); strings.Contains(out, "lab-1") {
		t.Fatalf("rollback without --yes changed the KB:\n%s", out)
	}
	if out, err := cli(t, "kb", "rollback", "3", "--yes", srv); err != nil || !strings.Contains(out, "now revision 5") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if out, _ := cli(t, "kb", "show", srv); !strings.Contains(out, "lab-1") || !strings.Contains(out, "aarch64") {
		t.Errorf("after rollback:\n%s", out)
	}
	if _, err := cli(t, "kb", "rollback", "999", "--yes", srv); statusOf(err).Code() != codes.NotFound {
		t.Errorf("rollback to an unknown revision: %v", err)
	}
	if _, err := cli(t, "kb", "diff", "x", srv); !errors.Is(err, errUsage) {
		t.Errorf("diff x: %v", err)
	}
}
