package power

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/internal/testnet"
)

// startFakeBMC runs pyghmi's fakebmc (Debian python3-pyghmi; user admin,
// password "password", chassis off at start) on a free loopback UDP port:
// a real RMCP+ peer. It is stopped with the test.
func startFakeBMC(t *testing.T) int {
	t.Helper()
	path, err := exec.LookPath("fakebmc")
	if err != nil {
		t.Skip("fakebmc not installed (scripts/install-test-deps.sh installs python3-pyghmi)")
	}
	port := testnet.FreeUDPPort(t)
	cmd := exec.Command(path, "--port", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Ready when a session opens: poll with ipmitool-free Go, generous deadline.
	b := &ipmiBackend{ep: Endpoint{Host: "127.0.0.1", Port: port}, cred: Credentials{"admin", "password"}, timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := b.Status(ctx)
		cancel()
		if err == nil {
			return port
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakebmc on port %d did not answer: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ipmitool asks the BMC with Debian's ipmitool: an independent client.
func ipmitool(t *testing.T, port int, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("ipmitool")
	if err != nil {
		t.Skip("ipmitool not installed")
	}
	all := append([]string{"-I", "lanplus", "-H", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "admin", "-P", "password"}, args...)
	out, err := exec.Command(path, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}
