package ha

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Cluster is the embedded NATS server's membership of a JetStream cluster.
type Cluster struct {
	Name   string   // cluster name, the same on every member
	Node   string   // this member's server name, unique in the cluster
	Addr   string   // HOST:PORT of this member's route listener
	Routes []string // nats://HOST:PORT of the members' route listeners (this one may be listed too)
}

// ParseRoutes reads a comma-separated list of nats:// route URLs.
func ParseRoutes(s string) ([]string, error) {
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" {
			return nil, fmt.Errorf("route %s: want nats://HOST:PORT", quote.Value(r))
		}
		out = append(out, r)
	}
	return out, nil
}

// Size is the number of members: the distinct route targets, plus this
// member when its own address is not among them.
func (c Cluster) Size() int {
	seen := map[string]bool{}
	for _, r := range c.Routes {
		if u, err := url.Parse(r); err == nil {
			seen[u.Host] = true
		}
	}
	if !seen[c.Addr] {
		return len(seen) + 1
	}
	return len(seen)
}

// Replicas is how many copies a replicated stream or bucket keeps:
// min(3, size), so any one member may be lost in a cluster of three.
func Replicas(size int) int {
	return max(1, min(3, size))
}

// Apply makes the embedded server's options those of a cluster member.
func (c Cluster) Apply(o *natsserver.Options) error {
	if c.Name == "" || strings.ContainsAny(c.Name, " \t.*>") {
		return fmt.Errorf("--cluster %s: want a name without spaces, dots or wildcards", quote.Value(c.Name))
	}
	if c.Node == "" || strings.ContainsAny(c.Node, " \t.*>") {
		return fmt.Errorf("--node-name %s: want a name without spaces, dots or wildcards", quote.Value(c.Node))
	}
	host, portStr, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--nats-cluster-addr %s: %v", quote.Value(c.Addr), err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--nats-cluster-addr %s: want a port in 1..65535", quote.Value(c.Addr))
	}
	var routes []*url.URL
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil {
			return fmt.Errorf("--nats-routes %s: %v", quote.Value(r), err)
		}
		if u.Host == c.Addr {
			continue // a member need not route to itself
		}
		routes = append(routes, u)
	}
	o.ServerName = c.Node
	o.Cluster = natsserver.ClusterOpts{Name: c.Name, Host: host, Port: port}
	o.Routes = routes
	return nil
}
