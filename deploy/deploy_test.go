// Package deploy holds no code: its tests check the files operators
// install (systemd units, the container build file, the Grafana dashboard,
// the Prometheus alert rules) against the tools that read them, and every
// metric they name against the metrics the code registers.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// registered are the metric names the code registers (a "ecrae_…" string
// literal in a non-test Go file).
func registered(t *testing.T) map[string]bool {
	t.Helper()
	lit := regexp.MustCompile(`"(ecrae_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "nova-shim" || d.Name() == "integration") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

var metricRE = regexp.MustCompile(`\becrae_[a-z0-9_]+`)

// checkMetrics fails for every metric expr names that no code registers (a
// histogram's _bucket, _sum and _count series count as its own).
func checkMetrics(t *testing.T, where, expr string, names map[string]bool) {
	t.Helper()
	for _, m := range metricRE.FindAllString(expr, -1) {
		base := m
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, s); ok && names[b] {
				base = b
			}
		}
		if !names[base] {
			t.Errorf("%s: metric %s is not registered by any code", where, m)
		}
	}
}

func unitSections(t *testing.T, unit []byte) map[string]map[string]string {
	t.Helper()
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
	return sections
}

// TestServeUnit checks ecrae.service: its sections and command, then
// systemd's own verdict (systemd-analyze verify, pointed at this test
// binary since it wants the command to exist); a warning about the unit is
// a failure, as systemd only warns about an unknown key and ignores it.
func TestServeUnit(t *testing.T) {
	unit, err := os.ReadFile("ecrae.service")
	if err != nil {
		t.Fatal(err)
	}
	s := unitSections(t, unit)
	for _, sec := range []string{"Unit", "Service", "Install"} {
		if s[sec] == nil {
			t.Errorf("no [%s] section", sec)
		}
	}
	if got := s["Service"]["ExecStart"]; !strings.HasPrefix(got, "/usr/local/bin/ecrae serve --db /var/lib/ecrae/") {
		t.Errorf("ExecStart=%q: want serve with its KB in the StateDirectory", got)
	}
	if s["Service"]["StateDirectory"] != "ecrae" || s["Service"]["User"] == "" || s["Service"]["User"] == "root" {
		t.Errorf("state directory %q, user %q: want ecrae, a system user", s["Service"]["StateDirectory"], s["Service"]["User"])
	}
	if !strings.Contains(s["Service"]["ExecReload"], "-HUP") {
		t.Errorf("ExecReload=%q: serve reloads certificates and roles on SIGHUP", s["Service"]["ExecReload"])
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: sections checked only")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ecrae.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/ecrae"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "ecrae.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
}

// TestContainerfile parses the build file as far as can be done here (no
// Docker engine runs on this machine, so it is never built in a test):
// every instruction is one Docker knows, stages referred to exist, the
// entrypoint is the binary the build stage makes, and the Go image matches
// go.mod's Go version.
func TestContainerfile(t *testing.T) {
	b, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true,
		"COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true, "ONBUILD": true,
		"STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true}
	stages := map[string]bool{}
	var from []string
	var entry string
	built, copied := "", ""
	lines := strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n")
	for n, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		ins := strings.ToUpper(f[0])
		if !known[ins] || f[0] != ins {
			t.Fatalf("line %d: %q is not an instruction (upper case)", n+1, f[0])
		}
		switch ins {
		case "FROM":
			from = append(from, f[1])
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				stages[f[3]] = true
			}
		case "COPY":
			if strings.HasPrefix(f[1], "--from=") {
				if !stages[strings.TrimPrefix(f[1], "--from=")] {
					t.Errorf("line %d: COPY from unknown stage %s", n+1, f[1])
				}
				copied = f[len(f)-1]
			}
		case "RUN":
			if i := strings.Index(line, " -o "); i >= 0 {
				built = strings.Fields(line[i+4:])[0]
			}
		case "ENTRYPOINT":
			var exe []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, "ENTRYPOINT"))), &exe); err != nil || len(exe) == 0 {
				t.Fatalf("line %d: ENTRYPOINT is not a JSON array: %v", n+1, err)
			}
			entry = exe[0]
		}
	}
	if len(from) != 2 || built == "" || copied != entry || !strings.HasSuffix(built, "/ecrae") {
		t.Errorf("stages %v, built %q, copied to %q, entrypoint %q", from, built, copied, entry)
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil || !strings.HasPrefix(from[0], "golang:"+string(m[1])) {
		t.Errorf("build image %s, go.mod wants Go %s", from[0], m[1])
	}
}

type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestGrafanaDashboard parses the dashboard, checks every query names
// registered metrics, and has promtool parse each query (as a recording
// rule) when it is installed.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/ecrae.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) < 6 {
		t.Fatalf("uid %q, title %q, %d panels", d.UID, d.Title, len(d.Panels))
	}
	names := registered(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkMetrics(t, "panel "+p.Title, tg.Expr, names)
			rules = append(rules, rule{Record: "ecrae:dashboard:check", Expr: strings.ReplaceAll(tg.Expr, "$job", "ecrae")})
		}
	}
	promtool := lookPromtool(t)
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules (the dashboard's queries): %v\n%s", err, out)
	}
}

func lookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; scripts/install-test-deps.sh installs it): parsed and metrics checked only")
	}
	return p
}

// TestAlertRules parses the rules, checks each names registered metrics
// and says what it means, then runs promtool's checks and the rule tests
// of alerts_test.yml.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	names := registered(t)
	seen := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			seen[r.Alert] = true
			checkMetrics(t, "alert "+r.Alert, r.Expr, names)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: needs a severity, a summary and a description", r.Alert)
			}
		}
	}
	for _, a := range []string{"EcraeFailOpenRate", "EcraeInvalidArgumentFromNova", "EcraeStaleHosts", "EcraeViewDrift", "EcraeEventLag"} {
		if !seen[a] {
			t.Errorf("no alert %s", a)
		}
	}
	promtool := lookPromtool(t)
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
