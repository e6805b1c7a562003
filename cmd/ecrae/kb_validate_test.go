package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// kb validate accepts the shipped lab-hosts.yaml that import accepts,
// reports every invalid entity with a suggestion, and --merge checks a
// partial file against the running service's KB.
func TestKBValidate(t *testing.T) {
	out, err := cli(t, "kb", "validate", "../../examples/lab-hosts.yaml")
	if err != nil || !strings.Contains(out, "valid, merged into the default KB") || !strings.Contains(out, "5 hosts") {
		t.Fatalf("lab-hosts: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "hosts:\n  - {name: a, architecture: ibm-x3550-m3-x567}\n  - {name: b, architecture: nope}\n  - {name: c, architecture: dell-r740-xeon-8280}\n")
	out, err = cli(t, "kb", "validate", bad)
	want := []string{
		`bad.yaml:2: hosts[0].architecture: architecture "ibm-x3550-m3-x567" does not exist (did you mean "ibm-x3550-m3-x5670"?)`,
		`bad.yaml:3: hosts[1].architecture: architecture "nope" does not exist`,
	}
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), "2 errors in all") {
		t.Fatalf("bad: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("lacks %q:\n%s", w, out)
		}
	}
	// Every problem of one entity, each on its own line.
	writeFile(t, bad, "hosts:\n  - name: a\n    architecture: nope\n    power_cap_watts: -1\n    power: wol://a\n")
	out, err = cli(t, "kb", "validate", bad)
	want = []string{
		`bad.yaml:3: hosts[0].architecture: architecture "nope" does not exist`,
		`bad.yaml:4: hosts[0].power_cap_watts: must be >= 0, got -1`,
		`bad.yaml:5: hosts[0].power: "wol://a": scheme must be ipmi, redfish or ironic`,
	}
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), "3 errors in all") || !strings.Contains(err.Error(), want[0]) {
		t.Fatalf("one host, three problems: %v\n%s", err, out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("lacks %q:\n%s", w, out)
		}
	}
	if _, err = cli(t, "kb", "validate", "--replace", "../../examples/lab-hosts.yaml"); err == nil || !strings.Contains(err.Error(), "5 errors in all, standing alone") {
		t.Errorf("--replace of a partial file: %v", err)
	}

	noCloud(t)
	c, _ := startServe(t, t.TempDir())
	srv := "--server=" + c.grpcAddr
	mine := filepath.Join(dir, "mine.yaml")
	writeFile(t, mine, "architectures:\n  - {name: my-box, isa: x86_64, cpu: c, sockets: 1, cores: 2, threads: 4, core_mhz: 2000, memory_mb: 1024, disk_gb: 10, power_watts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}\n")
	if out, err := cli(t, "kb", "import", mine, srv); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	uses := filepath.Join(dir, "uses.yaml")
	writeFile(t, uses, "hosts:\n  - {name: h, architecture: my-box}\n")
	if out, err := cli(t, "kb", "validate", uses); err == nil {
		t.Errorf("offline, my-box is not in the default KB: %s", out)
	}
	if out, err := cli(t, "kb", "validate", "--merge", uses, srv); err != nil || !strings.Contains(out, "valid, merged into the running KB") {
		t.Errorf("--merge: %v\n%s", err, out)
	}
}
