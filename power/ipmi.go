package power

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
)

// ipmiBackend is IPMI chassis power over RMCP+ (lanplus), one session per
// call: power actions are rare, and a held session would time out on the
// BMC between them.
type ipmiBackend struct {
	ep      Endpoint
	cred    Credentials
	timeout time.Duration
}

func (b *ipmiBackend) session(ctx context.Context, f func(c *client.Client) error) error {
	c, err := client.NewClient(b.ep.Host, b.ep.Port, b.cred.Username, b.cred.Password)
	if err != nil {
		return err
	}
	c.WithInterface(client.InterfaceLanplus).WithTimeout(b.timeout).WithRetry(1)
	if err := c.Connect(ctx); err != nil {
		// go-ipmi's errors span lines; history and CLI keep one line.
		return fmt.Errorf("IPMI session: %w", flat{err})
	}
	defer c.Close(context.WithoutCancel(ctx))
	return f(c)
}

func (b *ipmiBackend) Status(ctx context.Context) (State, error) {
	st := StateUnknown
	err := b.session(ctx, func(c *client.Client) error {
		r, err := c.GetChassisStatus(ctx)
		if err != nil {
			return fmt.Errorf("get chassis status: %w", err)
		}
		st = StateOff
		if r.PowerIsOn {
			st = StateOn
		}
		return nil
	})
	return st, err
}

func (b *ipmiBackend) On(ctx context.Context) error {
	return b.control(ctx, chassis.ChassisControlPowerUp)
}
func (b *ipmiBackend) Off(ctx context.Context) error {
	return b.control(ctx, chassis.ChassisControlPowerDown)
}

func (b *ipmiBackend) control(ctx context.Context, cc chassis.ChassisControl) error {
	return b.session(ctx, func(c *client.Client) error {
		if _, err := c.ChassisControl(ctx, cc); err != nil {
			return fmt.Errorf("chassis control %d: %w", cc, err)
		}
		return nil
	})
}

// flat is an error on one line, unwrapping to the original.
type flat struct{ err error }

func (f flat) Error() string { return strings.Join(strings.Fields(f.err.Error()), " ") }
func (f flat) Unwrap() error { return f.err }
