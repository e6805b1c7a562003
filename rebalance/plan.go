package rebalance

import (
	"slices"
	"strings"
	"time"

	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/planstore"
)

// NewPlan turns the optimizer's plan into the stored form.
func NewPlan(cl optimizer.Cluster, p *optimizer.Plan, source string, now time.Time, took time.Duration) *planstore.Plan {
	host := func(i int) string { return cl.Hosts[i].Name }
	sp := &planstore.Plan{
		Status: planstore.StatusPlanned, Source: source, CreatedAt: now,
		Algorithm: p.Algorithm, Seed: p.Seed, Seconds: took.Seconds(), Stopped: p.Stopped, Iterations: int64(p.Iterations),
		Waves: p.Waves, PowerBeforeW: p.PowerBeforeW, PowerAfterW: p.PowerAfterW,
		MigrationMB: p.MigrationMB, MigrationW: p.MigrationW, Note: p.Note,
		Bounds: planstore.Bounds{Hosts: p.Bounds.Bins, Continuous: p.Bounds.Continuous, L2: p.Bounds.L2,
			Conflicts: p.Bounds.Conflicts, Watts: p.Bounds.Watts},
	}
	// Repair before saving: the hosts the plan takes out of overload, those
	// it cannot, and why.
	for _, b := range p.Repaired {
		sp.Repaired = append(sp.Repaired, host(b))
	}
	for _, b := range p.Overloaded {
		sp.Overloaded = append(sp.Overloaded, host(b))
	}
	sp.InfeasibleReason = p.InfeasibleReason
	for _, mv := range p.Moves {
		in := &cl.Instances[mv.Instance]
		sp.Steps = append(sp.Steps, planstore.Step{Wave: mv.Wave, InstanceID: in.ID, InstanceName: in.Name,
			From: host(mv.From), To: host(mv.To), MemoryMB: mv.MemoryMB, Detour: mv.Detour, Status: planstore.StepPending})
	}
	for _, b := range p.HostsFreed {
		sp.HostsFreed = append(sp.HostsFreed, host(b))
	}
	used := map[string]bool{}
	for _, in := range cl.Instances {
		used[in.Host] = true
	}
	sp.HostsBefore = len(used)
	clear(used)
	for _, b := range p.Placement {
		used[host(b)] = true
	}
	sp.HostsAfter = len(used)
	for _, b := range p.PowerDown {
		if cl.Hosts[b].State == optimizer.HostUp || cl.Hosts[b].State == optimizer.HostDisabled {
			sp.PowerDown = append(sp.PowerDown, host(b))
		}
	}
	for _, u := range p.Unreachable {
		sp.Unreachable = append(sp.Unreachable, planstore.Unreachable{InstanceID: cl.Instances[u.Instance].ID, Target: host(u.Target), Reason: u.Reason})
	}
	// The instances that cannot move, grouped by reason: one entry per
	// instance made a plan of a large cloud megabytes long, rewritten at
	// every step.
	fixed := make([]int, 0, len(p.Fixed))
	for i := range p.Fixed {
		fixed = append(fixed, i)
	}
	slices.SortFunc(fixed, func(a, b int) int { return strings.Compare(cl.Instances[a].ID, cl.Instances[b].ID) })
	group := map[string]int{}
	for _, i := range fixed {
		why := p.Fixed[i]
		g, ok := group[why]
		if !ok {
			g = len(sp.FixedGroups)
			group[why] = g
			sp.FixedGroups = append(sp.FixedGroups, planstore.FixedGroup{Reason: why})
		}
		fg := &sp.FixedGroups[g]
		fg.Count++
		if len(fg.Examples) < planstore.MaxFixedExamples {
			fg.Examples = append(fg.Examples, cl.Instances[i].ID)
		}
	}
	slices.SortFunc(sp.FixedGroups, func(a, b planstore.FixedGroup) int { return strings.Compare(a.Reason, b.Reason) })
	return sp
}
