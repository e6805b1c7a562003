package server

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"

	"github.com/ecrae/ecrae/internal/quote"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// Packed host references (FilterHostsRequest.host_refs,
// WeighHostsRequest.host_refs): one field for every host of a call, in host
// order. Per host an 8-byte little-endian digest, then, unless the digest is
// 0, the host name and the node name as varint-length strings; a digest of 0
// stands for the next full state of the call's repeated hosts. Read in place:
// no message and no string per host, only the held state each digest names.

// packedRef is one entry of host_refs; host and nodename alias the field.
type packedRef struct {
	digest         uint64
	host, nodename []byte
}

// nextPacked reads the entry at the start of b and returns it and its
// length, or n < 0 when b does not start with a whole entry.
func nextPacked(b []byte) (r packedRef, n int) {
	if len(b) < 8 {
		return r, -1
	}
	r.digest, n = binary.LittleEndian.Uint64(b), 8
	if r.digest == 0 {
		return r, n
	}
	host, k := protowire.ConsumeBytes(b[n:])
	if k < 0 {
		return r, -1
	}
	n += k
	nodename, k := protowire.ConsumeBytes(b[n:])
	if k < 0 {
		return r, -1
	}
	r.host, r.nodename = host, nodename
	return r, n + k
}

// appendPacked appends one entry to b: a reference, or with digest 0 the
// place of a full state.
func appendPacked(b []byte, digest uint64, host, nodename string) []byte {
	b = binary.LittleEndian.AppendUint64(b, digest)
	if digest == 0 {
		return b
	}
	b = protowire.AppendString(b, host)
	return protowire.AppendString(b, nodename)
}

// countPacked checks the layout of packed and counts its hosts, and among
// them the places of full states.
func countPacked(packed []byte) (hosts, fulls int, err error) {
	for at := 0; at < len(packed); {
		r, n := nextPacked(packed[at:])
		if n < 0 {
			return 0, 0, invalid("host_refs", "host %d at byte %d of %d: not a whole entry (8-byte digest, then host and node names when the digest is not 0)", hosts, at, len(packed))
		}
		if r.digest == 0 {
			fulls++
		}
		hosts++
		at += n
	}
	return hosts, fulls, nil
}

// resolvePacked is resolve for a call whose hosts come packed: hosts[i] is
// the state host i stands for, memo[i] its held entry (nil for a full state
// sent without a digest). fulls are the call's repeated hosts, the full
// states the places in packed stand for, in order.
//
// References are resolved under the read lock, so concurrent calls do not
// queue behind each other, as long as each names its node's most recent
// state (the shim's usual call); the full states of a call (a host Nova's
// last boot changed) are then remembered under the exclusive lock. A call
// with other references is resolved under the exclusive lock, as resolve.
func (c *stateCache) resolvePacked(packed []byte, fulls []*ecraev1.HostState, maxHosts int, stats *Metrics) (hosts []*ecraev1.HostState, memo []*held, err error) {
	// Sized for entries like the first: the shim's names are alike.
	size := 8
	if _, n := nextPacked(packed); n > 0 {
		size = n
	}
	guess := min(len(packed)/size+1, maxHosts+1)
	hosts, memo = make([]*ecraev1.HostState, 0, guess), make([]*held, 0, guess)
	hosts, memo, refs, ok := c.packedRefs(packed, hosts, memo, len(fulls), maxHosts)
	if !ok {
		return c.resolvePackedLocked(packed, fulls, hosts[:0], memo[:0], maxHosts, stats)
	}
	stats.referenced(refs, false)
	if len(fulls) == 0 {
		return hosts, memo, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for i := range hosts {
		if hosts[i] != nil {
			continue
		}
		h := fulls[k]
		if err := checkFull(h, i); err != nil {
			return nil, nil, err
		}
		k++
		hosts[i] = h
		if h.GetStateDigest() != 0 {
			memo[i] = c.remember(h)
		}
	}
	return hosts, memo, nil
}

// packedRefs appends to hosts and memo what packed stands for, its
// references resolved under the read lock (a full state's place is nil),
// and says how many references there were. ok is false, with only the
// recency of some references changed, when one is not held, names another
// node, is not its node's most recent state, or when packed is not
// well-formed: resolvePackedLocked then says what is wrong, or resolves it.
func (c *stateCache) packedRefs(packed []byte, hosts []*ecraev1.HostState, memo []*held, fulls, maxHosts int) (_ []*ecraev1.HostState, _ []*held, refs int, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	stamp := c.clock.Load()
	places := 0
	var hint []*held
	if h := c.hint.Load(); h != nil {
		hint = *h
	}
	next := 0 // in hint: where this call's next host is looked for first
	for at := 0; at < len(packed); {
		r, n := nextPacked(packed[at:])
		if n < 0 || len(hosts) == maxHosts {
			return hosts, memo, 0, false
		}
		names := packed[at+8 : at+n]
		at += n
		if r.digest == 0 {
			if places++; places > fulls {
				return hosts, memo, 0, false
			}
			hosts, memo = append(hosts, nil), append(memo, nil)
			continue
		}
		// The hint's next hosts first (a few, for the hosts a filter
		// dropped), else the map. Only a held entry is latest.
		var e *held
		for k := next; k < min(next+hintWindow, len(hint)); k++ {
			if hint[k] != nil && hint[k].digest == r.digest {
				e, next = hint[k], k+1
				break
			}
		}
		if e == nil || !e.latest { // a hint's entry may be gone since
			e = c.states[r.digest]
		}
		if e == nil || !e.latest || e.names != maphash.Bytes(c.seed, names) {
			return hosts, memo, 0, false
		}
		// Concurrent calls may stamp alike: eviction needs recency by
		// call, not an order among one call's hosts.
		stamp++
		e.used.Store(stamp)
		hosts, memo = append(hosts, e.state), append(memo, e)
		refs++
	}
	c.clock.Add(uint64(refs))
	if places != fulls {
		return hosts, memo, 0, false
	}
	c.hint.Store(&memo)
	return hosts, memo, refs, true
}

// hintWindow is how far ahead in the hint a host is looked for: the
// weigher's call skips the hosts the filter rejected.
const hintWindow = 8

// resolvePackedLocked is resolvePacked under the exclusive lock, whatever
// the call, appending to hosts and memo (empty).
func (c *stateCache) resolvePackedLocked(packed []byte, fulls []*ecraev1.HostState, hosts []*ecraev1.HostState, memo []*held, maxHosts int, stats *Metrics) ([]*ecraev1.HostState, []*held, error) {
	n, places, err := countPacked(packed)
	switch {
	case err != nil:
		return nil, nil, err
	case n > maxHosts:
		return nil, nil, invalid("host_refs", "%d hosts exceed the limit of %d per call", n, maxHosts)
	case places != len(fulls):
		return nil, nil, invalid("host_refs", "%d places for full states, but hosts holds %d", places, len(fulls))
	}
	resolved, unknown := 0, false
	defer func() { stats.referenced(resolved, unknown) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for i, at := 0, 0; at < len(packed); i++ {
		r, n := nextPacked(packed[at:])
		at += n
		if r.digest == 0 {
			h := fulls[k]
			if err := checkFull(h, i); err != nil {
				return nil, nil, err
			}
			k++
			var e *held
			if h.GetStateDigest() != 0 {
				e = c.remember(h)
			}
			hosts, memo = append(hosts, h), append(memo, e)
			continue
		}
		e, ok := c.states[r.digest]
		if !ok || e.state.Host != string(r.host) || e.state.Nodename != string(r.nodename) {
			unknown = true
			return nil, nil, status.Error(codes.FailedPrecondition, fmt.Sprintf(
				"host_refs[%d]: state %016x of host %s (node %s) is not held here (the service restarted or evicted it); send the full state",
				i, r.digest, quote.Value(string(r.host)), quote.Value(string(r.nodename))))
		}
		c.touch(e, r.digest)
		hosts, memo = append(hosts, e.state), append(memo, e)
		resolved++
	}
	c.hint.Store(&memo)
	return hosts, memo, nil
}

// checkFull refuses the full state of host i (its place in the call) of a
// call with host_refs when it is a reference: those go in host_refs then.
// (convertHosts checks the rest.)
func checkFull(h *ecraev1.HostState, i int) error {
	if h.GetStateRef() != 0 {
		return invalid(fmt.Sprintf("hosts[%d].state_ref", i), "a call with host_refs sends its references there, not in hosts")
	}
	return nil
}
