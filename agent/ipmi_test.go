package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/internal/testnet"
)

// startDCMIBMC runs pyghmi's fake BMC (Debian python3-pyghmi), extended in
// testdata/dcmibmc.py to answer DCMI Get Power Reading, on a free UDP
// port: a real RMCP+ peer.
func startDCMIBMC(t *testing.T, watts int) int {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import pyghmi.ipmi.bmc").Run(); err != nil {
		t.Skip("python3-pyghmi is not installed (make test installs it)")
	}
	port := testnet.FreeUDPPort(t)
	script, _ := filepath.Abs(filepath.Join("testdata", "dcmibmc.py"))
	cmd := exec.Command("/usr/bin/python3", script, strconv.Itoa(port), strconv.Itoa(watts))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return port
}

func TestIPMIDCMI(t *testing.T) {
	port := startDCMIBMC(t, 212)
	src := NewIPMI("127.0.0.1", port, Credentials{Username: "admin", Password: "password"})
	// The peer needs a moment to bind: poll with a generous deadline.
	deadline := time.Now().Add(30 * time.Second)
	var w float64
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w, err = src.Watts(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("DCMI power reading: %v", err)
	}
	if w != 212 { // the peer's average
		t.Errorf("%v W, want 212", w)
	}

	bad := NewIPMI("127.0.0.1", port, Credentials{Username: "admin", Password: "wrong"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = bad.Watts(ctx)
	if err == nil {
		t.Fatal("wrong password: no error")
	}
	if want := "ipmi://127.0.0.1:" + strconv.Itoa(port); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the endpoint %s", err, want)
	}
}

func TestParseBMC(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port int
		err  bool
	}{
		{"", "", 0, false},
		{"ipmi://10.0.0.5", "10.0.0.5", 623, false},
		{"ipmi://bmc-12:6230", "bmc-12", 6230, false},
		{"ipmi://[::1]:623", "::1", 623, false},
		{"http://10.0.0.5", "", 0, true},
		{"ipmi://h:99999", "", 0, true},
		{"ipmi://h/x", "", 0, true},
		{"ipmi://:623", "", 0, true},
		{"ipmi://admin:pw@h", "", 0, true}, // credentials belong in --bmc-credentials
	} {
		h, p, err := ParseBMC(c.in)
		if (err != nil) != c.err || h != c.host || p != c.port {
			t.Errorf("ParseBMC(%q) = %q, %d, %v", c.in, h, p, err)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	c, err := ParseCredentials([]byte("username: admin\npassword: 'p:w#1'\n"))
	if err != nil || c != (Credentials{"admin", "p:w#1"}) {
		t.Errorf("%+v, %v", c, err)
	}
	for _, bad := range []string{"password: x\n", "- a\n- b\n", "username: [\n"} {
		if _, err := ParseCredentials([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseBMC(f *testing.F) {
	for _, s := range []string{"", "ipmi://10.0.0.5", "ipmi://bmc-12:6230", "ipmi://[::1]:623", "http://x", "ipmi://h:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, p, err := ParseBMC(s)
		if err == nil && s != "" && (h == "" || p <= 0 || p > 65535) {
			t.Fatalf("%q accepted as %q:%d", s, h, p)
		}
	})
}

func FuzzParseCredentials(f *testing.F) {
	for _, s := range []string{"username: admin\npassword: x\n", "password: x\n", "username: [\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCredentials(b); err == nil && c.Username == "" {
			t.Fatal("accepted without a username")
		}
	})
}
