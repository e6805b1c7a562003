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

// LiveMigrate asks the source agent to move the container to target.
func (c *Client) LiveMigrate(ctx context.Context, id, target string) error {
	in, ok := c.View.Instance(id)
	if !ok || in.Kind != hostview.KindContainer {
		return fmt.Errorf("container %s: not in the live view", id)
	}
	b, _ := json.Marshal(MigrateRequest{Container: in.Name, To: target, Mode: c.Mode})
	msg, err := c.NC.RequestWithContext(ctx, MigrateSubject(in.Host), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("container %s (%s): no agent answers for %s on %s", in.Name, id, in.Host, MigrateSubject(in.Host))
	}
	if err != nil {
		return fmt.Errorf("container %s (%s): %w", in.Name, id, err)
	}
	var rep MigrateReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("container %s: agent on %s answered %.100q", in.Name, in.Host, msg.Data)
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
