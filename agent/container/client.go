package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ecrae/ecrae/hostview"
)

// View is what Client reads of the live host view: where each container
// is, as its agents report it.
type View interface {
	Instance(uuid string) (hostview.Instance, bool)
}

// Client moves containers for the rebalance executor (rebalance.Migrator):
// it asks the container's agent over NATS and returns once the view shows
// the container on the target.
type Client struct {
	NC   *nats.Conn
	View View
	// Mode is the migration mode asked for, "" = auto.
	Mode string
}

// Locate returns the host the agents last reported the container on.
func (c *Client) Locate(_ context.Context, id string) (string, error) {
	in, ok := c.View.Instance(id)
	if !ok || in.Kind != hostview.KindContainer {
		return "", fmt.Errorf("container %s: not in the live view (stopped, or its agent stopped reporting)", id)
	}
	return in.Host, nil
}

// Settle waits until the agents' reports settle the container: a report
// newer than the one the view held when Settle began (so it was made
// after whoever asked for a move stopped), that places the container and
// does not mark it migrating (Container.Migrating). It returns the host of
// that report. A container in no report may be between two hosts (dumped,
// not restored yet): Settle waits on, until ctx ends. The executor calls
// it for a move another replica asked before it lost the lead, so the move
// is confirmed from the agents, never asked again.
func (c *Client) Settle(ctx context.Context, id string) (string, error) {
	first, seen := c.View.Instance(id)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		now, ok := c.View.Instance(id)
		newer := ok && (!seen || now.Updated.After(first.Updated) || now.Host != first.Host)
		if newer && now.Kind == hostview.KindContainer && now.TaskState != TaskMigrating {
			return now.Host, nil
		}
		select {
		case <-ctx.Done():
			where := "in no agent's report"
			if ok {
				where = fmt.Sprintf("last reported on %s (task %q)", now.Host, now.TaskState)
			}
			return "", fmt.Errorf("container %s: not settled, %s: %w", id, where, ctx.Err())
		case <-t.C:
		}
	}
}

// MigrateContainer asks the container's agent to move it to target in
// mode ("" = c.Mode) and returns the agent's reply once it answers; the
// move failed when the reply's Error is set. err says why no agent answered
// (rebalance.ContainerMover: an operator's move through the service).
func (c *Client) MigrateContainer(ctx context.Context, id, target, mode string) (MigrateReply, error) {
	in, ok := c.View.Instance(id)
	if !ok || in.Kind != hostview.KindContainer {
		return MigrateReply{}, fmt.Errorf("container %s: not in the live view", id)
	}
	if mode == "" {
		mode = c.Mode
	}
	b, _ := json.Marshal(MigrateRequest{Container: in.Name, To: target, Mode: mode})
	msg, err := c.NC.RequestWithContext(ctx, MigrateSubject(in.Host), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return MigrateReply{}, fmt.Errorf("container %s (%s): no agent answers for %s on %s", in.Name, id, in.Host, MigrateSubject(in.Host))
	}
	if err != nil {
		return MigrateReply{}, fmt.Errorf("container %s (%s): %w", in.Name, id, err)
	}
	var rep MigrateReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return MigrateReply{}, fmt.Errorf("container %s: agent on %s answered %.100q", in.Name, in.Host, msg.Data)
	}
	return rep, nil
}

// LiveMigrate asks the source agent to move the container to target.
func (c *Client) LiveMigrate(ctx context.Context, id, target string) error {
	in, ok := c.View.Instance(id)
	if !ok || in.Kind != hostview.KindContainer {
		return fmt.Errorf("container %s: not in the live view", id)
	}
	rep, err := c.MigrateContainer(ctx, id, target, "")
	if err != nil {
		return err
	}
	if rep.Error != "" {
		return fmt.Errorf("container %s: %s", in.Name, rep.Error)
	}
	// The destination's agent reports at once after a move.
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if now, ok := c.View.Instance(id); ok && now.Host == target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s moved to %s by %s, but the live view has not seen it there: %w", in.Name, target, rep.Mode, ctx.Err())
		case <-t.C:
		}
	}
}
