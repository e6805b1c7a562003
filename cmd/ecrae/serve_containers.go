package main

import (
	"github.com/nats-io/nats.go"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/rebalance"
)

// containerAgents moves the containers node agents report (ecrae agent
// --containers) for the rebalance executor: over the service's NATS, in
// mode auto.
func containerAgents(nc *nats.Conn, view *hostview.View) *container.Client {
	return &container.Client{NC: nc, View: view}
}

// route sends container moves to the agents and the rest to nova (nil:
// no OpenStack credentials: a VM move then fails with that reason).
func (r *rebalanceServe) route(nova rebalance.Migrator) rebalance.Migrator {
	c := r.agents
	if c == nil {
		return nova
	}
	return rebalance.Route{Nova: nova, Agents: c, Kind: func(id string) string {
		in, _ := c.View.Instance(id)
		return in.Kind
	}}
}
