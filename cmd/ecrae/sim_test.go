package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeDay makes a trace folder of n VMs (288 samples each) whose CPU %
// waves through the day.
func writeDay(t *testing.T, root, name string, n int) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var b strings.Builder
		for k := range 288 {
			fmt.Fprintf(&b, "%d\n", 5+(i*11+k*3)%70)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("vm %02d", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSimJSONTableAndPlots(t *testing.T) {
	root := t.TempDir()
	day := writeDay(t, root, "day1", 16)
	out, err := cli(t, "sim", "--trace", day, "--policy", "lr-mmt", "--hosts", "12", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"energy_kwh", "migrations", "slatah", "pdm", "slav", "esv", "host_shutdowns", "vms", "hosts", "seconds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, out)
		}
	}
	if got["vms"] != 16.0 || got["hosts"] != 12.0 || got["policy"] != "lr-mmt" || got["mode"] != "cloudsim" {
		t.Errorf("JSON %s", out)
	}
	if _, ok := got["series"]; ok {
		t.Error("series without --series")
	}
	// --copies: the day's VMs twice over.
	out, err = cli(t, "sim", "--trace", day, "--policy", "lr-mmt", "--hosts", "24", "--copies", "2", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["vms"] != 32.0 || got["hosts"] != 24.0 {
		t.Errorf("--copies 2: %v %s", err, out)
	}

	svg, pngFile := filepath.Join(root, "p.svg"), filepath.Join(root, "p.png")
	out, err = cli(t, "sim", "--trace", day, "--policy", "ecrae", "--hosts", "12", "--plot", svg)
	if err != nil || !strings.Contains(out, "energy") || !strings.Contains(out, "SLATAH") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(b), "<svg") {
		t.Fatalf("svg: %v", err)
	}
	if _, err := cli(t, "sim", "--trace", day, "--policy", "dvfs", "--hosts", "12", "--plot", pngFile); err != nil {
		t.Fatal(err)
	}
	// --compare --plot: the policies on one chart.
	both := filepath.Join(root, "compare.svg")
	if out, err := cli(t, "sim", "--compare", "--policies", "npa,ecrae", "--trace", day, "--hosts", "12", "--plot", both); err != nil {
		t.Fatalf("compare --plot: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(both); err != nil || !strings.Contains(string(b), "2 policies on") || strings.Count(string(b), "<polyline") != 4 {
		t.Fatalf("compare svg: %v\n%s", err, b)
	}
	if _, err := cli(t, "sim", "--compare", "--trace", day, "--trace", day, "--plot", both); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "give one --trace") {
		t.Errorf("compare --plot of two days: %v", err)
	}
	f, err := os.Open(pngFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("png: %v", err)
	}
}

func TestSimCompare(t *testing.T) {
	root := t.TempDir()
	d1 := writeDay(t, root, "d1", 12)
	d2 := writeDay(t, root, "d2", 8)
	// A VM-order folder: d1 reversed; d2 in name order.
	orders := filepath.Join(root, "order")
	if err := os.MkdirAll(orders, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, day := range []struct {
		name string
		n    int
		rev  bool
	}{{"d1", 12, true}, {"d2", 8, false}} {
		var b strings.Builder
		b.WriteString("# index name mips\n")
		for i := range day.n {
			j := i
			if day.rev {
				j = day.n - 1 - i
			}
			fmt.Fprintf(&b, "%d vm %02d 1000\n", i, j)
		}
		if err := os.WriteFile(filepath.Join(orders, day.name+".txt"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	results := filepath.Join(root, "results.md")
	md := "| day | policy | VMs | energy kWh | migrations | SLATAH % | PDM % | SLAV % | ESV (x1e-3) | host shutdowns |\n" +
		"|---|---|---|---|---|---|---|---|---|---|\n" +
		"| d1 | DVFS | 12 | 1.00 | 0 | 0 | 0 | 0 | 0 | 3 |\n" +
		"| d1 | LR-MMT-1.2 | 12 | 2.00 | 10 | 5.0 | 0.08 | 0.004 | 0.1 | 9 |\n"
	if err := os.WriteFile(results, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "sim", "--compare", "--trace", d1, "--trace", d2, "--vm-order", orders,
		"--policies", "dvfs,lr-mmt,ecrae", "--hosts", "10", "--results", results)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1+2*3 || !strings.Contains(lines[0], "CloudSim") {
		t.Fatalf("want a header and 6 rows:\n%s", out)
	}
	for _, l := range lines[1:3] { // d1: dvfs and lr-mmt have CloudSim rows
		if !strings.Contains(l, "%") {
			t.Errorf("d1 row without CloudSim's figures: %s", l)
		}
	}
	out, err = cli(t, "sim", "--compare", "--trace", d1, "--policies", "dvfs,ecrae", "--hosts", "10", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Runs []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Runs) != 2 {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestSimKB(t *testing.T) {
	root := t.TempDir()
	day := writeDay(t, root, "d", 10)
	kb := `schema_version: 1
architectures:
  - name: x86-box
    isa: x86_64
    cores: 4
    threads: 8
    core_mhz: 2000
    memory_mb: 32768
    power_watts: [50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150]
  - name: arm-box
    isa: aarch64
    cores: 16
    threads: 16
    core_mhz: 1500
    memory_mb: 32768
    power_watts: [30, 36, 42, 48, 54, 60, 66, 72, 78, 84, 90]
    estimate: true
    note: made up for a test
flavors:
  - name: m1.small
    vcpus: 1
    memory_mb: 2048
  - name: m1.medium
    vcpus: 2
    memory_mb: 4096
`
	file := filepath.Join(root, "kb.yaml")
	if err := os.WriteFile(file, []byte(kb), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pol := range []string{"ecrae", "thr-mmt", "nova-spread"} {
		out, err := cli(t, "sim", "--trace", day, "--kb", file, "--hosts", "6", "--policy", pol, "--json", "--mode", "strict")
		if err != nil {
			t.Fatalf("%s: %v\n%s", pol, err, out)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || got["hosts"] != 6.0 || got["mode"] != "strict" || got["unplaced"] != 0.0 {
			t.Fatalf("%s: %v\n%s", pol, err, out)
		}
	}
}

func TestSimErrors(t *testing.T) {
	root := t.TempDir()
	day := writeDay(t, root, "d", 3)
	bad := filepath.Join(root, "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "vm"), []byte(strings.Repeat("5\n", 10)+"250\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(root, "short")
	if err := os.MkdirAll(short, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(short, "vm"), []byte(strings.Repeat("5\n", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"sim"}, "give --trace", true},
		{[]string{"sim", "--trace", filepath.Join(root, "nope")}, "nope", false},
		{[]string{"sim", "--trace", bad}, "vm:11: CPU 250% out of range", false},
		{[]string{"sim", "--trace", short}, "vm:200: 200 samples, want 288", false},
		{[]string{"sim", "--trace", day, "--policy", "magic"}, "unknown policy", true},
		{[]string{"sim", "--trace", day, "--policy", "thr-mmt:threshold=x"}, "threshold", true},
		{[]string{"sim", "--trace", day, "--plot", "x.gif"}, ".svg or .png", true},
		{[]string{"sim", "--trace", day, "--trace", day}, "without --compare", true},
		{[]string{"sim", "--trace", day, "--mode", "loose"}, "unknown mode", true},
		{[]string{"sim", "--trace", day, "--copies", "0"}, "--copies must be in [1, 1000]", true},
		{[]string{"sim", "--trace", day, "--transitions", "warp"}, "--transitions", true},
		{[]string{"sim", "--trace", day, "--vm-order", filepath.Join(root, "none.txt")}, "none.txt", false},
		{[]string{"sim", "--compare", "--trace", day, "--results", filepath.Join(root, "none.md")}, "none.md", false},
	}
	for _, tc := range tests {
		out, err := cli(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q\n%s", tc.args, err, tc.want, out)
			continue
		}
		if errors.Is(err, errUsage) != tc.usage {
			t.Errorf("%q: usage error %v, want %v", tc.args, errors.Is(err, errUsage), tc.usage)
		}
		if strings.Contains(oneLine(err), "\n") {
			t.Errorf("%q: error spans lines", tc.args)
		}
	}
}
