package server

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DefaultStateCacheSize bounds the host states remembered by digest:
// statesPerNode for each node of a 5,000-node cloud.
const DefaultStateCacheSize = 40000

// statesPerNode is how many states of one node (host and nodename) are
// kept, the most recently used: each scheduler worker holds its own copy of
// a node's state, which its own consume_from_request moves.
const statesPerNode = 8

// stateCache remembers the host states clients send with a digest
// (HostState.state_digest), so that a later call can name an unchanged host
// by that digest (state_ref) instead of sending it again. Nova sends every
// candidate host on every filter and weigher pass, mostly unchanged, and at
// a thousand hosts moving and decoding the repeats is most of a call.
type stateCache struct {
	mu     sync.RWMutex
	states map[uint64]*held
	recent map[node]*ring // per node, its digests held
	limit  int
	clock  atomic.Uint64 // stamps held.used
	seed   maphash.Seed  // of held.names
	// hint is the entries of the last packed call resolved, in its order
	// (never modified): the shim sends the same hosts in the same order
	// call after call, or a subsequence of them (the weigher's, without
	// the hosts the filter rejected), and reading them in order spares a
	// lookup per host. See packedRefs.
	hint atomic.Pointer[[]*held]
}

type node struct{ host, nodename string }

// ring is a node's digests held, least recently used first.
type ring struct{ digests []uint64 }

func nodeOf(h *ecraev1.HostState) node { return node{h.GetHost(), h.GetNodename()} }

// held is a remembered state and, once a call has converted it, its
// conversion (valid for one KB revision): a state sent by reference is
// neither validated nor converted again.
type held struct {
	state *ecraev1.HostState
	ring  *ring // its node's
	// names is namesHash of the state's host and node name, and latest
	// says the state is its node's most recent (the last of its ring;
	// written under the exclusive lock): a packed reference is checked
	// against them without reading the state or the ring.
	names  uint64
	latest bool   // implies the state is held
	digest uint64 // it is held under
	used   atomic.Uint64
	conv   atomic.Pointer[converted]
	live   atomic.Pointer[enriched]
}

// enriched is a held state's host with the live view applied, valid for one
// view snapshot, KB revision and freshness: the view changes far less often
// than Nova calls, and looking each host up in it on every call was most of
// a pass at 10,000 hosts.
//
// It names the snapshot by version and the host by index, so that it does
// not keep an old snapshot alive.
type enriched struct {
	version  uint64 // the snapshot's
	revision uint64 // the KB's
	index    int    // in the snapshot's Hosts; -1: the view does not know the host
	fresh    freshKey
	// fresh holds from at to until (see freshUntil): within, the host
	// is reused without reading the snapshot.
	at, until time.Time
	host      optimizer.Host
}

// freshKey is what of a host's freshness Enrich's effect on the host
// depends on (the rest goes only into its note).
type freshKey struct{ stale, cpu, utilization, watts bool }

func freshKeyOf(fr hostview.Freshness) freshKey {
	return freshKey{fr.Stale, fr.CPU, fr.Utilization, fr.Watts}
}

type converted struct {
	revision uint64
	host     optimizer.Host
}

func newStateCache(limit int) *stateCache {
	return &stateCache{states: make(map[uint64]*held), recent: make(map[node]*ring), limit: limit, seed: maphash.MakeSeed()}
}

// namesHash hashes a host and node name as a packed reference carries them
// (varint lengths and bytes, see appendPacked): the state a packed
// reference names must have the names it was sent with, checked through
// this hash (a mismatch, or a collision of 64 random-seeded bits, goes to the
// exact comparison of resolvePackedLocked or passes as held).
func (c *stateCache) namesHash(host, nodename string) uint64 {
	var buf [2*binary.MaxVarintLen64 + 2*64]byte
	return maphash.Bytes(c.seed, appendPacked(buf[:0], 1, host, nodename)[8:])
}

// lastChanged keeps held.latest right after r's order changed; old was
// its last digest before.
func (c *stateCache) lastChanged(r *ring, old uint64) {
	if e, ok := c.states[old]; ok {
		e.latest = false
	}
	if n := len(r.digests); n > 0 {
		if e, ok := c.states[r.digests[n-1]]; ok {
			e.latest = true
		}
	}
}

// resolve returns hosts with every reference replaced by the state it
// stands for, and remembers the states sent with a digest; memo[i] is the
// entry of hosts[i] when it has one (memo is nil when none has). hosts itself
// is left as it is. A reference the cache does not hold (the service
// restarted, or the state was evicted), or one naming another node, is
// FAILED_PRECONDITION: the client then sends the full states.
func (c *stateCache) resolve(hosts []*ecraev1.HostState, stats *Metrics) (out []*ecraev1.HostState, memo []*held, err error) {
	if out, memo, ok := c.resolveRefs(hosts); ok {
		stats.referenced(len(out), false)
		return out, memo, nil
	}
	return c.resolveLocked(hosts, stats)
}

// resolveLocked is resolve under the exclusive lock, whatever the call.
func (c *stateCache) resolveLocked(hosts []*ecraev1.HostState, stats *Metrics) (out []*ecraev1.HostState, memo []*held, err error) {
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
			if !ok || nodeOf(e.state) != nodeOf(h) {
				unknown = true
				return nil, nil, status.Error(codes.FailedPrecondition, fmt.Sprintf(
					"hosts[%d].state_ref: state %016x of host %s (node %s) is not held here (the service restarted or evicted it); send the full state",
					i, h.GetStateRef(), quote.Value(h.GetHost()), quote.Value(h.GetNodename())))
			}
			c.touch(e, h.GetStateRef())
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

// resolveRefs is resolve for the shim's usual call, where every host is a
// reference to a state held and already the most recently used of its node:
// under the read lock, so that concurrent calls do not queue behind each
// other. ok is false, with nothing done, for any other call.
func (c *stateCache) resolveRefs(hosts []*ecraev1.HostState) (out []*ecraev1.HostState, memo []*held, ok bool) {
	if len(hosts) == 0 {
		return nil, nil, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	memo = make([]*held, len(hosts))
	for i, h := range hosts {
		d := h.GetStateRef()
		if d == 0 {
			return nil, nil, false
		}
		e, found := c.states[d]
		if !found || !e.latest || nodeOf(e.state) != nodeOf(h) {
			return nil, nil, false
		}
		memo[i] = e
	}
	out = make([]*ecraev1.HostState, len(hosts))
	stamp := c.clock.Add(uint64(len(hosts))) - uint64(len(hosts))
	for i, e := range memo {
		e.used.Store(stamp + uint64(i) + 1)
		out[i] = e.state
	}
	return out, memo, true
}

// touch marks e (held under d) as just used.
func (c *stateCache) touch(e *held, d uint64) {
	e.used.Store(c.clock.Add(1))
	if ds := e.ring.digests; ds[len(ds)-1] != d {
		if i := slices.Index(ds, d); i >= 0 {
			last := ds[len(ds)-1]
			e.ring.digests = append(slices.Delete(ds, i, i+1), d)
			c.lastChanged(e.ring, last)
		}
	}
}

// remember holds h under its digest. The digest of a state already held
// stands for that state only if it is the same one; otherwise (a client
// whose digests are not content hashes) h replaces it. Past statesPerNode
// states of h's node the least recently used goes, and past the limit the
// least recently used quarter of all: a client whose reference is gone just
// sends that state again.
func (c *stateCache) remember(h *ecraev1.HostState) *held {
	d := h.GetStateDigest()
	if e, ok := c.states[d]; ok {
		if proto.Equal(e.state, h) {
			c.touch(e, d)
			return e
		}
		c.drop(d)
	}
	if len(c.states) >= c.limit {
		c.evict(max(1, c.limit/4))
	}
	n := nodeOf(h)
	r := c.recent[n]
	if r == nil {
		r = &ring{}
		c.recent[n] = r
	}
	if len(r.digests) == statesPerNode {
		c.drop(r.digests[0])
	}
	e := &held{state: h, ring: r, names: c.namesHash(h.GetHost(), h.GetNodename()), digest: d}
	e.used.Store(c.clock.Add(1))
	c.states[d] = e
	var last uint64
	if len(r.digests) > 0 {
		last = r.digests[len(r.digests)-1]
	}
	r.digests = append(r.digests, d)
	c.lastChanged(r, last)
	return e
}

// evict drops the n least recently used states.
func (c *stateCache) evict(n int) {
	type aged struct {
		digest, used uint64
	}
	all := make([]aged, 0, len(c.states))
	for d, e := range c.states {
		all = append(all, aged{d, e.used.Load()})
	}
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.used, b.used) })
	for _, a := range all[:min(n, len(all))] {
		c.drop(a.digest)
	}
}

// drop forgets the state held under d.
func (c *stateCache) drop(d uint64) {
	e, ok := c.states[d]
	if !ok {
		return
	}
	delete(c.states, d)
	e.latest = false
	r := e.ring
	if i := slices.Index(r.digests, d); i >= 0 {
		r.digests = slices.Delete(r.digests, i, i+1)
		c.lastChanged(r, d)
	}
	if len(r.digests) == 0 {
		delete(c.recent, nodeOf(e.state))
	}
}
