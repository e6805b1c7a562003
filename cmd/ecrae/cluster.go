package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
)

// ReplicaStatus is one line of `ecrae cluster status`: what a replica
// answered on /cluster, or why it did not.
type ReplicaStatus struct {
	Endpoint string         `json:"endpoint"`
	Error    string         `json:"error,omitempty"`
	Status   *ClusterStatus `json:"status,omitempty"`
}

// runCluster is `ecrae cluster status`: every replica's /cluster, side by
// side. It fails when a replica does not answer, when replicas disagree
// on the leader, or when none is leader, so it can serve as a check.
func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stderr, "ecrae cluster status --http A,B,C [--json] [--timeout D]: every replica's members, leader, KB revision and view sequence")
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "status" {
		return fmt.Errorf("%w: cluster: want \"cluster status --http A,B,C\"", errUsage)
	}
	fs := newFlagSet("cluster status", stderr)
	endpoints := fs.String("http", "127.0.0.1:9180", "the replicas' --http-addr (HOST:PORT or an http(s):// URL), comma-separated")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each request")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: cluster status takes no arguments, got %s", errUsage, quote.Value(pos[0]))
	}
	var out []ReplicaStatus
	for _, ep := range strings.Split(*endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, fetchClusterStatus(ctx, ep, *timeout))
		}
	}
	if len(out) == 0 {
		return fmt.Errorf("%w: --http: no endpoint given", errUsage)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printClusterStatus(stdout, out)
	}
	return clusterProblem(out)
}

func fetchClusterStatus(ctx context.Context, ep string, timeout time.Duration) ReplicaStatus {
	rs := ReplicaStatus{Endpoint: ep}
	u := ep
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(u, "/")+"/cluster", nil)
	if err != nil {
		rs.Error = err.Error()
		return rs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rs.Error = err.Error()
		return rs
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		rs.Error = err.Error()
		return rs
	}
	if resp.StatusCode != http.StatusOK {
		rs.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, quote.Value(strings.TrimSpace(string(body))))
		return rs
	}
	var st ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		rs.Error = "not a cluster status: " + err.Error()
		return rs
	}
	rs.Status = &st
	return rs
}

func printClusterStatus(w io.Writer, rs []ReplicaStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tNODE\tROLE\tLEADER\tKB REV\tVIEW SEQ\tNATS ROUTES\tJS META LEADER\tJS PEERS CURRENT")
	for _, r := range rs {
		if r.Status == nil {
			fmt.Fprintf(tw, "%s\t-\tunreachable\t-\t-\t-\t-\t-\t%s\n", r.Endpoint, r.Error)
			continue
		}
		s := r.Status
		role := "follower"
		if s.IsLeader {
			role = "leader"
		}
		var peers []string
		for _, p := range s.NATS.Peers {
			state := "current"
			switch {
			case p.Offline:
				state = "offline"
			case !p.Current:
				state = "behind"
			}
			peers = append(peers, p.Name+"="+state)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", r.Endpoint, s.Node, role, dash(s.Leader), s.KBRevision, s.ViewSeq,
			s.NATS.Routes, dash(s.NATS.MetaLeader), dash(strings.Join(peers, ",")))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clusterProblem says what an operator must look at, or nil.
func clusterProblem(rs []ReplicaStatus) error {
	var down []string
	leaders := map[string]bool{}
	for _, r := range rs {
		if r.Status == nil {
			down = append(down, r.Endpoint)
			continue
		}
		if r.Status.IsLeader {
			leaders[r.Status.Node] = true
		}
	}
	switch {
	case len(down) > 0:
		return fmt.Errorf("unreachable: %s", strings.Join(down, ", "))
	case len(leaders) == 0:
		return fmt.Errorf("no replica holds the leader lease")
	case len(leaders) > 1:
		return fmt.Errorf("%d replicas believe they lead (one is about to find out it does not)", len(leaders))
	}
	return nil
}
