package sim

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// sharedDay reads a PlanetLab day from ../shared/data in CloudSim's VM order,
// or skips: a user's clone has no shared data.
func sharedDay(tb testing.TB, name string) *Day {
	tb.Helper()
	data := os.Getenv("DATA")
	if data == "" {
		data = filepath.Join("..", "..", "shared", "data")
	}
	dir := filepath.Join(data, "planetlab", name)
	if _, err := os.Stat(dir); err != nil {
		tb.Skipf("no shared data at %s (set DATA=...)", dir)
	}
	d, err := ReadDay(dir)
	if err != nil {
		tb.Fatal(err)
	}
	order := filepath.Join(data, "cloudsim", "vm_order", name+".txt")
	names, err := ReadVMOrder(order)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Reorder(order, names); err != nil {
		tb.Fatal(err)
	}
	return d
}

// runScaled runs the shared day copied copies times on copies × 800 hosts.
func runScaled(tb testing.TB, day *Day, copies int, policy string, opts Options) *Result {
	tb.Helper()
	s := CloudSimSetup()
	s.RoundRobinHosts(CloudSimHosts * copies)
	spec, err := ParsePolicy(policy)
	if err != nil {
		tb.Fatal(err)
	}
	opts.Seed = 1
	r, err := Run(context.Background(), s, day.Repeat(copies), spec, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// BenchmarkProfile is one run for pprof: SIM_COPIES (1) and SIM_POLICY
// (lr-mmt) choose it.
func BenchmarkProfile(b *testing.B) {
	day := sharedDay(b, "20110303")
	copies := 1
	if c := os.Getenv("SIM_COPIES"); c != "" {
		if _, err := fmt.Sscan(c, &copies); err != nil {
			b.Fatal(err)
		}
	}
	pol := cmp.Or(os.Getenv("SIM_POLICY"), "lr-mmt")
	for b.Loop() {
		r := runScaled(b, day, copies, pol, Options{})
		b.ReportMetric(r.EnergyKWh, "kWh")
		b.ReportMetric(float64(r.Migrations), "migrations")
	}
}
