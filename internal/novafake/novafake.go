// Package novafake stands in, in Go tests, for the part of Nova's compute
// API the power manager calls (disable and enable a host's nova-compute
// service, ask whether Nova lists servers on a host). Nova's API cannot
// run in a Go test; the Nova harness test in integration/ drives the real
// one.
package novafake

import (
	"context"
	"strings"
	"sync"
)

// Services records every service change, in order.
type Services struct {
	mu    sync.Mutex
	calls []string
	busy  map[string]string
}

// DisableService records "disable HOST REASON".
func (s *Services) DisableService(_ context.Context, host, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "disable "+host+" "+reason)
	return nil
}

// EnableService records "enable HOST".
func (s *Services) EnableService(_ context.Context, host string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "enable "+host)
	return nil
}

// HostBusy is Nova's own word on a host: what SetBusy said, else free.
func (s *Services) HostBusy(_ context.Context, host string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[host], nil
}

// SetBusy makes Nova list servers on host (why: the refusal it gives).
func (s *Services) SetBusy(host, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == nil {
		s.busy = map[string]string{}
	}
	s.busy[host] = why
}

// Log is the calls so far, joined by "; ".
func (s *Services) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.calls, "; ")
}
