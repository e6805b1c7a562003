package power

import (
	"context"
	"fmt"
)

// Check says, without acting, whether On and Off of host would go ahead
// now: nil, or the refusal the action would return first. It asks no BMC
// and not Nova: the action checks everything again (Off also asks Nova
// whether the host is idle), so Check only decides what a console offers.
func (m *Manager) Check(ctx context.Context, host string) (on, off error) {
	m.mu.Lock()
	busy := m.busy[host]
	m.mu.Unlock()
	if busy {
		err := inProgress(host)
		return err, err
	}
	if _, _, err := m.target(ctx, host); err != nil {
		return err, err
	}
	if err := m.safeToPowerOff(host); err != nil {
		return nil, err
	}
	if m.cfg.Nova == nil {
		return nil, noNova(host)
	}
	return nil, nil
}

func inProgress(host string) error {
	return fmt.Errorf("%w: host %s: another power action is in progress", ErrRefused, host)
}

func noNova(host string) error {
	return fmt.Errorf("%w: host %s: no OpenStack credentials, so its nova-compute service cannot be disabled first", ErrRefused, host)
}
