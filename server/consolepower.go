package server

import (
	"context"

	"github.com/ecrae/ecrae/server/console"
)

// ConsolePowerManager is what the console's power panel needs of the power
// manager (power.Manager): the PowerService's calls, the check that decides
// which buttons a host gets, and whether ECRAE powered a host off.
type ConsolePowerManager interface {
	PowerManager
	Check(ctx context.Context, host string) (on, off error)
	IsOff(host string) bool
}

// NewConsolePower adapts the manager to console.PowerManager. Its errors are
// the PowerService's gRPC statuses (a refusal is FailedPrecondition with
// the manager's own words), so the console answers as `ecrae power` does.
func NewConsolePower(m ConsolePowerManager) console.PowerManager { return consolePower{m} }

type consolePower struct{ m ConsolePowerManager }

// byConsole names the console in the history, as "cli" names `ecrae
// power`, also when a follower's console forwards the action to the leader
// (actionBy); who clicked is in the audit record.
const byConsole = "console"

func (p consolePower) History(ctx context.Context, limit int) ([]console.PowerAction, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	evs, err := p.m.History("", limit)
	if err != nil {
		return nil, err
	}
	out := make([]console.PowerAction, 0, len(evs))
	for _, e := range evs {
		out = append(out, console.PowerAction{At: e.At, Host: e.Host, Action: string(e.Action), Outcome: e.Detail, Who: e.By})
	}
	return out, nil
}

func (p consolePower) Check(ctx context.Context, host string) console.PowerCheck {
	on, off := p.m.Check(ctx, host)
	c := console.PowerCheck{OffByECRAE: p.m.IsOff(host)}
	if on != nil {
		c.On = powerError(on)
	}
	if off != nil {
		c.Off = powerError(off)
	}
	return c
}

func (p consolePower) On(ctx context.Context, host string) error {
	if err := hostArg(host, true); err != nil {
		return err
	}
	if err := p.m.On(ctx, host, byConsole); err != nil {
		return powerError(err)
	}
	return nil
}

func (p consolePower) Off(ctx context.Context, host string) error {
	if err := hostArg(host, true); err != nil {
		return err
	}
	if err := p.m.Off(ctx, host, byConsole); err != nil {
		return powerError(err)
	}
	return nil
}
