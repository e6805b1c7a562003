package server

import (
	"context"
	"slices"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// TestPlanRepairsOverloadedHost: Watcher's scenario_3 through PlanRebalance
// (issue 11): instances of 1, 2, 4 and 8 vCPUs, all 100 % busy, on the
// first of two 10-vCPU "old" hosts (10 threads, 100 → 200 W). The plan
// moves the 8 away though it costs power: before 15/10 busy, clamped to
// 200 W; after (100 + 100×0.7) + (100 + 100×0.8) = 170 + 180 = 350 W.
func TestPlanRepairsOverloadedHost(t *testing.T) {
	h := newRB(t, nil, nil)
	s := &ecraev1.ClusterSnapshot{}
	for _, n := range []string{"Node_0", "Node_1"} {
		s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: n, Architecture: "old", Vcpus: 10, MemoryMb: 65536, DiskGb: 250})
	}
	busy := 1.0
	for i, v := range []int32{1, 2, 4, 8} {
		s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: "INSTANCE_" + string(rune('6'+i)), Host: "Node_0",
			Vcpus: v, MemoryMb: 2048, DiskGb: 20, CpuUtilization: &busy})
	}
	resp, err := h.client.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{Snapshot: s, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := resp.GetPlan()
	if len(p.GetSteps()) != 1 || p.GetSteps()[0].GetInstanceId() != "INSTANCE_9" || p.GetSteps()[0].GetToHost() != "Node_1" {
		t.Fatalf("steps %v, want INSTANCE_9 to Node_1", p.GetSteps())
	}
	if !slices.Equal(p.GetRepairedHosts(), []string{"Node_0"}) || len(p.GetOverloadedHosts()) != 0 || p.GetInfeasibleReason() != "" {
		t.Errorf("repaired %v, overloaded %v (%q)", p.GetRepairedHosts(), p.GetOverloadedHosts(), p.GetInfeasibleReason())
	}
	if !near(p.GetPowerBeforeWatts(), 200) || !near(p.GetPowerAfterWatts(), 350) {
		t.Errorf("power %.1f → %.1f W, want 200 → 350", p.GetPowerBeforeWatts(), p.GetPowerAfterWatts())
	}
	got, err := h.client.GetPlan(context.Background(), &ecraev1.GetPlanRequest{PlanId: p.GetId()})
	if err != nil || !slices.Equal(got.GetPlan().GetRepairedHosts(), []string{"Node_0"}) {
		t.Fatalf("stored plan: %v, %v", got, err)
	}
}
