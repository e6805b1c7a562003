package agent

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnit checks deploy/ecrae-agent.service: its sections and
// command, then systemd's own verdict (systemd-analyze verify, which also
// wants the command to exist: the copy points it at this test binary). A
// warning is a failure: systemd only warns about an unknown key or a bad
// value, and ignores it.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "ecrae-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			cur = map[string]string{}
			sections[line[1:len(line)-1]] = cur
		case cur == nil:
			t.Fatalf("line %d: %q before any section", n, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %d: %q is not key=value", n, line)
			}
			cur[k] = v
		}
	}
	for _, s := range []string{"Unit", "Service", "Install"} {
		if sections[s] == nil {
			t.Errorf("no [%s] section", s)
		}
	}
	const cmd = "/usr/local/bin/ecrae agent"
	if got := sections["Service"]["ExecStart"]; !strings.HasPrefix(got, cmd) {
		t.Errorf("ExecStart=%q, want %q ...", got, cmd)
	}
	if sections["Install"]["WantedBy"] != "multi-user.target" {
		t.Errorf("WantedBy=%q", sections["Install"]["WantedBy"])
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: sections checked only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ecrae-agent.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/ecrae"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "ecrae-agent.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}
