package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	rfc3339Re = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)
	addrRe    = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// normaliseJSON replaces what differs between runs (times, durations of a
// search, ports) so that a golden file holds the shape and the values that
// must not move. It fails the test if a time is not RFC 3339.
func normaliseJSON(t *testing.T, v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normaliseJSON(t, e, k)
		}
	case []any:
		for i, e := range x {
			x[i] = normaliseJSON(t, e, key)
		}
	case string:
		if strings.HasSuffix(key, "_at") || key == "until" || key == "as_of" || key == "time" || key == "last_seen" || key == "timestamp" {
			if x != "" && !rfc3339Re.MatchString(x) {
				t.Errorf("%s = %q is not RFC 3339", key, x)
			}
			return "<time>"
		}
		return addrRe.ReplaceAllString(x, "127.0.0.1:<port>")
	case float64:
		if key == "seconds" || key == "iterations" {
			return "<varies>"
		}
	}
	return v
}

// jsonGolden checks that out is one JSON document and compares it,
// normalised, with testdata/json/NAME.json (-update rewrites it).
func jsonGolden(t *testing.T, name, out string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", name, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON document:\n%s", name, out)
	}
	v = normaliseJSON(t, v, "")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "json", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/ecrae -run TestJSONGolden -update writes it)", err)
	}
	if !bytes.Equal(want, b.Bytes()) {
		t.Errorf("%s differs from %s (-update rewrites it):\n%s", name, path, b.String())
	}
}

// Every --json of the KB and rebalance commands, against a real service
// on a KB in a temporary bbolt file: one document each, in one style.
func TestJSONGolden(t *testing.T) {
	dir := t.TempDir()
	srv, g, l := kbServer(t, dir)
	var rs rebalanceServe
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	rs.register(fs)
	run, stop, err := rs.start(g, srv, nil, filepath.Join(dir, "ecrae.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- run(ctx) }()
	srv.Register(g)
	go g.Serve(l)
	addr := "--server=" + l.Addr().String()
	snap := filepath.Join(dir, "snap.yaml")
	writeFile(t, snap, snapshotYAML())
	badKB := filepath.Join(dir, "bad.yaml")
	writeFile(t, badKB, "hosts:\n  - {name: a, architecture: ibm-x3550-m3-x567}\n")

	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"kb-show", []string{"kb", "show"}, exitOK},
		{"kb-export", []string{"kb", "export"}, exitOK},
		{"kb-validate", []string{"kb", "validate", badKB}, exitFailed},
		{"rebalance-plan", []string{"rebalance", "plan", "--snapshot", snap, "--time-limit", "10s"}, exitOK},
		{"rebalance-show", []string{"rebalance", "show", "p1"}, exitOK},
		{"rebalance-list", []string{"rebalance", "list"}, exitOK},
		{"rebalance-execute-dry-run", []string{"rebalance", "execute", "p1"}, exitPartial},
		{"kb-history", []string{"kb", "history"}, exitOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runJSONCLI(append(c.args, "--json", addr), &stdout, &stderr)
			if code := exitCode(err); code != c.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, c.code, stdout.String())
			}
			jsonGolden(t, c.name, strings.ReplaceAll(stdout.String(), filepath.Dir(badKB), "<dir>"))
		})
	}
}

func runJSONCLI(args []string, stdout, stderr *bytes.Buffer) error {
	return run(context.Background(), args, strings.NewReader(""), stdout, stderr)
}

// The --json of the commands that need the whole service (host view,
// audit), on a real `serve` with its embedded NATS and a KB in a
// temporary bbolt file.
func TestJSONGoldenServe(t *testing.T) {
	noCloud(t)
	dir := t.TempDir()
	c, _ := startServe(t, dir)
	addr := "--server=" + c.grpcAddr
	announceCompute(t, c.natsAddr, "lab-1") // Nova's service.create, on the real NATS
	listHosts(t, addr, func(r *ecraev1.ListLiveHostsResponse) bool { return hostNamed(r, "lab-1") != nil })
	lab := filepath.Join(dir, "lab.yaml")
	writeFile(t, lab, "hosts:\n  - {name: lab-1, architecture: ibm-x3550-m3-x5670, rack: r1}\n")
	for _, cs := range []struct {
		name string
		args []string
		code int
	}{
		{"kb-import", []string{"kb", "import", lab}, exitOK},
		{"kb-diff", []string{"kb", "diff", "1"}, exitOK},
		{"hosts", []string{"hosts", "--instances"}, exitOK},
		{"place", []string{"place", "../../examples/owncloud.yaml"}, exitPartial}, // the database finds no host: exit 3
		{"score", []string{"score", "--flavor", "m1.small"}, exitOK},
		{"audit", []string{"audit"}, exitOK},
		{"power-status", []string{"power", "status"}, exitOK},
		{"power-history", []string{"power", "history"}, exitOK},
	} {
		t.Run(cs.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if cs.name == "power-status" {
				// A BMC endpoint without credentials: the host is listed, with why its state is unknown.
				if err := runJSONCLI([]string{"kb", "host", "set", "lab-1", "--power", "ipmi://127.0.0.1:1", addr}, &stdout, &stderr); err != nil {
					t.Fatalf("kb host set: %v\n%s", err, stderr.String())
				}
				stdout.Reset()
			}
			err := runJSONCLI(append(cs.args, "--json", addr), &stdout, &stderr)
			if code := exitCode(err); code != cs.code {
				t.Fatalf("exit %d (%v), want %d\n%s", code, err, cs.code, stdout.String())
			}
			jsonGolden(t, cs.name, strings.ReplaceAll(stdout.String(), dir, "<dir>"))
		})
	}
}

// The --json (or the one JSON object) of the offline commands: pack, sim
// and agent --once, on inputs the test writes in a temporary directory.
// Normalised before comparing: the temporary directory (→ <dir>), and, by
// normaliseJSON, pack's and sim's wall-clock "seconds" and pack's
// "iterations" (→ <varies>) and the agent's "timestamp" (→ <time>).
func TestJSONGoldenOffline(t *testing.T) {
	dir := t.TempDir()
	vbp := filepath.Join(dir, "t.vbp")
	// Two bins of 100×100 filled by 199 of 200: the bound (2) is reached.
	writeFile(t, vbp, "2\n100 100\n4\n50 50 2\n26 26 1\n25 25 1\n24 24 2\n")
	day := writeDay(t, dir, "day1", 4)
	zone := filepath.Join(dir, "powercap", "intel-rapl:0")
	if err := os.MkdirAll(zone, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(zone, "name"), "package-0\n")
	writeFile(t, filepath.Join(zone, "energy_uj"), "5000000\n")
	writeFile(t, filepath.Join(zone, "max_energy_range_uj"), "262143328850\n")
	writeFile(t, filepath.Join(dir, "stat"), "cpu 10 0 0 90 0 0 0 0\n")
	for _, c := range []struct {
		name string
		args []string
	}{
		{"pack", []string{"pack", vbp, "--seed", "3", "--time-limit", "5s"}},
		{"sim", []string{"sim", "--trace", day, "--policy", "lr-mmt", "--hosts", "4", "--json"}},
		{"agent-once", []string{"agent", "--once", "--json", "--host", "compute-9", "--sources", "rapl,proc",
			"--rapl-root", filepath.Join(dir, "powercap"), "--proc-stat", filepath.Join(dir, "stat"), "--window", "10ms"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := runJSONCLI(c.args, &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s%s", err, stdout.String(), stderr.String())
			}
			jsonGolden(t, c.name, strings.ReplaceAll(stdout.String(), dir, "<dir>"))
		})
	}
}
