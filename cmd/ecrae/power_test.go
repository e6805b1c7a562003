package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ecrae/ecrae/internal/testnet"
)

// fakeBMC runs pyghmi's fakebmc (Debian python3-pyghmi; admin/password,
// chassis off at start) on a free loopback UDP port, and returns a
// function that asks it with Debian's ipmitool.
func fakeBMC(t *testing.T) (port int, ipmitool func(args ...string) string) {
	t.Helper()
	fb, err1 := exec.LookPath("fakebmc")
	it, err2 := exec.LookPath("ipmitool")
	if err1 != nil || err2 != nil {
		t.Skip("fakebmc or ipmitool not installed (scripts/install-test-deps.sh)")
	}
	port = testnet.FreeUDPPort(t)
	cmd := exec.Command(fb, "--port", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ask := func(args ...string) (string, error) {
		all := append([]string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "admin", "-P", "password", "-N", "1", "-R", "1"}, args...)
		out, err := exec.Command(it, all...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := ask("power", "status"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fakebmc did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return port, func(args ...string) string {
		t.Helper()
		out, err := ask(args...)
		if err != nil {
			t.Fatalf("ipmitool %v: %v\n%s", args, err, out)
		}
		return out
	}
}

func TestPowerCommandsEndToEnd(t *testing.T) {
	port, ipmitool := fakeBMC(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "bmc.yaml")
	writeFile(t, creds, "default: {username: admin, password: wrong}\n")
	c, _ := startServe(t, dir, func(c *serveConfig) { c.power.credentials = creds })
	srv := "--server=" + c.grpcAddr
	ep := fmt.Sprintf("ipmi://127.0.0.1:%d", port)

	// The endpoint goes in the KB entry; the architecture stays.
	if out, err := cli(t, "kb", "host", "set", "c1", "--arch", "dell-r7525-epyc-7702", srv); err != nil {
		t.Fatalf("kb host set: %v\n%s", err, out)
	}
	if out, err := cli(t, "kb", "host", "set", "c1", "--power", ep, srv); err != nil {
		t.Fatalf("kb host set --power: %v\n%s", err, out)
	}
	out, err := cli(t, "kb", "show", srv)
	if err != nil || !strings.Contains(out, "dell-r7525-epyc-7702") || !strings.Contains(out, ep) {
		t.Fatalf("kb show: %v\n%s", err, out)
	}
	// Credentials never go in the KB.
	if out, err := cli(t, "kb", "host", "set", "c1", "--power", "ipmi://admin:pw@127.0.0.1:1", srv); err == nil || !strings.Contains(out+err.Error(), "must not carry credentials") {
		t.Errorf("credentials in the endpoint: %v\n%s", err, out)
	}
	// A wrong password: unknown, with the host and endpoint named.
	out, err = cli(t, "power", "status", srv)
	if err != nil || !strings.Contains(out, "unknown") || !strings.Contains(out, "host c1 ("+ep+")") {
		t.Fatalf("status with a wrong password: %v\n%s", err, out)
	}
	out, err = cli(t, "power", "on", "c1", srv)
	if err == nil || !strings.Contains(err.Error(), "host c1 ("+ep+")") || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("on with a wrong password: %v\n%s", err, out)
	}
	// SIGHUP reloads the credentials file.
	writeFile(t, creds, "hosts: {c1: {username: admin, password: password}}\n")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = cli(t, "power", "status", "c1", srv)
		if err == nil && strings.Contains(out, "c1    off") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("credentials not reloaded on SIGHUP: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := cli(t, "power", "on", "c1", srv); err != nil || !strings.Contains(out, "on") {
		t.Fatalf("power on: %v\n%s", err, out)
	}
	if got := ipmitool("power", "status"); got != "Chassis Power is on" {
		t.Errorf("ipmitool after power on: %q", got)
	}
	// Off needs --yes; then it is refused: the live view has never heard
	// of c1 (and serve has no OpenStack to disable its service).
	if _, err := cli(t, "power", "off", "c1", srv); err == nil || !strings.Contains(err.Error(), "needs --yes") {
		t.Errorf("off without --yes: %v", err)
	}
	if out, err := cli(t, "power", "off", "c1", "--yes", srv); err == nil || !strings.Contains(err.Error(), "FailedPrecondition") || !strings.Contains(err.Error(), "not in the live view") {
		t.Errorf("off of an unknown host: %v\n%s", err, out)
	}
	if got := ipmitool("power", "status"); got != "Chassis Power is on" {
		t.Errorf("ipmitool after a refused off: %q", got)
	}
	out, err = cli(t, "power", "history", "c1", srv)
	if err != nil || !strings.Contains(out, "refused") || !strings.Contains(out, " on ") || !strings.Contains(out, "failed") {
		t.Errorf("history: %v\n%s", err, out)
	}
	if out, err := cli(t, "power", "history", "--json", srv); err != nil || !strings.Contains(strings.Join(strings.Fields(out), " "), `"action": "refused"`) {
		t.Errorf("history --json: %v\n%s", err, out)
	}
	if _, err := cli(t, "power", "status", "nope", srv); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("status of a host without an endpoint: %v", err)
	}
}

func TestServePowerFlagsAreChecked(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--power-policy=sometimes", "--power-policy"},
		{"--power-headroom=hosts=-2", "--power-headroom"},
		{"--power-credentials=/nonexistent/bmc.yaml", "power credentials"},
	} {
		dir := t.TempDir()
		_, err := cli(t, "serve", tc.args, "--db="+filepath.Join(dir, "e.db"), "--grpc-addr=127.0.0.1:0", "--http-addr=127.0.0.1:0", "--nats-addr=127.0.0.1:0")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %s: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}
