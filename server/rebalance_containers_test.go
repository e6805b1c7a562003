package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// TestPlanMovesContainers: containers the node agents report are planned
// like VMs (the same rule set), same-ISA only: four half-empty x86 hosts
// holding containers are packed onto x86 hosts, never onto the empty
// aarch64 host.
func TestPlanMovesContainers(t *testing.T) {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	inv := hostview.Inventory{At: time.Now()}
	for j := range 5 {
		isa := "x86_64"
		if j == 4 {
			isa = "aarch64"
		}
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: fmt.Sprintf("h%d", j), Nodename: fmt.Sprintf("h%d", j),
			ISA: isa, State: "up", Capacity: hostview.Capacity{VCPUs: 10, CPURatio: 1, MemoryMB: 16384, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
	}
	view.Reconcile(inv)
	now := time.Now()
	ids := map[string]bool{}
	for j := range 4 {
		host := fmt.Sprintf("h%d", j)
		rep := hostview.ContainerReport{Host: host, At: now, Arch: "x86_64"}
		for k := range 2 {
			id := fmt.Sprintf("ctr-%d-%d", j, k)
			ids[id] = true
			rep.Instances = append(rep.Instances, hostview.Instance{UUID: id, Name: id, Kind: hostview.KindContainer,
				State: "active", PowerState: "running", Flavor: hostview.Flavor{Name: "container", VCPUs: 2, MemoryMB: 2048}})
		}
		view.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: now, Containers: rep})
	}
	h := newRB(t, view, nil)
	p, err := h.client.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	steps := p.GetPlan().GetSteps()
	if len(steps) == 0 {
		t.Fatalf("no container moved: %v", p.GetPlan())
	}
	for _, st := range steps {
		if !ids[st.GetInstanceId()] {
			t.Errorf("step moves %s, not a container", st.GetInstanceId())
		}
		if st.GetToHost() == "h4" {
			t.Errorf("step %v moves a container to the aarch64 host", st)
		}
	}
}
