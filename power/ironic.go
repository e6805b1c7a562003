package power

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/baremetal/v1/nodes"
)

// ironicBackend asks Ironic to change a node's power state; Ironic holds
// the BMC credentials and drives the BMC itself.
type ironicBackend struct {
	ep     Endpoint
	client *gophercloud.ServiceClient
}

func (b *ironicBackend) Status(ctx context.Context) (State, error) {
	n, err := nodes.Get(ctx, b.client, b.ep.Node).Extract()
	if err != nil {
		return StateUnknown, fmt.Errorf("ironic node %s: %w", b.ep.Node, err)
	}
	switch n.PowerState {
	case "power on":
		return StateOn, nil
	case "power off":
		return StateOff, nil
	}
	return StateUnknown, nil
}

func (b *ironicBackend) On(ctx context.Context) error  { return b.set(ctx, nodes.PowerOn) }
func (b *ironicBackend) Off(ctx context.Context) error { return b.set(ctx, nodes.PowerOff) }

func (b *ironicBackend) set(ctx context.Context, to nodes.TargetPowerState) error {
	if err := nodes.ChangePowerState(ctx, b.client, b.ep.Node, nodes.PowerStateOpts{Target: to}).ExtractErr(); err != nil {
		return fmt.Errorf("ironic node %s: %s: %w", b.ep.Node, to, err)
	}
	return nil
}
