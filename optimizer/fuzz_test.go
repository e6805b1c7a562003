package optimizer

import (
	"encoding/binary"
	"math"
	"testing"
)

// fuzzReader turns fuzz bytes into inputs. One byte picks from a palette of
// awkward values (NaN, ±Inf, negatives, zero, huge, tiny) or, past the
// palette, reads 8 more bytes as raw float64 bits.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *fuzzReader) float() float64 {
	palette := [...]float64{0, 1, 0.5, -1, math.NaN(), math.Inf(1), math.Inf(-1), 0.8,
		math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 16, 100, 1.5, 0.1, 2, 1e-300, 1e300}
	v := int(r.byte())
	if v < len(palette) {
		return palette[v]
	}
	if v >= 250 && len(r.b) >= 8 {
		x := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
		r.b = r.b[8:]
		return x
	}
	return float64(v-len(palette)) / 50
}

func (r *fuzzReader) int() int {
	palette := [...]int{0, 1, -1, 4, 16, 64, math.MaxInt32, math.MinInt32, math.MaxInt, math.MinInt}
	v := int(r.byte())
	if v < len(palette) {
		return palette[v]
	}
	return v - len(palette)
}

func (r *fuzzReader) isa() string {
	return [...]string{"", "x86_64", "amd64", "aarch64", "arm64", "ppc64el", "S390X", " i386 "}[r.byte()%8]
}

func (r *fuzzReader) model() *Model {
	if r.byte()%8 == 0 {
		return nil // the contract says never nil; do not crash anyway
	}
	m := &Model{Name: [...]string{"xeon", "altra", "", "default-x86_64"}[r.byte()%4], ISA: r.isa(), Cores: r.int(), Default: r.byte()%2 == 0}
	for i := range m.Curve {
		m.Curve[i] = r.float()
	}
	return m
}

func (r *fuzzReader) host() Host {
	return Host{
		ISA: r.isa(), Model: r.model(),
		VCPUsTotal: r.int(), VCPUsUsed: r.int(), CPURatio: r.float(),
		TotalRAMMB: int64(r.int()), FreeRAMMB: int64(r.int()), RAMRatio: r.float(),
		TotalDiskGB: int64(r.int()), FreeDiskMB: int64(r.int()), DiskRatio: r.float(),
		NumInstances: r.int(), Utilization: r.float(), UtilizationMeasured: r.byte()%2 == 0,
		UsedCPULoad: r.float(),
		Name:        [...]string{"", "a", "b"}[r.byte()%3], Disabled: r.byte()%5 == 0, Stale: r.byte()%3 == 0,
		Draining: [...]string{"", "", "p"}[r.byte()%3],
	}
}

func (r *fuzzReader) profile() Profile {
	p := Profile{Tag: "t", Mode: Mode(r.byte() % 3), UtilizationCeiling: r.float(), CPULoad: r.float()}
	for range r.byte() % 4 {
		p.Candidates = append(p.Candidates, Candidate{
			Architecture: [...]string{"", "xeon", "altra"}[r.byte()%3], ISA: r.isa(),
			PerformanceFactor: r.float(), UtilizationCeiling: r.float(),
		})
	}
	return p
}

func (r *fuzzReader) request() Request {
	req := Request{VCPUs: r.int(), MemoryMB: int64(r.int()), DiskGB: int64(r.int()), ImageISA: r.isa(),
		Relax: HintRelax(r.byte() % 4), Busy: r.float(), BusyKnown: r.byte()%2 == 0}
	req.Group.Policy = GroupPolicy(r.byte() % 4)
	for range r.byte() % 3 {
		req.Group.Hosts = append(req.Group.Hosts, [...]string{"", "a", "b"}[r.byte()%3])
	}
	return req
}

func FuzzWeighHosts(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26})
	f.Add([]byte("\x04\x05\x06\x04\x05\x06 NaN Inf everywhere \x04\x05\x06\x04\x05\x06\x04\x05"))
	f.Add([]byte{3, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data}
		req, prof := r.request(), r.profile()
		weights := map[string]float64{"energy": r.float(), "consolidation": r.float()}
		if r.byte()%3 == 0 {
			weights = nil
		}
		hosts := make([]Host, 1+int(r.byte()%6))
		for i := range hosts {
			hosts[i] = r.host()
		}

		if v := FilterHosts(req, prof, hosts); len(v) != len(hosts) {
			t.Fatalf("%d verdicts for %d hosts", len(v), len(hosts))
		}
		scored := WeighHosts(req, prof, hosts, weights)
		if len(scored) != len(hosts) {
			t.Fatalf("%d scores for %d hosts", len(scored), len(hosts))
		}
		for i, s := range scored {
			if math.IsNaN(s.Score) || math.IsNaN(s.MarginalWatts) || math.IsNaN(s.Factor) {
				t.Fatalf("host %d: NaN in %+v", i, s)
			}
			for _, c := range s.Components {
				if !(c.Normalized >= 0 && c.Normalized <= 100) || math.IsNaN(c.Raw) || math.IsNaN(c.Weighted) {
					t.Fatalf("host %d: bad component %+v", i, c)
				}
			}
		}
		// FilterWeigh: the same verdicts, and no score for a rejected host.
		v, fw := FilterWeigh(req, prof, hosts, weights, r.byte()%2 == 0)
		for i := range hosts {
			if !v[i].Passed && (fw[i].Score != 0 || fw[i].Components != nil) {
				t.Fatalf("rejected host %d scored %+v", i, fw[i])
			}
			if math.IsNaN(fw[i].Score) {
				t.Fatalf("host %d: NaN score", i)
			}
		}
		res := WhatIf([]WhatIfItem{{req, prof}, {req, prof}}, hosts, weights, 2)
		for _, p := range res.Placements {
			if math.IsNaN(p.Score) || math.IsNaN(p.MarginalWatts) {
				t.Fatalf("NaN in placement %+v", p)
			}
		}
	})
}
