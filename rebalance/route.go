package rebalance

import (
	"context"
	"errors"
	"fmt"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/hostview"
)

// Route is the Migrator of a plan that moves VMs and containers: each move
// goes to the Migrator of its kind (Nova for VMs, the node agents for
// containers), with the executor's same re-checks around it.
type Route struct {
	// Nova moves VMs; nil when the service has no OpenStack credentials.
	Nova Migrator
	// Agents moves containers (container.Client); nil = none.
	Agents Migrator
	// Kind is the instance's kind in the live view ("" = a VM).
	Kind func(id string) string
}

func (r Route) pick(id string) (Migrator, error) {
	if r.Kind(id) == hostview.KindContainer {
		if r.Agents == nil {
			return nil, fmt.Errorf("instance %s is a container and no agent migrator is configured", id)
		}
		return r.Agents, nil
	}
	if r.Nova == nil {
		return nil, fmt.Errorf("instance %s is a VM and the service has no Nova (no OpenStack credentials)", id)
	}
	return r.Nova, nil
}

// Locate implements Migrator.
func (r Route) Locate(ctx context.Context, id string) (string, error) {
	m, err := r.pick(id)
	if err != nil {
		return "", err
	}
	return m.Locate(ctx, id)
}

// Settle implements Settler: Nova waits for a VM's migration to end, the
// agents' reports for a container's (container.Client).
func (r Route) Settle(ctx context.Context, id string) (string, error) {
	m, err := r.pick(id)
	if err != nil {
		return "", err
	}
	return Settle(ctx, m, id)
}

// LiveMigrate implements Migrator.
func (r Route) LiveMigrate(ctx context.Context, id, target string) error {
	m, err := r.pick(id)
	if err != nil {
		return err
	}
	return m.LiveMigrate(ctx, id, target)
}

// ContainerMover moves one container now, in a migration mode, and returns
// the agent's reply (container.Client). Route and ha's fence pass it on, so
// an operator's move goes through the executor's own mover.
type ContainerMover interface {
	MigrateContainer(ctx context.Context, id, target, mode string) (container.MigrateReply, error)
}

// ErrNoContainerMover: the service moves no containers (no agents).
var ErrNoContainerMover = errors.New("no container mover: the service runs without node agents' container moves")

// MigrateContainer implements ContainerMover through Agents.
func (r Route) MigrateContainer(ctx context.Context, id, target, mode string) (container.MigrateReply, error) {
	cm, ok := r.Agents.(ContainerMover)
	if !ok {
		return container.MigrateReply{}, ErrNoContainerMover
	}
	return cm.MigrateContainer(ctx, id, target, mode)
}
