package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFollowerForwardsToLeader (issue 14 point 4): two `ecrae serve
// --cluster` processes. `ecrae rebalance plan` against the follower is
// answered with the plan the leader made and stored, once; cancelling it
// through the follower reaches the leader, which records who asked and
// through which replica.
func TestFollowerForwardsToLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two services")
	}
	noCloud(t)
	var rs []*replicaProc
	var routes []string
	for i := range 2 {
		r := &replicaProc{name: fmt.Sprintf("r%d", i), grpc: freeAddr(t), http: freeAddr(t), nats: freeAddr(t), route: freeAddr(t), dir: t.TempDir()}
		rs = append(rs, r)
		routes = append(routes, "nats://"+r.route)
	}
	for _, r := range rs {
		r.start(t, strings.Join(routes, ","))
	}
	var leader, follower *replicaProc
	waitFor(t, "a leader known to the follower", func() bool {
		leader, follower = nil, nil
		for _, r := range rs {
			st, err := r.status()
			if err != nil {
				return false
			}
			if st.IsLeader {
				leader = r
			} else if st.Leader != "" {
				follower = r
			}
		}
		return leader != nil && follower != nil
	})
	var b strings.Builder
	b.WriteString("hosts:\n")
	for j := range 4 {
		fmt.Fprintf(&b, "  - {name: h%d, architecture: dell-r740-xeon-8280, vcpus: 10, memory_mb: 16384, disk_gb: 500}\n", j)
	}
	b.WriteString("instances:\n")
	for i := range 8 {
		fmt.Fprintf(&b, "  - {id: i%d, name: vm%d, host: h%d, vcpus: 2, memory_mb: 2048, disk_gb: 10, cpu_utilization: 0.5}\n", i, i, i%4)
	}
	snap := filepath.Join(t.TempDir(), "snap.yaml")
	writeFile(t, snap, b.String())

	// Until the follower has read the leader's address from the lease and
	// the leader's plan bucket answers, the call is refused and nothing is
	// stored.
	var out string
	waitFor(t, "a plan through the follower", func() bool {
		var err error
		out, err = cli(t, "rebalance", "plan", "--snapshot", snap, "--server", follower.grpc)
		return err == nil
	})
	m := regexp.MustCompile(`plan (\S+) \(planned\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("plan through the follower:\n%s", out)
	}
	id := m[1]
	list, err := cli(t, "rebalance", "list", "--server", leader.grpc)
	if err != nil || strings.Count(list, " planned ") != 1 || !strings.Contains(list, id) {
		t.Fatalf("plans on the leader (want %s only):\n%s %v", id, list, err)
	}
	waitFor(t, "the plan on the follower", func() bool {
		out, err := cli(t, "rebalance", "show", id, "--server", follower.grpc)
		return err == nil && strings.Contains(out, id)
	})
	if out, err := cli(t, "rebalance", "cancel", id, "--server", follower.grpc); err != nil {
		t.Fatalf("cancel through the follower: %v\n%s", err, out)
	}
	show, err := cli(t, "rebalance", "show", id, "--server", leader.grpc)
	if err != nil || !strings.Contains(show, "cancelled") || !strings.Contains(show, "forwarded by "+follower.name) {
		t.Errorf("the plan on the leader after a cancel through %s:\n%s %v", follower.name, show, err)
	}
}
