package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// keystone runs a real Keystone (Debian's python3-keystone, sqlite, fernet
// tokens) with scripts/keystone-local.sh and returns its /v3 URL. Users:
// admin (role admin), operator (ecrae-operator), viewer (reader).
func keystone(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("keystone-wsgi-public"); err != nil {
		t.Skip("keystone-wsgi-public not installed (Debian python3-keystone; make test installs it)")
	}
	script, err := filepath.Abs("../../scripts/keystone-local.sh")
	if err != nil {
		t.Fatal(err)
	}
	ksDir := t.TempDir()
	env := append(os.Environ(), "KS_DIR="+ksDir)
	run := func(step string) {
		cmd := exec.Command("bash", script, step)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("keystone-local.sh %s: %v\n%s", step, err, out)
		}
	}
	t.Cleanup(func() { run("stop") })
	run("setup")
	run("start")
	run("users")
	port, err := os.ReadFile(filepath.Join(ksDir, "port"))
	if err != nil {
		t.Fatal(err)
	}
	return "http://127.0.0.1:" + strings.TrimSpace(string(port)) + "/v3"
}

// keystoneToken issues a project-scoped token for user.
func keystoneToken(t *testing.T, url, user, password, project string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "domain": map[string]string{"id": "default"}, "password": password}}},
		"scope": map[string]any{"project": map[string]any{"name": project, "domain": map[string]string{"id": "default"}}},
	}})
	resp, err := http.Post(url+"/auth/tokens", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok := resp.Header.Get("X-Subject-Token")
	if resp.StatusCode != 201 || tok == "" {
		t.Fatalf("token for %s: HTTP %d", user, resp.StatusCode)
	}
	return tok
}

// TestKeystoneTokenRoles: against a real Keystone, an x-auth-token gives
// the role its Keystone roles map to: admin and ecrae-operator may import
// the KB, a reader may not even read it, a bogus token is Unauthenticated.
func TestKeystoneTokenRoles(t *testing.T) {
	url := keystone(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ecrae")
	cert, key, _ := ca.issue("server", "ecrae-server", []string{"localhost"})
	a := freeAddrs(t, 3)
	c := serveConfig{grpcAddr: a[0], httpAddr: a[1], natsURL: "embedded", natsAddr: a[2],
		dbPath: filepath.Join(dir, "ecrae.db"), defaultTag: "default", shutdownGrace: 5 * time.Second,
		security: securityServe{tlsCert: cert, tlsKey: key, keystoneURL: url}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, nil, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHTTPS(t, ca, c.httpAddr, done)
	kbFile := filepath.Join(dir, "lab.yaml")
	writeFile(t, kbFile, labHostsYAML(t, c))

	as := func(token string, args ...string) error {
		t.Setenv("ECRAE_TEST_TOKEN", token)
		_, err := cli(t, append(args, "--server="+c.grpcAddr, "--tls-ca="+ca.File, "--token-env=ECRAE_TEST_TOKEN", "--timeout=20s")...)
		return err
	}
	admin := keystoneToken(t, url, "admin", "admin-secret", "admin")
	operator := keystoneToken(t, url, "operator", "user-secret", "ecrae")
	viewer := keystoneToken(t, url, "viewer", "user-secret", "ecrae")
	for name, tok := range map[string]string{"admin": admin, "ecrae-operator": operator} {
		if err := as(tok, "kb", "import", kbFile); err != nil {
			t.Errorf("%s: kb import: %v", name, err)
		}
	}
	if err := as(viewer, "kb", "show"); statusOf(err).Code() != codes.PermissionDenied {
		t.Errorf("reader: kb show: want PermissionDenied, got %v", err)
	}
	if err := as("gAAAAbogus", "kb", "show"); statusOf(err).Code() != codes.Unauthenticated {
		t.Errorf("bogus token: want Unauthenticated, got %v", err)
	}
	if err := as("", "kb", "show"); statusOf(err).Code() != codes.Unauthenticated {
		t.Errorf("no token: want Unauthenticated, got %v", err)
	}
	t.Setenv("ECRAE_TEST_TOKEN", admin)
	out, err := cli(t, "audit", "--server="+c.grpcAddr, "--tls-ca="+ca.File, "--token-env=ECRAE_TEST_TOKEN")
	if err != nil || !strings.Contains(out, "keystone:operator@ecrae") || !strings.Contains(out, "keystone:admin@admin") {
		t.Errorf("audit: %v\n%s", err, out)
	}
}

func waitHTTPS(t *testing.T, ca *testCA, addr string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := tryHTTPS(ca, "https://"+addr+"/healthz")
		if err == nil && strings.TrimSpace(body) == "ok" {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become healthy over HTTPS: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
