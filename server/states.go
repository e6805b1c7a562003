package server

import (
	"fmt"
	"sync"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultStateCacheSize bounds the host states remembered by digest: a few
// states per host for a few scheduler workers of a thousand-host cloud.
const DefaultStateCacheSize = 20000

// stateCache remembers the host states clients send with a digest
// (HostState.state_digest), so that a later call can name an unchanged host
// by that digest (state_ref) instead of sending it again. Nova sends every
// candidate host on every filter and weigher pass, mostly unchanged, and at
// a thousand hosts moving and decoding the repeats is most of a call.
type stateCache struct {
	mu     sync.Mutex
	states map[uint64]*ecraev1.HostState
	limit  int
}

func newStateCache(limit int) *stateCache {
	return &stateCache{states: make(map[uint64]*ecraev1.HostState), limit: limit}
}

// resolve returns hosts with every reference replaced by the state it
// stands for, and remembers the states sent with a digest. hosts itself is
// left as it is. A reference the cache does not hold (the service
// restarted, or the state was evicted), or one naming another host, is
// FAILED_PRECONDITION: the client then sends the full states.
func (c *stateCache) resolve(hosts []*ecraev1.HostState, stats *Metrics) ([]*ecraev1.HostState, error) {
	out := hosts
	resolved, unknown := 0, false
	defer func() { stats.referenced(resolved, unknown) }()
	var mine bool // out is a copy of hosts
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hosts {
		switch {
		case h == nil:
		case h.GetStateRef() != 0:
			st, ok := c.states[h.GetStateRef()]
			if !ok || st.GetHost() != h.GetHost() {
				unknown = true
				return nil, status.Error(codes.FailedPrecondition, fmt.Sprintf(
					"hosts[%d].state_ref: state %016x of host %q is not held here (the service restarted or evicted it); send the full state",
					i, h.GetStateRef(), h.GetHost()))
			}
			if !mine {
				out, mine = append([]*ecraev1.HostState(nil), hosts...), true
			}
			out[i] = st
			resolved++
		case h.GetStateDigest() != 0:
			if _, ok := c.states[h.GetStateDigest()]; !ok && len(c.states) >= c.limit {
				c.evict()
			}
			c.states[h.GetStateDigest()] = h
		}
	}
	return out, nil
}

// evict forgets a quarter of the states, whichever the map yields first: a
// client whose reference is gone just sends that state again.
func (c *stateCache) evict() {
	drop := max(1, c.limit/4)
	for d := range c.states {
		if drop == 0 {
			return
		}
		delete(c.states, d)
		drop--
	}
}
