package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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
