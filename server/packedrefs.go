package server

import (
	"encoding/binary"
	"fmt"

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
// states the placeholders of packed stand for, in order.
//
// References are resolved under the read lock, so concurrent calls do not
// queue behind each other, as long as each names its node's most recent
// state (the shim's usual call); the full states of a call (a host Nova's
// last boot changed) are then remembered under the exclusive lock. A call
// with other references is resolved under the exclusive lock, as resolve.
func (c *stateCache) resolvePacked(packed []byte, fulls []*ecraev1.HostState, maxHosts int, stats *Metrics) (hosts []*ecraev1.HostState, memo []*held, err error) {
	n, placeholders, err := countPacked(packed)
	switch {
	case err != nil:
		return nil, nil, err
	case n > maxHosts:
		return nil, nil, invalid("host_refs", "%d hosts exceed the limit of %d per call", n, maxHosts)
	case placeholders != len(fulls):
		return nil, nil, invalid("host_refs", "%d places for full states, but hosts holds %d", placeholders, len(fulls))
	}
	hosts, memo = make([]*ecraev1.HostState, n), make([]*held, n)
	refs, ok := c.packedRefs(packed, hosts, memo)
	if !ok {
		return c.resolvePackedLocked(packed, fulls, hosts, memo, stats)
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
		if err := checkFull(h, k); err != nil {
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

// packedRefs fills hosts and memo for the references of packed under the
// read lock, and says how many there were; !ok, with the references'
// recency unchanged, when one is not held, names another node or is not its
// node's most recent state.
func (c *stateCache) packedRefs(packed []byte, hosts []*ecraev1.HostState, memo []*held) (refs int, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, at := 0, 0; at < len(packed); i++ {
		r, n := nextPacked(packed[at:])
		at += n
		if r.digest == 0 {
			continue
		}
		e, found := c.states[r.digest]
		if !found || e.state.Host != string(r.host) || e.state.Nodename != string(r.nodename) || e.ring.digests[len(e.ring.digests)-1] != r.digest {
			return 0, false
		}
		hosts[i], memo[i] = e.state, e
		refs++
	}
	stamp := c.clock.Add(uint64(refs)) - uint64(refs)
	for _, e := range memo {
		if e != nil {
			stamp++
			e.used.Store(stamp)
		}
	}
	return refs, true
}

// resolvePackedLocked is resolvePacked under the exclusive lock, whatever
// the call; hosts and memo are blank, one per host.
func (c *stateCache) resolvePackedLocked(packed []byte, fulls []*ecraev1.HostState, hosts []*ecraev1.HostState, memo []*held, stats *Metrics) ([]*ecraev1.HostState, []*held, error) {
	clear(hosts)
	clear(memo)
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
			if err := checkFull(h, k); err != nil {
				return nil, nil, err
			}
			k++
			hosts[i] = h
			if h.GetStateDigest() != 0 {
				memo[i] = c.remember(h)
			}
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
		hosts[i], memo[i] = e.state, e
		resolved++
	}
	return hosts, memo, nil
}

// checkFull refuses hosts[k] of a call with host_refs when it is a
// reference: those go in host_refs then. (convertHosts checks the rest.)
func checkFull(h *ecraev1.HostState, k int) error {
	if h.GetStateRef() != 0 {
		return invalid(fmt.Sprintf("hosts[%d].state_ref", k), "a call with host_refs sends its references there, not in hosts")
	}
	return nil
}
