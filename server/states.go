package server

import (
	"fmt"
	"sync"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultStateCacheSize bounds the host states remembered by digest:
// statesPerHost for each host of a 5,000-host cloud.
const DefaultStateCacheSize = 40000

// statesPerHost is how many states of one host are kept, the newest: each
// scheduler worker holds its own (its consume_from_request moves it), and a
// compute report supersedes them all.
const statesPerHost = 8

// stateCache remembers the host states clients send with a digest
// (HostState.state_digest), so that a later call can name an unchanged host
// by that digest (state_ref) instead of sending it again. Nova sends every
// candidate host on every filter and weigher pass, mostly unchanged, and at
// a thousand hosts moving and decoding the repeats is most of a call.
type stateCache struct {
	mu     sync.Mutex
	states map[uint64]*ecraev1.HostState
	recent map[string][]uint64 // per host, the digests held, oldest first
	limit  int
}

func newStateCache(limit int) *stateCache {
	return &stateCache{states: make(map[uint64]*ecraev1.HostState), recent: make(map[string][]uint64), limit: limit}
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
			c.remember(h)
		}
	}
	return out, nil
}

// remember holds h under its digest, dropping its host's oldest state past
// statesPerHost, and a quarter of all states (whichever the map yields
// first) past the limit: a client whose reference is gone just sends that
// state again.
func (c *stateCache) remember(h *ecraev1.HostState) {
	d := h.GetStateDigest()
	if _, ok := c.states[d]; ok {
		c.states[d] = h
		return
	}
	if len(c.states) >= c.limit {
		drop := max(1, c.limit/4)
		for old, st := range c.states {
			if drop == 0 {
				break
			}
			delete(c.states, old)
			c.forgetDigest(st.GetHost(), old)
			drop--
		}
	}
	c.states[d] = h
	held := append(c.recent[h.GetHost()], d)
	if len(held) > statesPerHost {
		delete(c.states, held[0])
		held = held[1:]
	}
	c.recent[h.GetHost()] = held
}

func (c *stateCache) forgetDigest(host string, d uint64) {
	held := c.recent[host]
	for i, x := range held {
		if x == d {
			held = append(held[:i:i], held[i+1:]...)
			break
		}
	}
	if len(held) == 0 {
		delete(c.recent, host)
	} else {
		c.recent[host] = held
	}
}
