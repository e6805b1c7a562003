package server

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ecrae/ecrae/optimizer"
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
	states map[uint64]*held
	recent map[string][]uint64 // per host, the digests held, oldest first
	limit  int
}

// held is a remembered state and, once a call has converted it, its
// conversion (valid for one KB revision): a state sent by reference is
// neither validated nor converted again.
type held struct {
	state *ecraev1.HostState
	conv  atomic.Pointer[converted]
}

type converted struct {
	revision uint64
	host     optimizer.Host
}

func newStateCache(limit int) *stateCache {
	return &stateCache{states: make(map[uint64]*held), recent: make(map[string][]uint64), limit: limit}
}

// resolve returns hosts with every reference replaced by the state it
// stands for, and remembers the states sent with a digest; memo[i] is the
// entry of hosts[i] when it has one (memo is nil when none has). hosts itself
// is left as it is. A reference the cache does not hold (the service
// restarted, or the state was evicted), or one naming another host, is
// FAILED_PRECONDITION: the client then sends the full states.
func (c *stateCache) resolve(hosts []*ecraev1.HostState, stats *Metrics) (out []*ecraev1.HostState, memo []*held, err error) {
	out = hosts
	resolved, unknown := 0, false
	defer func() { stats.referenced(resolved, unknown) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hosts {
		var e *held
		switch {
		case h == nil:
		case h.GetStateRef() != 0:
			var ok bool
			e, ok = c.states[h.GetStateRef()]
			if !ok || e.state.GetHost() != h.GetHost() {
				unknown = true
				return nil, nil, status.Error(codes.FailedPrecondition, fmt.Sprintf(
					"hosts[%d].state_ref: state %016x of host %q is not held here (the service restarted or evicted it); send the full state",
					i, h.GetStateRef(), h.GetHost()))
			}
			if resolved == 0 {
				out = append([]*ecraev1.HostState(nil), hosts...)
			}
			out[i] = e.state
			resolved++
		case h.GetStateDigest() != 0:
			e = c.remember(h)
		}
		if e != nil {
			if memo == nil {
				memo = make([]*held, len(hosts))
			}
			memo[i] = e
		}
	}
	return out, memo, nil
}

// remember holds h under its digest, dropping its host's oldest state past
// statesPerHost, and a quarter of all states (whichever the map yields
// first) past the limit: a client whose reference is gone just sends that
// state again.
func (c *stateCache) remember(h *ecraev1.HostState) *held {
	d := h.GetStateDigest()
	if e, ok := c.states[d]; ok {
		return e // the same digest: the same state
	}
	if len(c.states) >= c.limit {
		drop := max(1, c.limit/4)
		for old, e := range c.states {
			if drop == 0 {
				break
			}
			delete(c.states, old)
			c.forgetDigest(e.state.GetHost(), old)
			drop--
		}
	}
	e := &held{state: h}
	c.states[d] = e
	kept := append(c.recent[h.GetHost()], d)
	if len(kept) > statesPerHost {
		delete(c.states, kept[0])
		kept = kept[1:]
	}
	c.recent[h.GetHost()] = kept
	return e
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
