package ha

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/planstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// spread is four half-empty hosts: two of them can be emptied (8 × 2
// vCPUs on 4 × 10 vCPUs fit on 2).
func spread() *ecraev1.ClusterSnapshot {
	s := &ecraev1.ClusterSnapshot{}
	for j := range 4 {
		s.Hosts = append(s.Hosts, &ecraev1.SnapshotHost{Name: fmt.Sprintf("h%d", j), Architecture: "old",
			Vcpus: 10, MemoryMb: 16384, DiskGb: 500})
	}
	for i := range 8 {
		u := 0.5
		s.Instances = append(s.Instances, &ecraev1.SnapshotInstance{Id: fmt.Sprintf("i%d", i), Name: fmt.Sprintf("vm%d", i),
			Host: fmt.Sprintf("h%d", i%4), Vcpus: 2, MemoryMb: 2048, DiskGb: 10, CpuUtilization: &u})
	}
	return s
}

// TestFollowerForwardsRebalanceCalls: three replicas (real clustered NATS,
// real plan files, real gRPC over TCP). PlanRebalance on a follower is
// answered with the plan the leader made, stored once (one plan on every
// replica, the same id); cancel through the other follower reaches the
// leader with the caller named; a call already forwarded is never
// forwarded again.
func TestFollowerForwardsRebalanceCalls(t *testing.T) {
	rs := startReplicas(t, 3, replicaOptions{})
	leader, followers := leaderAndFollower(t, rs)
	ctx := context.Background()

	resp, err := followers[0].rebalance().PlanRebalance(ctx, &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Seed: 1})
	if err != nil {
		t.Fatalf("PlanRebalance on follower %s: %v", followers[0].name, err)
	}
	id := resp.GetPlan().GetId()
	if id == "" || len(resp.GetPlan().GetSteps()) == 0 || resp.GetPlan().GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_PLANNED {
		t.Fatalf("plan from the follower: %v", resp.GetPlan())
	}
	if _, err := leader.store.Get(ctx, id); err != nil {
		t.Fatalf("plan %s not in the leader's store: %v", id, err)
	}
	for _, r := range rs {
		eventually(t, "the plan on "+r.name, func() bool {
			ps, err := r.store.Plans(ctx, 0)
			return err == nil && len(ps) == 1 && ps[0].ID == id
		})
	}
	kv := *leader.plans.kv.Load()
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0] != id {
		t.Errorf("plans bucket keys %v (%v), want only %s", keys, err, id)
	}

	// A dry run and a cancel through the other follower.
	dry, err := followers[1].rebalance().ExecutePlan(ctx, &ecraev1.ExecutePlanRequest{PlanId: id})
	if err != nil || !dry.GetDryRun() {
		t.Fatalf("dry run on follower: %v, %v", dry, err)
	}
	c, err := followers[1].rebalance().CancelPlan(ctx, &ecraev1.CancelPlanRequest{PlanId: id})
	if err != nil {
		t.Fatalf("cancel on follower: %v", err)
	}
	msg := c.GetPlan().GetMessage()
	if c.GetPlan().GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_CANCELLED || !strings.Contains(msg, "forwarded by "+followers[1].name) || !strings.Contains(msg, "unverified") {
		t.Errorf("cancelled plan: %s %q, want cancelled, the forwarding replica and the unverified caller named", c.GetPlan().GetStatus(), msg)
	}
	p, err := leader.store.Get(ctx, id)
	if err != nil || p.Status != planstore.StatusCancelled {
		t.Errorf("leader's copy: %+v, %v", p, err)
	}

	// A call that says it was forwarded already is answered, not
	// forwarded: UNAVAILABLE naming the leader.
	fwd := metadata.AppendToOutgoingContext(ctx, server.MDForwardedBy, "elsewhere")
	_, err = followers[0].rebalance().PlanRebalance(fwd, &ecraev1.PlanRebalanceRequest{Snapshot: spread(), Seed: 2})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "does not lead") || !strings.Contains(err.Error(), leader.name) {
		t.Errorf("twice-forwarded call: %v, want UNAVAILABLE naming leader %s", err, leader.name)
	}
	if ps, _ := leader.store.Plans(ctx, 0); len(ps) != 1 {
		t.Errorf("%d plans on the leader, want 1: the refused call stored one", len(ps))
	}
	// Reads stay local (the plan store is replicated).
	if _, err := followers[0].rebalance().GetPlan(fwd, &ecraev1.GetPlanRequest{PlanId: id}); err != nil {
		t.Errorf("GetPlan on a follower: %v", err)
	}
}
