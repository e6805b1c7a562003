package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFollowerForwardsToLeader (issue 14 point 4): two `ecrae serve
// --cluster` processes. `ecrae rebalance plan` against the follower is
// answered with the plan the leader made and stored, once; cancelling it
// through the follower reaches the leader, which records who asked and
// through which replica: over plain gRPC the caller's address, marked
// unverified; over mutual TLS with --authz the operator's certificate
// name, believed because the follower's certificate has the replica role.
func TestFollowerForwardsToLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two services per case")
	}
	noCloud(t)
	t.Run("plain", func(t *testing.T) {
		forwardScenario(t, nil, func(r *replicaProc) string { return "forwarded by " + r.name })
	})
	t.Run("mutual-tls", func(t *testing.T) {
		ca := newTestCA(t, t.TempDir(), "cluster")
		forwardScenario(t, ca, func(r *replicaProc) string { return "cert:ops via " + r.name + " (cert:ecrae-" + r.name + ")" })
	})
}

func forwardScenario(t *testing.T, ca *testCA, wantWho func(follower *replicaProc) string) {
	var rs []*replicaProc
	var routes []string
	a := freeAddrs(t, 2*4) // every replica lists every route before any starts
	for i := range 2 {
		r := &replicaProc{name: fmt.Sprintf("r%d", i), grpc: a[4*i], http: a[4*i+1], nats: a[4*i+2], route: a[4*i+3], dir: t.TempDir()}
		rs = append(rs, r)
		routes = append(routes, "nats://"+r.route)
	}
	var cliTLS []string
	status := func(r *replicaProc) (*ClusterStatus, error) { return r.status() }
	if ca == nil {
		for _, r := range rs {
			r.start(t, strings.Join(routes, ","))
		}
	} else {
		dir := t.TempDir()
		authz := filepath.Join(dir, "authz.yaml")
		writeFile(t, authz, "operator: [ops]\nreplica: [ecrae-r0, ecrae-r1]\n")
		opsCert, opsKey, _ := ca.issue("ops", "ops", nil)
		cliTLS = []string{"--tls-ca", ca.File, "--tls-cert", opsCert, "--tls-key", opsKey}
		for _, r := range rs {
			cert, key, _ := ca.issue(r.name, "ecrae-"+r.name, nil)
			logPath := filepath.Join(r.dir, "serve.log")
			r.c = startChild(t, logPath, "--cluster", "ecrae-test", "--node-name", r.name,
				"--nats-cluster-addr", r.route, "--nats-routes", strings.Join(routes, ","), "--nats-addr", r.nats,
				"--grpc-addr", r.grpc, "--http-addr", r.http, "--db", filepath.Join(r.dir, "ecrae.db"), "--lease-ttl", "2s",
				"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.File, "--authz", authz)
			logOnFailure(t, r.name, logPath)
		}
		status = func(r *replicaProc) (*ClusterStatus, error) {
			body, err := tryHTTPS(ca, "https://"+r.http+"/cluster")
			if err != nil {
				return nil, err
			}
			var st ClusterStatus
			return &st, json.Unmarshal([]byte(body), &st)
		}
	}
	var leader, follower *replicaProc
	waitFor(t, "a leader known to the follower", func() bool {
		leader, follower = nil, nil
		for _, r := range rs {
			st, err := status(r)
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
	at := func(r *replicaProc, args ...string) (string, error) {
		return cli(t, append(append(args, "--server", r.grpc), cliTLS...)...)
	}
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
		out, err = at(follower, "rebalance", "plan", "--snapshot", snap)
		return err == nil
	})
	m := regexp.MustCompile(`plan (\S+) \(planned\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("plan through the follower:\n%s", out)
	}
	id := m[1]
	list, err := at(leader, "rebalance", "list")
	if err != nil || strings.Count(list, " planned ") != 1 || !strings.Contains(list, id) {
		t.Fatalf("plans on the leader (want %s only):\n%s %v", id, list, err)
	}
	waitFor(t, "the plan on the follower", func() bool {
		out, err := at(follower, "rebalance", "show", id)
		return err == nil && strings.Contains(out, id)
	})
	if out, err := at(follower, "rebalance", "cancel", id); err != nil {
		t.Fatalf("cancel through the follower: %v\n%s", err, out)
	}
	show, err := at(leader, "rebalance", "show", id)
	if err != nil || !strings.Contains(show, "cancelled") || !strings.Contains(show, wantWho(follower)) {
		t.Errorf("the plan on the leader after a cancel through %s, want %q in:\n%s %v", follower.name, wantWho(follower), show, err)
	}
	if ca == nil {
		consoleCancelThroughFollower(t, leader, follower, snap, at, wantWho(follower))
	}
	// One audit trail for the cluster: the cancel made through the
	// follower is recorded once, by the leader that ran it, naming the
	// follower, and both replicas list it.
	for _, r := range []*replicaProc{leader, follower} {
		var cancels []string
		waitFor(t, "the forwarded cancel in "+r.name+"'s audit trail", func() bool {
			out, err := at(r, "audit", "--json")
			if err != nil {
				return false
			}
			var resp struct {
				Records []struct{ Who, Method, Target, Replica string }
			}
			if err := json.Unmarshal([]byte(out), &resp); err != nil {
				t.Fatalf("ecrae audit --json on %s: %v\n%s", r.name, err, out)
			}
			cancels = cancels[:0]
			for _, rec := range resp.Records {
				if strings.HasSuffix(rec.Method, "/CancelPlan") && strings.Contains(rec.Target, id) {
					cancels = append(cancels, rec.Replica+" "+rec.Who)
				}
			}
			return len(cancels) > 0
		})
		if len(cancels) != 1 || !strings.HasPrefix(cancels[0], leader.name+" ") || !strings.Contains(cancels[0], wantWho(follower)) {
			t.Errorf("%s's audit trail: the cancel of %s recorded as %q, want once, by %s, naming %q", r.name, id, cancels, leader.name, wantWho(follower))
		}
	}
}

// consoleCancelThroughFollower: a plan cancelled on the follower's web
// console is cancelled by the leader, as through the CLI (the console's
// actions go through the same forwarder as gRPC calls).
func consoleCancelThroughFollower(t *testing.T, leader, follower *replicaProc, snap string, at func(r *replicaProc, args ...string) (string, error), who string) {
	t.Helper()
	out, err := at(leader, "rebalance", "plan", "--snapshot", snap)
	m := regexp.MustCompile(`plan (\S+) \(planned\)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("second plan on the leader: %v\n%s", err, out)
	}
	id := m[1]
	waitFor(t, "the second plan on the follower", func() bool {
		out, err := at(follower, "rebalance", "show", id)
		return err == nil && strings.Contains(out, id)
	})
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + follower.http
	resp, err := browser.Get(base + "/confirm?action=cancel&plan=" + url.QueryEscape(id))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tok := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page)
	if tok == nil {
		t.Fatalf("no token on the follower's confirm page:\n%s", page)
	}
	resp, err = browser.PostForm(base+"/plans/"+url.PathEscape(id)+"/cancel", url.Values{"csrf": {string(tok[1])}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel on the follower's console: HTTP %d, want 303:\n%s", resp.StatusCode, page)
	}
	show, err := at(leader, "rebalance", "show", id)
	if err != nil || !strings.Contains(show, "cancelled") || !strings.Contains(show, who) {
		t.Errorf("the plan on the leader after a cancel on %s's console, want cancelled by %q in:\n%s %v", follower.name, who, show, err)
	}
}
