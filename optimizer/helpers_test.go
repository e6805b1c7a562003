package optimizer

import (
	"math"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Test models. Their curves are straight lines so the arithmetic in the
// case comments stays readable:
//
//	xeon:  50 + 100u W, 16 threads, x86_64
//	altra: 20 +  50u W, 16 threads, aarch64
var (
	xeon  = &Model{Name: "xeon", ISA: "x86_64", Cores: 16, Curve: line(50, 150)}
	altra = &Model{Name: "altra", ISA: "aarch64", Cores: 16, Curve: line(20, 70)}
)

// line is a curve from idle watts to full-load watts, linear in between.
func line(idle, full float64) PowerCurve {
	var c PowerCurve
	for i := range c {
		c[i] = idle + (full-idle)*float64(i)/10
	}
	return c
}

// host returns a roomy busy host of model m: 16 vCPUs with used in use,
// 64 GiB RAM and 1 TB disk mostly free, two instances (0 when used is 0).
func host(name string, m *Model, used int) Host {
	h := Host{
		Name: name, Model: m, VCPUsTotal: 16, VCPUsUsed: used, CPURatio: 1,
		TotalRAMMB: 65536, FreeRAMMB: 60000, RAMRatio: 1,
		TotalDiskGB: 1000, FreeDiskMB: 900 * 1024, DiskRatio: 1,
	}
	if used > 0 {
		h.NumInstances = 2
	}
	return h
}

// measured sets a measured utilisation.
func measured(h Host, u float64) Host {
	h.Utilization, h.UtilizationMeasured = u, true
	return h
}

// small is a 4 vCPU, 4 GiB, 40 GB request.
var small = Request{Name: "vm", VCPUs: 4, MemoryMB: 4096, DiskGB: 40}

// web hints at altra (0.7x, ceiling 0.9) then any x86_64 (1.0x), with a
// profile ceiling of 0.8.
var web = Profile{
	Tag: "web", Mode: ModeHint, UtilizationCeiling: 0.8,
	Candidates: []Candidate{
		{Architecture: "altra", PerformanceFactor: 0.7, UtilizationCeiling: 0.9},
		{ISA: "amd64", PerformanceFactor: 1},
	},
}

var approx = cmpopts.EquateApprox(0, 1e-9)

// diffApprox is cmp.Diff with float tolerance, reported (-want +got).
func diffApprox(want, got any) string { return cmp.Diff(want, got, approx, cmpopts.EquateNaNs()) }

var nan, inf = math.NaN(), math.Inf(1)
