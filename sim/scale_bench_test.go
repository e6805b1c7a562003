package sim

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// cpuSeconds is the CPU time this process has used: on a shared machine
// the wall clock also counts the other jobs.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkScale is issue 15 point 3: the shared day 20110303 at CloudSim's
// 800 hosts and copied ten times on 8,000, for each policy of SIM_SCALE
// (default lr-mmt,ecrae). The baseline is the code before the host index,
// kept behind Options.scan (every host visited for every VM): measured in
// the same run for lr-mmt (SIM_SCALE_BASELINE=0 skips it), and required to
// give the same result to the bit. Prints wall and CPU seconds and the
// ratios; make bench-sim runs it.
func BenchmarkScale(b *testing.B) {
	day := sharedDay(b, "20110303")
	pols := strings.Split(cmp.Or(os.Getenv("SIM_SCALE"), "lr-mmt,ecrae"), ",")
	baseline := os.Getenv("SIM_SCALE_BASELINE") != "0"
	type timing struct{ wall, cpu float64 }
	measure := func(copies int, pol string, scan bool) (timing, *Result) {
		c0, t0 := cpuSeconds(), time.Now()
		r := runScaled(b, day, copies, pol, Options{scan: scan})
		return timing{time.Since(t0).Seconds(), cpuSeconds() - c0}, r
	}
	for b.Loop() {
		for _, pol := range pols {
			var idx [2]timing
			for k, copies := range []int{1, 10} {
				t, r := measure(copies, pol, false)
				idx[k] = t
				b.Logf("%-7s %5d hosts %6d VMs: %6.1f s wall, %6.1f s CPU; %.2f kWh, %d migrations",
					pol, r.Hosts, r.VMs, t.wall, t.cpu, r.EnergyKWh, r.Migrations)
				if !baseline || pol != "lr-mmt" {
					continue
				}
				bt, br := measure(copies, pol, true)
				r.Seconds, br.Seconds = 0, 0
				same := r.EnergyKWh == br.EnergyKWh && r.Migrations == br.Migrations && r.SLAV == br.SLAV && r.HostShutdowns == br.HostShutdowns
				b.Logf("%-7s %5d hosts, baseline (every host visited): %6.1f s wall, %6.1f s CPU; indexed/baseline CPU %.3f; same result: %v",
					pol, r.Hosts, bt.wall, bt.cpu, t.cpu/bt.cpu, same)
				if !same {
					b.Errorf("%s at %d hosts: indexed %+v, baseline %+v", pol, r.Hosts, *r, *br)
				}
				b.ReportMetric(t.cpu/bt.cpu, fmt.Sprintf("%s-%dh-cpu/baseline", pol, r.Hosts))
			}
			b.Logf("%-7s 8000/800 hosts: CPU x%.1f (linear: x10, quadratic: x100)", pol, idx[1].cpu/idx[0].cpu)
			b.ReportMetric(idx[1].cpu/idx[0].cpu, pol+"-cpu-8000/800")
			b.ReportMetric(idx[1].cpu, pol+"-8000h-cpu-s")
		}
	}
}
