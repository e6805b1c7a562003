package sim

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
)

// ErrPolicy marks an unknown policy or a bad policy option.
var ErrPolicy = errors.New("bad policy")

// policy is what the engine asks of a placement and consolidation policy.
type policy interface {
	// nonPowerAware makes every host draw its full power all day (NPA).
	nonPowerAware() bool
	init(e *engine) error
	// place picks the host of a VM being created at time 0, or -1.
	place(e *engine, vi int32) int
	// optimize returns the live migrations to start at step time t. It
	// may change the allocation (create, destroy) while it thinks, as
	// CloudSim's policies do, if it restores it before returning.
	optimize(e *engine, t float64) ([]move, error)
}

// PolicySpec is a policy name and its options, as "lr-mmt" or
// "thr-mmt:threshold=0.9" or "ecrae:ceiling=0.85,horizon=600".
type PolicySpec struct {
	Name   string
	Params map[string]float64
}

// policyInfo describes one policy: its options and their defaults.
type policyInfo struct {
	help     string
	defaults map[string]float64
	build    func(p map[string]float64, s *Setup, seed uint64) (policy, error)
}

// registry lists the policies by name. The CloudSim ones take CloudSim's
// defaults (RunAll: THR 0.8, IQR 1.5, MAD 2.5, LR 1.2, fallback THR 0.7).
// A function, not a variable: the table is never shared or changed.
func registry() map[string]policyInfo {
	return map[string]policyInfo{
		"npa": {help: "no power management: every host draws its full power all day; first-fit, no migrations",
			build: func(map[string]float64, *Setup, uint64) (policy, error) { return &simplePolicy{npa: true}, nil }},
		"dvfs": {help: "power follows utilisation; first-fit, no migrations",
			build: func(map[string]float64, *Setup, uint64) (policy, error) { return &simplePolicy{}, nil }},
		"thr-mmt": {help: "static threshold: a host is overloaded above threshold; minimum migration time; PABFD",
			defaults: map[string]float64{"threshold": 0.8},
			build: func(p map[string]float64, _ *Setup, _ uint64) (policy, error) {
				return &migrationPolicy{det: thrDetector{p["threshold"]}}, nil
			}},
		"iqr-mmt": {help: "overloaded above 1 - safety × IQR(host history); fallback threshold while the history is short",
			defaults: map[string]float64{"safety": 1.5, "fallback": 0.7},
			build: func(p map[string]float64, _ *Setup, _ uint64) (policy, error) {
				return &migrationPolicy{det: iqrDetector{safety: p["safety"], fallback: thrDetector{p["fallback"]}}}, nil
			}},
		"mad-mmt": {help: "overloaded above 1 - safety × MAD(host history); fallback threshold while the history is short",
			defaults: map[string]float64{"safety": 2.5, "fallback": 0.7},
			build: func(p map[string]float64, _ *Setup, _ uint64) (policy, error) {
				return &migrationPolicy{det: madDetector{safety: p["safety"], fallback: thrDetector{p["fallback"]}}}, nil
			}},
		"lr-mmt": {help: "local regression: overloaded when safety × the predicted utilisation >= 1; fallback threshold while the history is short",
			defaults: map[string]float64{"safety": 1.2, "fallback": 0.7},
			build: func(p map[string]float64, _ *Setup, _ uint64) (policy, error) {
				return &migrationPolicy{det: lrDetector{safety: p["safety"], fallback: thrDetector{p["fallback"]}}}, nil
			}},
		"lrr-mmt": {help: "robust local regression; in CloudSim 3.0.3 identical to lr-mmt (its weights never apply)",
			defaults: map[string]float64{"safety": 1.2, "fallback": 0.7},
			build: func(p map[string]float64, _ *Setup, _ uint64) (policy, error) {
				return &migrationPolicy{det: lrDetector{safety: p["safety"], fallback: thrDetector{p["fallback"]}}}, nil
			}},
		"nova-spread": {help: "stock Nova: the host with the most free RAM, never migrate",
			build: func(map[string]float64, *Setup, uint64) (policy, error) { return &simplePolicy{spread: true}, nil }},
		"ecrae": {help: "ECRAE: the service's placement scoring for new and overloaded VMs, the consolidation optimizer and its plan every step",
			defaults: ecraeDefaults(),
			build:    buildEcrae},
	}
}

// PolicyNames lists the policies in a fixed order.
func PolicyNames() []string {
	return []string{"npa", "dvfs", "thr-mmt", "iqr-mmt", "mad-mmt", "lr-mmt", "lrr-mmt", "nova-spread", "ecrae"}
}

// PolicyHelp describes a policy and its options with their defaults.
func PolicyHelp(name string) string {
	info, ok := registry()[name]
	if !ok {
		return ""
	}
	if len(info.defaults) == 0 {
		return info.help
	}
	keys := slices.Sorted(maps.Keys(info.defaults))
	var b strings.Builder
	b.WriteString(info.help)
	b.WriteString(" (options:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%g", k, info.defaults[k])
	}
	b.WriteString(")")
	return b.String()
}

// ParsePolicy reads "NAME" or "NAME:KEY=VALUE,KEY=VALUE". Options a policy
// does not know are errors; options left out take their defaults.
func ParsePolicy(s string) (PolicySpec, error) {
	name, opts, _ := strings.Cut(strings.TrimSpace(s), ":")
	info, ok := registry()[name]
	if !ok {
		return PolicySpec{}, fmt.Errorf("%w: unknown policy %s (known: %s)", ErrPolicy, quote.Value(name), strings.Join(PolicyNames(), ", "))
	}
	spec := PolicySpec{Name: name, Params: maps.Clone(info.defaults)}
	if spec.Params == nil {
		spec.Params = map[string]float64{}
	}
	if strings.TrimSpace(opts) == "" {
		return spec, nil
	}
	for _, kv := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return PolicySpec{}, fmt.Errorf("%w: %s: option %s: want KEY=VALUE", ErrPolicy, name, quote.Value(kv))
		}
		if _, known := info.defaults[k]; !known {
			keys := slices.Sorted(maps.Keys(info.defaults))
			if len(keys) == 0 {
				return PolicySpec{}, fmt.Errorf("%w: %s takes no options, got %s", ErrPolicy, name, quote.Value(k))
			}
			return PolicySpec{}, fmt.Errorf("%w: %s: unknown option %s (known: %s)", ErrPolicy, name, quote.Value(k), strings.Join(keys, ", "))
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return PolicySpec{}, fmt.Errorf("%w: %s: option %s=%s: want a finite number >= 0", ErrPolicy, name, k, quote.Value(v))
		}
		spec.Params[k] = f
	}
	return spec, nil
}

// String is the spec with the options that differ from the defaults, so
// that a default policy prints as its bare name.
func (p PolicySpec) String() string {
	info := registry()[p.Name]
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(p.Params)) {
		if d, ok := info.defaults[k]; ok && d == p.Params[k] {
			continue
		}
		parts = append(parts, k+"="+strconv.FormatFloat(p.Params[k], 'g', -1, 64))
	}
	if len(parts) == 0 {
		return p.Name
	}
	return p.Name + ":" + strings.Join(parts, ",")
}

func (p PolicySpec) build(s *Setup, seed uint64) (policy, error) {
	info, ok := registry()[p.Name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown policy %s", ErrPolicy, quote.Value(p.Name))
	}
	params := maps.Clone(info.defaults)
	if params == nil {
		params = map[string]float64{}
	}
	maps.Copy(params, p.Params)
	return info.build(params, s, seed)
}
