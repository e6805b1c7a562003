package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrResults marks a CloudSim results file that cannot be read.
var ErrResults = errors.New("bad results file")

// Reference is one row of CloudSim's published results: a policy on a
// day. Ratios are fractions, as in Result.
type Reference struct {
	Day           string
	Policy        string // as CloudSim names it: "LR-MMT-1.2"
	VMs           int
	EnergyKWh     float64
	Migrations    int
	SLATAH        float64
	PDM           float64 // SLAV / SLATAH when given, else the printed one
	SLAV          float64
	ESV           float64 // kWh
	HostShutdowns int
}

// References holds CloudSim's results by day and policy name.
type References map[string]map[string]Reference

// ParseReferences reads the markdown table of CloudSim's results
// (../shared/data/cloudsim/results.md): a header row naming the columns,
// then one row per day and policy. Columns are found by their header (day,
// policy, VMs, energy, migrations, SLATAH, PDM, SLAV, ESV, host
// shutdowns); percentages are converted to fractions. name is for errors.
func ParseReferences(name string, r io.Reader) (References, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	refs := References{}
	var col map[string]int
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(s, "|") {
			continue
		}
		cells := splitRow(s)
		if col == nil {
			col = headerColumns(cells)
			if col == nil {
				continue
			}
			for _, need := range []string{"day", "policy", "energy"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("%w: %s:%d: no %q column", ErrResults, name, line, need)
				}
			}
			continue
		}
		if isRule(cells) {
			continue
		}
		ref, err := parseRow(cells, col)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrResults, name, line, err)
		}
		if refs[ref.Day] == nil {
			refs[ref.Day] = map[string]Reference{}
		}
		refs[ref.Day][ref.Policy] = ref
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrResults, name, err)
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("%w: %s: no results table (want a markdown table with day, policy and energy columns)", ErrResults, name)
	}
	return refs, nil
}

func splitRow(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "|"), "|")
	cells := strings.Split(s, "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

func isRule(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

// headerColumns maps the columns this reader uses to their index, or nil
// if cells is not the header.
func headerColumns(cells []string) map[string]int {
	col := map[string]int{}
	for i, c := range cells {
		l := strings.ToLower(c)
		switch {
		case l == "day":
			col["day"] = i
		case l == "policy":
			col["policy"] = i
		case l == "vms":
			col["vms"] = i
		case strings.HasPrefix(l, "energy"):
			col["energy"] = i
		case strings.HasPrefix(l, "migrations"):
			col["migrations"] = i
		case strings.HasPrefix(l, "slatah"):
			col["slatah"] = i
		case strings.HasPrefix(l, "pdm") && strings.Contains(l, "slav/slatah"):
			col["pdm"] = i
		case strings.HasPrefix(l, "pdm"):
			if _, ok := col["pdm"]; !ok {
				col["pdm"] = i
			}
		case strings.HasPrefix(l, "slav"):
			col["slav"] = i
		case strings.HasPrefix(l, "esv"):
			col["esv"] = i
		case strings.HasPrefix(l, "host shutdowns"):
			col["shutdowns"] = i
		}
	}
	if _, ok := col["day"]; !ok {
		return nil
	}
	return col
}

func parseRow(cells []string, col map[string]int) (Reference, error) {
	get := func(k string) (string, bool) {
		i, ok := col[k]
		if !ok || i >= len(cells) {
			return "", false
		}
		return cells[i], true
	}
	num := func(k string, scale float64) (float64, error) {
		s, ok := get(k)
		if !ok {
			return 0, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("column %s: %q is not a number", k, s)
		}
		return f * scale, nil
	}
	var r Reference
	r.Day, _ = get("day")
	r.Policy, _ = get("policy")
	if r.Day == "" || r.Policy == "" {
		return r, errors.New("a row without day or policy")
	}
	var err error
	var f float64
	if f, err = num("vms", 1); err != nil {
		return r, err
	}
	r.VMs = int(f)
	if r.EnergyKWh, err = num("energy", 1); err != nil {
		return r, err
	}
	if f, err = num("migrations", 1); err != nil {
		return r, err
	}
	r.Migrations = int(f)
	if r.SLATAH, err = num("slatah", 0.01); err != nil {
		return r, err
	}
	if r.PDM, err = num("pdm", 0.01); err != nil {
		return r, err
	}
	if r.SLAV, err = num("slav", 0.01); err != nil {
		return r, err
	}
	if r.ESV, err = num("esv", 1e-3); err != nil {
		return r, err
	}
	if f, err = num("shutdowns", 1); err != nil {
		return r, err
	}
	r.HostShutdowns = int(f)
	return r, nil
}

// CloudSimName is the name CloudSim's tables give the policy of spec, ""
// when CloudSim has no such policy: "NPA", "DVFS", "THR-MMT-0.8",
// "LR-MMT-1.2", ...
func CloudSimName(spec PolicySpec) string {
	param := func(k string) string { return strconv.FormatFloat(spec.Params[k], 'g', -1, 64) }
	switch spec.Name {
	case "npa", "dvfs":
		return strings.ToUpper(spec.Name)
	case "thr-mmt":
		return "THR-MMT-" + param("threshold")
	case "iqr-mmt", "mad-mmt", "lr-mmt", "lrr-mmt":
		if spec.Params["fallback"] != 0.7 {
			return "" // CloudSim's runs fall back to THR 0.7
		}
		return strings.ToUpper(spec.Name) + "-" + param("safety")
	}
	return ""
}

// Lookup finds CloudSim's row for spec on day.
func (r References) Lookup(day string, spec PolicySpec) (Reference, bool) {
	name := CloudSimName(spec)
	if name == "" {
		return Reference{}, false
	}
	ref, ok := r[day][name]
	return ref, ok
}
