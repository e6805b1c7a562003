package optimizer

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

var benchRequest = Request{Name: "web-1", VCPUs: 4, MemoryMB: 8192, DiskGB: 40}

// BenchmarkScore is one Nova boot: filter and weigh one request against N
// hosts of four models (three ISAs), explanations included. It weighs all N
// hosts, not only the survivors: an upper bound.
func BenchmarkScore(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			hosts := randomHosts(rand.New(rand.NewPCG(7, uint64(n))), n)
			checkScore(b, hosts)
			b.ReportAllocs()
			for b.Loop() {
				FilterHosts(benchRequest, benchProfile, hosts)
				WeighHosts(benchRequest, benchProfile, hosts, nil)
			}
		})
	}
}

// BenchmarkScoreQuiet is BenchmarkScore without explanations, as Nova's
// weigher asks for them.
func BenchmarkScoreQuiet(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			hosts := randomHosts(rand.New(rand.NewPCG(7, uint64(n))), n)
			checkScore(b, hosts)
			b.ReportAllocs()
			for b.Loop() {
				FilterHosts(benchRequest, benchProfile, hosts)
				WeighHostsQuiet(benchRequest, benchProfile, hosts, nil)
			}
		})
	}
}

// BenchmarkWeigher is the service's weigher pass as Nova asks for it
// (scores only): WeighHostsQuiet alone (the former pass, a baseline), and
// FilterWeigh, which runs the filter chain first so that a rejected host
// gets no score, sharing each host's fit between the two.
func BenchmarkWeigher(b *testing.B) {
	hosts := randomHosts(rand.New(rand.NewPCG(7, 1000)), 1000)
	checkScore(b, hosts)
	b.Run("weigh-only/hosts=1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			WeighHostsQuiet(benchRequest, benchProfile, hosts, nil)
		}
	})
	b.Run("filter-weigh/hosts=1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			FilterWeigh(benchRequest, benchProfile, hosts, nil, false)
		}
	})
}

// checkScore asserts the benchmark's work is sane before timing it: some
// hosts pass and some are rejected, and every score is explained.
func checkScore(b *testing.B, hosts []Host) {
	b.Helper()
	passed := 0
	for _, v := range FilterHosts(benchRequest, benchProfile, hosts) {
		if v.Passed {
			passed++
		}
	}
	if passed == 0 || passed == len(hosts) {
		b.Fatalf("%d of %d hosts pass: the benchmark should exercise both", passed, len(hosts))
	}
	for i, s := range WeighHosts(benchRequest, benchProfile, hosts, nil) {
		if len(s.Components) != 2 || s.Components[0].Explanation == "" || s.Components[1].Explanation == "" || !(s.Score >= 0 && s.Score <= 150) {
			b.Fatalf("host %d: %+v", i, s)
		}
	}
}

// BenchmarkWhatIf places a batch of 10 on 1000 hosts.
func BenchmarkWhatIf(b *testing.B) {
	hosts := randomHosts(rand.New(rand.NewPCG(8, 9)), 1000)
	items := make([]WhatIfItem, 10)
	for i := range items {
		items[i] = WhatIfItem{Request: benchRequest, Profile: benchProfile}
	}
	res := WhatIf(items, hosts, nil, 3)
	if res.Unplaced != 0 || len(res.Placements) != 10 || len(res.Placements[9].Alternatives) != 3 {
		b.Fatalf("unexpected result: %d unplaced, %+v", res.Unplaced, res.Placements[9])
	}
	b.ReportAllocs()
	for b.Loop() {
		WhatIf(items, hosts, nil, 3)
	}
}
