package ha

import (
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

func TestClusterSizeAndReplicas(t *testing.T) {
	routes := []string{"nats://10.0.0.1:6222", "nats://10.0.0.2:6222", "nats://10.0.0.3:6222"}
	for _, tc := range []struct {
		addr   string
		routes []string
		size   int
		repl   int
	}{
		{"10.0.0.1:6222", routes, 3, 3},                    // lists itself: 3 distinct members
		{"10.0.0.4:6222", routes, 4, 3},                    // not listed: 3 + itself; copies capped at 3
		{"10.0.0.1:6222", routes[:2], 2, 2},                // two members: min(3, 2)
		{"10.0.0.1:6222", nil, 1, 1},                       // alone
		{"10.0.0.1:6222", append(routes, routes[1]), 3, 3}, // a route twice counts once
	} {
		c := Cluster{Name: "c", Node: "n", Addr: tc.addr, Routes: tc.routes}
		if got := c.Size(); got != tc.size {
			t.Errorf("%s %v: Size() = %d, want %d", tc.addr, tc.routes, got, tc.size)
		}
		if got := Replicas(c.Size()); got != tc.repl {
			t.Errorf("%s %v: Replicas = %d, want %d", tc.addr, tc.routes, got, tc.repl)
		}
	}
}

func TestClusterApplyRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		c    Cluster
		want string
	}{
		{Cluster{Name: "a b", Node: "n", Addr: "127.0.0.1:6222"}, "--cluster"},
		{Cluster{Name: "c", Node: "x.y", Addr: "127.0.0.1:6222"}, "--node-name"},
		{Cluster{Name: "c", Node: "n", Addr: "127.0.0.1"}, "--nats-cluster-addr"},
		{Cluster{Name: "c", Node: "n", Addr: "127.0.0.1:0"}, "--nats-cluster-addr"},
	} {
		err := tc.c.Apply(&natsserver.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want it to name %s", tc.c, err, tc.want)
		}
	}
	o := &natsserver.Options{}
	c := Cluster{Name: "c", Node: "n1", Addr: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222", "nats://127.0.0.1:6223"}}
	if err := c.Apply(o); err != nil {
		t.Fatal(err)
	}
	if o.ServerName != "n1" || o.Cluster.Name != "c" || o.Cluster.Port != 6222 || len(o.Routes) != 1 || o.Routes[0].Host != "127.0.0.1:6223" {
		t.Errorf("options: server %q cluster %+v routes %v (want its own route left out)", o.ServerName, o.Cluster, o.Routes)
	}
}

func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{"nats://a:6222,nats://b:6222", "", " , ", "http://a:1", "nats://a", "nats://[::1]:6222", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		routes, err := ParseRoutes(s)
		if err != nil {
			// quote.Value keeps at most 100 bytes of the value; escaped as
			// %q, a byte takes at most 4 characters (\xNN).
			if len(err.Error()) > 4*100+100 {
				t.Errorf("error of %d bytes: the value must be quoted short", len(err.Error()))
			}
			return
		}
		for _, r := range routes {
			if !strings.Contains(r, "://") || strings.TrimSpace(r) != r {
				t.Errorf("accepted %q from %q", r, s)
			}
		}
	})
}
