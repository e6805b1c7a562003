package optimizer

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkConsolidate10k plans a rebalance of a 10,000-instance, 1,000-host
// cluster (three host models, two ISAs, tags with ceilings, anti-affinity
// groups, a few pinned instances) with the default algorithm and the
// service's default one-second search budget: search, sequencing and waves.
// The target is under 2 s.
func BenchmarkConsolidate10k(b *testing.B) {
	c := benchCluster(rand.New(rand.NewPCG(10, 1000)), 1000, 10000)
	if len(c.Instances) != 10000 {
		b.Fatalf("only %d instances placed", len(c.Instances))
	}
	run := func() *Plan {
		p, err := Consolidate(c, ConsolidateOptions{Seed: 1, Budget: Budget{Now: time.Now, Deadline: time.Now().Add(time.Second)}})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	p := run()
	if len(p.Moves) == 0 || len(p.HostsFreed) == 0 || p.PowerAfterW >= p.PowerBeforeW {
		b.Fatalf("no useful plan: %d moves, %d hosts freed, %.0f → %.0f W", len(p.Moves), len(p.HostsFreed), p.PowerBeforeW, p.PowerAfterW)
	}
	for b.Loop() {
		p = run()
	}
	b.ReportMetric(float64(len(p.Moves)), "moves")
	b.ReportMetric(float64(p.Waves), "waves")
	b.ReportMetric(float64(len(p.HostsFreed)), "hosts-freed")
	b.ReportMetric(100*(1-p.PowerAfterW/p.PowerBeforeW), "%-power-saved")
	b.ReportMetric(float64(p.Bounds.Bins), "lb-hosts")
}

// benchCluster spreads n instances at random over m hosts that have room
// for about twice as many: what years of spreading schedulers leave.
func benchCluster(r *rand.Rand, m, n int) Cluster {
	var c Cluster
	models := []*Model{bigX86, bigX86, smallX86, arm64}
	for j := range m {
		md := models[r.IntN(len(models))]
		c.Hosts = append(c.Hosts, ClusterHost{Name: fmt.Sprintf("h%d", j), Model: md, VCPUs: md.Cores,
			MemoryMB: int64(md.Cores) * 8192, DiskGB: 4000, CPURatio: 4, RAMRatio: 1, DiskRatio: 1})
	}
	profiles := []Profile{{Tag: "default"}, {Tag: "web", UtilizationCeiling: 0.8, CPULoad: 0.5},
		{Tag: "arm-only", Mode: ModeExact, Candidates: []Candidate{{Architecture: "arm", UtilizationCeiling: 0.7}}}}
	for g := range 200 {
		c.Groups = append(c.Groups, ServerGroup{Name: fmt.Sprintf("anti-%d", g), Policy: PolicyAntiAffinity})
	}
	used := make([][4]float64, m)
	members := map[string]map[int]bool{}
	for i := 0; len(c.Instances) < n; i++ {
		in := ClusterInstance{ID: fmt.Sprintf("i%d", i), VCPUs: 1 + r.IntN(4), MemoryMB: int64(1+r.IntN(8)) * 1024,
			DiskGB: 20, CPUUtil: 0.6 * r.Float64(), CPUUtilKnown: true, Profile: profiles[r.IntN(len(profiles))]}
		if r.IntN(50) == 0 {
			in.Pinned = true
		}
		if r.IntN(10) == 0 {
			in.Group = fmt.Sprintf("anti-%d", r.IntN(200))
		}
		for range 50 {
			j := r.IntN(m)
			h := &c.Hosts[j]
			if !initialFit(h, &in, used[j]) || (in.Group != "" && members[in.Group][j]) {
				continue
			}
			in.Host = h.Name
			used[j][0] += float64(in.VCPUs)
			used[j][1] += float64(in.MemoryMB)
			used[j][2] += float64(in.DiskGB)
			used[j][3] += in.Busy()
			if in.Group != "" {
				if members[in.Group] == nil {
					members[in.Group] = map[int]bool{}
				}
				members[in.Group][j] = true
			}
			c.Instances = append(c.Instances, in)
			break
		}
	}
	return c
}
