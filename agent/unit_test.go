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

// TestSystemdUnitContainers: the containers drop-in lifts each restriction
// of the base unit that CRIU and LXC/podman trip over, and the unit with
// the drop-in applied (its lines appended, as systemd merges them) passes
// systemd-analyze verify. Only checked here, not run under systemd: this
// machine has no systemd as PID 1.
func TestSystemdUnitContainers(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "ecrae-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	dropIn, err := os.ReadFile(filepath.Join("..", "deploy", "ecrae-agent-containers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, l := range strings.Split(string(dropIn), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(k, "#") {
			set[k] = v
		}
	}
	for k, want := range map[string]string{
		"ProtectControlGroups":    "no", // restore creates cgroups
		"RestrictAddressFamilies": "",   // empty resets the list: netlink, packet sockets
		"MemoryDenyWriteExecute":  "no", // inherited by criu restore
		"KillMode":                "process",
		"StateDirectory":          "ecrae-agent", // the agent's --state-dir default
	} {
		if got, ok := set[k]; !ok || got != want {
			t.Errorf("%s=%q (set %v), want %q", k, got, ok, want)
		}
	}
	if !strings.Contains(set["ReadWritePaths"], "/var/lib/lxc") {
		t.Errorf("ReadWritePaths=%q: the agent's --lxcpath default /var/lib/lxc must be writable", set["ReadWritePaths"])
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: keys checked only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	merged := append(bytes.ReplaceAll(unit, []byte("/usr/local/bin/ecrae"), []byte(self)), dropIn...)
	path := filepath.Join(t.TempDir(), "ecrae-agent.service")
	if err := os.WriteFile(path, merged, 0o644); err != nil {
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
