package ha

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/novafake"
	"github.com/ecrae/ecrae/power"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPowerFollowerForwardsAndDeposedLeaderIsFenced: two replicas (real
// clustered NATS, real gRPC), each with its power manager fenced by its
// lease, one real IPMI peer (pyghmi's fakebmc) for host c1. A power off
// and on asked of the follower are done by the leader (its history holds
// them, and the follower's the same events, replicated). Then the lease is stolen in the bucket: the
// old leader's power off is refused by the fence, directly and over gRPC
// (UNAVAILABLE), Nova is not called, and the BMC stays on.
func TestPowerFollowerForwardsAndDeposedLeaderIsFenced(t *testing.T) {
	// Long: the stolen lease must not expire (and be won back by the old
	// leader) while the test asks the old leader to act.
	rs, novas, bmc := powerReplicas(t, 2, 12*time.Second)
	leader, followers := leaderAndFollower(t, rs)
	follower := followers[0]
	ctx := context.Background()

	if _, err := follower.powerClient().PowerOff(ctx, &ecraev1.PowerOffRequest{Host: "c1"}); err != nil {
		t.Fatalf("power off on the follower: %v", err)
	}
	if got := bmc(); got != "Chassis Power is off" {
		t.Fatalf("BMC after a forwarded power off: %q", got)
	}
	if _, err := follower.powerClient().PowerOn(ctx, &ecraev1.PowerOnRequest{Host: "c1"}); err != nil {
		t.Fatalf("power on on the follower: %v", err)
	}
	if got := bmc(); got != "Chassis Power is on" {
		t.Fatalf("BMC after a forwarded power on: %q", got)
	}
	if evs, _ := leader.power.History("c1", 0); len(evs) != 2 || evs[0].Action != power.ActOn || evs[1].Action != power.ActOff {
		t.Errorf("leader's history %+v, want off then on", evs)
	}
	eventually(t, "the follower's history to hold the leader's two events", func() bool {
		evs, _ := follower.power.History("", 0)
		return len(evs) == 2 && evs[0].Action == power.ActOn && evs[0].By == "cli" && evs[1].Action == power.ActOff
	})
	if got := novas[follower.name].Log(); got != "" {
		t.Errorf("follower's Nova calls %q, want none: it acted on nothing", got)
	}
	// The follower answers the history itself: it holds the replicated copy.
	h, err := follower.powerClient().ListPowerEvents(ctx, &ecraev1.ListPowerEventsRequest{Host: "c1"})
	if err != nil || len(h.GetEvents()) != 2 {
		t.Errorf("history on the follower: %v, %v; want the leader's 2 events", h, err)
	}
	if got := novas[leader.name].Log(); got != "disable c1 ecrae: powered off" {
		t.Errorf("leader's Nova calls %q, want one disable", got)
	}

	// The lease is taken over in the bucket (a replica that found it
	// expired while the leader was paused): the old leader still believes
	// it leads until its next renewal, and its fence refuses.
	kv := *leader.lease.kv.Load()
	e, err := kv.Get(ctx, LeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, LeaseKey, []byte("intruder"), e.Revision()); err != nil {
		t.Fatal(err)
	}
	novaBefore := novas[leader.name].Log()
	err = leader.power.Off(ctx, "c1", "cli")
	if !errors.Is(err, power.ErrFenced) || !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), "intruder") {
		t.Fatalf("deposed leader's power off: %v, want fenced by the lease held by intruder", err)
	}
	// Over gRPC: handled by the old leader (until it notices), or refused
	// by whichever replica has no leader to forward to; UNAVAILABLE
	// either way.
	_, err = leader.powerClient().PowerOff(ctx, &ecraev1.PowerOffRequest{Host: "c1"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("power off on the deposed leader over gRPC: %v, want UNAVAILABLE", err)
	}
	if got := bmc(); got != "Chassis Power is on" {
		t.Errorf("BMC after the deposed leader's power offs: %q", got)
	}
	if got := novas[leader.name].Log(); got != novaBefore {
		t.Errorf("Nova called by the deposed leader: %q, was %q", got, novaBefore)
	}
	if evs, _ := leader.power.History("c1", 0); len(evs) < 3 || evs[0].Action != power.ActRefused {
		t.Errorf("leader's history %+v, want the refusal last", evs)
	}
}

// TestPowerStateFollowsTheLeader: the hosts one leader powered off are the
// next leader's to wake. Three replicas (real clustered NATS, real gRPC),
// one real IPMI peer (pyghmi's fakebmc) for host c1. The leader powers c1
// off and is stopped; the replica that takes the lease over learns from
// the replicated history that ECRAE powered c1 off (every follower knows
// it as soon as the event is replicated), wakes it when a boot
// finds no room, and enables its nova-compute once it reports. Before the
// history was replicated, the new leader knew nothing of c1: it stayed
// off, its service disabled, whatever the demand.
func TestPowerStateFollowsTheLeader(t *testing.T) {
	rs, novas, bmc := powerReplicas(t, 3, 0)
	leader, followers := leaderAndFollower(t, rs)
	ctx := context.Background()
	if _, err := followers[0].powerClient().PowerOff(ctx, &ecraev1.PowerOffRequest{Host: "c1"}); err != nil {
		t.Fatalf("power off: %v", err)
	}
	if got := bmc(); got != "Chassis Power is off" {
		t.Fatalf("BMC after power off: %q", got)
	}
	off, _ := leader.power.History("c1", 1)
	if len(off) != 1 || off[0].Action != power.ActOff {
		t.Fatalf("leader's history %+v, want the power off", off)
	}
	// Every replica holds the event under the stream's number.
	for _, f := range followers {
		eventually(t, f.name+"'s history to hold the power off", func() bool {
			evs, _ := f.power.History("c1", 0)
			return len(evs) == 1 && evs[0].Seq == off[0].Seq && evs[0].Action == power.ActOff && evs[0].Detail == off[0].Detail
		})
	}

	// Each follower's manager knows it too (its console shows it).
	for _, f := range followers {
		eventually(t, f.name+" to count c1 off", func() bool { return f.power.IsOff("c1") })
	}

	leader.stop()
	var next *replica
	eventually(t, "a new leader that has taken the power state over", func() bool {
		for _, f := range followers {
			if f.lease.IsLeader() && f.power.IsOff("c1") {
				next = f
				return true
			}
		}
		return false
	})
	// A boot found no room: the new leader wakes the host the old one
	// powered off.
	next.power.Tick(ctx, true)
	if got := bmc(); got != "Chassis Power is on" {
		t.Fatalf("BMC after the new leader's no-room pass: %q", got)
	}
	evs, _ := next.power.History("c1", 1)
	if len(evs) != 1 || evs[0].Action != power.ActOn || evs[0].By != "no-room" || evs[0].Seq != off[0].Seq+1 {
		t.Fatalf("new leader's last event %+v, want the no-room power on after seq %d", evs, off[0].Seq)
	}
	// The host reports again: its nova-compute is enabled, by the new
	// leader (the old one disabled it).
	next.view.Reconcile(hostview.Inventory{At: time.Now().Add(time.Second), Hosts: []hostview.HostInventory{{Name: "c1", State: "up", ISA: "x86_64",
		Capacity: hostview.Capacity{VCPUs: 8, CPURatio: 1, MemoryMB: 16384, DiskGB: 100}}}})
	next.power.Tick(ctx, false)
	if got := novas[next.name].Log(); got != "enable c1" {
		t.Errorf("new leader's Nova calls %q, want the service enabled", got)
	}
	if got := novas[leader.name].Log(); got != "disable c1 ecrae: powered off" {
		t.Errorf("old leader's Nova calls %q, want the one disable", got)
	}
	if next.power.IsOff("c1") {
		t.Error("c1 still counted off after it was woken")
	}
}

// powerReplicas starts n replicas (lease TTL ttl, 0: the default), each
// with a power manager (policy act, fenced by its lease, its own Nova
// stand-in) for one host, c1, whose BMC is a real fakebmc; bmc reads its
// power state through ipmitool.
func powerReplicas(t *testing.T, n int, ttl time.Duration) (rs []*replica, novas map[string]*novafake.Services, bmc func() string) {
	t.Helper()
	port := startFakeBMC(t)
	novas = map[string]*novafake.Services{}
	var mu sync.Mutex
	rs = startReplicas(t, n, replicaOptions{
		ttl: ttl,
		view: func(v *hostview.View) {
			v.Reconcile(hostview.Inventory{At: time.Now(), Hosts: []hostview.HostInventory{{Name: "c1", State: "up", ISA: "x86_64",
				Capacity: hostview.Capacity{VCPUs: 8, CPURatio: 1, MemoryMB: 16384, DiskGB: 100}}}})
		},
		power: func(l *Lease, v *hostview.View, hist *power.History) *power.Manager {
			nova := &novafake.Services{}
			mu.Lock()
			novas[l.Name()] = nova
			mu.Unlock()
			m, err := power.NewManager(power.Config{Policy: power.PolicyAct, View: v, History: hist, Nova: nova, Fence: l,
				Credentials: &power.CredentialFile{Default: &power.Credentials{Username: "admin", Password: "password"}},
				Hosts: func(context.Context) ([]power.HostEntry, error) {
					return []power.HostEntry{{Name: "c1", Architecture: "old", Power: fmt.Sprintf("ipmi://127.0.0.1:%d", port)}}, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
	})
	bmc = func() string {
		t.Helper()
		out, err := ipmitool(port, "power", "status")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return rs, novas, bmc
}
