package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// TestClusterStatusGolden: three replicas answering /cluster (two
// members, one replica not in cluster mode), printed as a table and as
// JSON; the exit status names the replica that is not a member. The
// replicas here are HTTP handlers serving fixed answers: the real
// /cluster handler is exercised by TestThreeReplicas.
func TestClusterStatusGolden(t *testing.T) {
	serve := func(st *ClusterStatus) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if st == nil {
				http.Error(w, "not in cluster mode", http.StatusNotFound)
				return
			}
			_ = json.NewEncoder(w).Encode(st)
		}))
		t.Cleanup(s.Close)
		return s
	}
	peers := []NATSMember{{Name: "ctl-1", Current: true}, {Name: "ctl-2", Current: true}, {Name: "ctl-3", Offline: true}}
	a := serve(&ClusterStatus{Cluster: "ecrae", Node: "ctl-1", Leader: "ctl-1", IsLeader: true, KBRevision: 7, ViewSeq: 1204,
		NATS: NATSStatus{Embedded: true, Routes: 4, MetaLeader: "ctl-2", Peers: peers}})
	b := serve(&ClusterStatus{Cluster: "ecrae", Node: "ctl-2", Leader: "ctl-1", KBRevision: 7, ViewSeq: 1203,
		NATS: NATSStatus{Embedded: true, Routes: 4, MetaLeader: "ctl-2", Peers: peers}})
	c := serve(nil)
	names := strings.NewReplacer(strings.TrimPrefix(a.URL, "http://"), "A", strings.TrimPrefix(b.URL, "http://"), "B", strings.TrimPrefix(c.URL, "http://"), "C")
	eps := strings.Join([]string{strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://"), strings.TrimPrefix(c.URL, "http://")}, ",")
	for _, tc := range []struct {
		args   []string
		golden string
	}{
		{[]string{"status", "--http", eps}, "cluster_status.txt"},
		{[]string{"status", "--http", eps, "--json"}, "cluster_status.json"},
	} {
		var out bytes.Buffer
		err := runCluster(context.Background(), tc.args, &out, &out)
		if err == nil || !strings.Contains(names.Replace(err.Error()), "unreachable: C") {
			t.Errorf("%s: err = %v, want it to name C as unreachable", tc.golden, err)
		}
		calGolden(t, tc.golden, []byte(names.Replace(out.String())))
	}
	// Bad input: one readable line naming the flag.
	if err := runCluster(context.Background(), []string{"status", "--http", " , "}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--http") {
		t.Errorf("empty --http: err = %v", err)
	}
}

// TestServeClusterFlagErrors: a cluster flag that cannot work stops serve
// before anything opens, with one line naming the flag.
func TestServeClusterFlagErrors(t *testing.T) {
	dir := t.TempDir()
	base := []string{"--db", dir + "/ecrae.db", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-routes", "nats://a:1"}, "need --cluster"},
		{[]string{"--cluster", "c"}, "--nats-cluster-addr and --nats-routes"},
		{[]string{"--cluster", "c", "--nats-cluster-addr", "127.0.0.1:6222", "--nats-routes", "http://a:1"}, "--nats-routes"},
		{[]string{"--cluster", "c d", "--nats-cluster-addr", "127.0.0.1:6222", "--nats-routes", "nats://a:1"}, "--cluster"},
		{[]string{"--cluster", "c", "--node-name", "", "--nats-cluster-addr", "127.0.0.1:6222", "--nats-routes", "nats://a:1"}, "--node-name"},
		{[]string{"--cluster", "c", "--lease-ttl", "10ms", "--nats-cluster-addr", "127.0.0.1:6222", "--nats-routes", "nats://a:1"}, "--lease-ttl"},
		{[]string{"--cluster", "c", "--nats", "nats://127.0.0.1:1", "--nats-routes", "nats://a:1"}, "embedded"},
		{[]string{"--grpc-advertise", "10.0.0.1:50051"}, "--grpc-advertise needs --cluster"},
		{[]string{"--cluster", "c", "--grpc-advertise", "10.0.0.1", "--nats-cluster-addr", "127.0.0.1:6222", "--nats-routes", "nats://a:1"}, "--grpc-advertise"},
	} {
		var stderr bytes.Buffer
		err := runServe(context.Background(), append(append([]string{}, base...), tc.args...), &stderr)
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one usage line naming %s", tc.args, err, tc.want)
		}
	}
}

// TestWhileLeaderRunsOncePerTerm: a function that returns at once (the
// periodic mode switched off) runs once per leadership term, not in a
// loop while the term lasts.
func TestWhileLeaderRunsOncePerTerm(t *testing.T) {
	c := clusterServe{name: "c", st: &clusterState{changed: make(chan struct{})}}
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int64
	done := make(chan error)
	go func() { done <- c.whileLeader(ctx, func(context.Context) error { calls.Add(1); return nil }) }()
	for term := int64(1); term <= 2; term++ {
		lctx, end := context.WithCancel(ctx)
		c.st.setLeading(lctx)
		for calls.Load() < term {
			runtime.Gosched()
		}
		end()
		c.st.setLeading(nil)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("fn ran %d times in 2 terms, want 2", n)
	}
}

// TestAdvertised: the address other replicas forward to.
func TestAdvertised(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct{ flag, grpc, want string }{
		{"", "10.0.0.5:50051", "10.0.0.5:50051"},                      // a specific address: itself
		{"", "0.0.0.0:50051", host + ":50051"},                        // everywhere: the hostname
		{"", "[::]:50051", host + ":50051"},                           // same in IPv6
		{"", ":50051", host + ":50051"},                               // no host: everywhere
		{"ctl-1.example:7000", "0.0.0.0:50051", "ctl-1.example:7000"}, // the flag wins
	} {
		got, err := advertised(tc.flag, tc.grpc)
		if err != nil || got != tc.want {
			t.Errorf("advertised(%q, %q) = %q, %v; want %q", tc.flag, tc.grpc, got, err, tc.want)
		}
	}
}
