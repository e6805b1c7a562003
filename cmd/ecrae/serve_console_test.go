package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestServeConsole: serve mounts the console at / beside /healthz and
// /metrics, with the rebalance service behind its plan pages.
func TestServeConsole(t *testing.T) {
	c, _ := startServe(t, t.TempDir())
	for path, want := range map[string]string{
		"/":        "Fleet power over time",
		"/plans":   "No plans stored.",
		"/kb":      `id="kb-revision"`,
		"/power":   "No power actions yet.", // the power manager is wired in
		"/healthz": "ok",
	} {
		resp, err := http.Get("http://" + c.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d, no %q", path, resp.StatusCode, want)
		}
	}
}

// TestServeConsoleRoles: with client certificates and roles, the console
// reads for a scheduler's certificate, plans only for an operator's, and
// answers nothing without a certificate.
func TestServeConsoleRoles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ecrae")
	c := securedServe(t, dir, ca, "operator: [ops]\nscheduler: [nova-scheduler]\n")
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	browser := func(cn string) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if cn != "" {
			cert, key, _ := ca.issue(cn, cn, nil)
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: cfg},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	base := "https://" + c.httpAddr
	tokenRE := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	planAs := func(b *http.Client) (int, string) {
		resp, err := b.Get(base + "/confirm?action=plan")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tok := tokenRE.FindSubmatch(page)
		if tok == nil {
			t.Fatalf("no token:\n%s", page)
		}
		resp, err = b.PostForm(base+"/plans", url.Values{"csrf": {string(tok[1])}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	get := func(b *http.Client, path string) int {
		resp, err := b.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ops, sched, none := browser("ops"), browser("nova-scheduler"), browser("")
	if code := get(sched, "/hosts"); code != 200 {
		t.Errorf("scheduler GET /hosts: %d", code)
	}
	if code, body := planAs(sched); code != http.StatusForbidden || !strings.Contains(body, "PlanRebalance is not allowed for role scheduler") {
		t.Errorf("scheduler plans: %d\n%s", code, body)
	}
	if code, body := planAs(ops); code == http.StatusForbidden || code == http.StatusUnauthorized || code >= 500 {
		t.Errorf("operator plans: %d\n%s", code, body)
	}
	if code := get(none, "/hosts"); code != http.StatusUnauthorized {
		t.Errorf("no certificate GET /hosts: %d", code)
	}
}
