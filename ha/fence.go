package ha

import (
	"context"
	"fmt"

	"github.com/ecrae/ecrae/agent/container"
	"github.com/ecrae/ecrae/rebalance"
)

// Fence wraps m so that every move first checks the lease's fencing
// revision: a replica that lost the lead starts none. m is the whole
// executor's Migrator (rebalance.Route): VM moves through Nova and
// container moves through the node agents are fenced alike.
func Fence(m rebalance.Migrator, l *Lease) rebalance.Migrator {
	return fenced{Migrator: m, lease: l}
}

type fenced struct {
	rebalance.Migrator
	lease *Lease
}

func (f fenced) LiveMigrate(ctx context.Context, id, target string) error {
	if err := f.lease.Check(ctx); err != nil {
		return fmt.Errorf("live migration of %s not started: %w", id, err)
	}
	return f.Migrator.LiveMigrate(ctx, id, target)
}

// Settle passes through (rebalance.Settler), falling back on Locate: it
// only waits and reads, so a replica may do it before it leads.
func (f fenced) Settle(ctx context.Context, id string) (string, error) {
	return rebalance.Settle(ctx, f.Migrator, id)
}

// MigrateContainer implements rebalance.ContainerMover: an operator's
// container move is fenced like a plan's.
func (f fenced) MigrateContainer(ctx context.Context, id, target, mode string) (container.MigrateReply, error) {
	cm, ok := f.Migrator.(rebalance.ContainerMover)
	if !ok {
		return container.MigrateReply{}, rebalance.ErrNoContainerMover
	}
	if err := f.lease.Check(ctx); err != nil {
		return container.MigrateReply{}, fmt.Errorf("migration of container %s not started: %w", id, err)
	}
	return cm.MigrateContainer(ctx, id, target, mode)
}
