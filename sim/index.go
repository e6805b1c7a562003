package sim

import "math/bits"

// The policies look for hosts among all of them, for every VM they place,
// which made a run quadratic in the size of the data center (8,000 hosts:
// 97 s for lr-mmt). Most hosts of a consolidated data center are off and
// empty, and all the empty, off hosts of one model look alike to a policy
// (the same power, the same room), so the engine keeps them apart: a
// search visits the hosts in use and, per model, the first idle host only.

// bitset is a set of host indices, iterated in index order.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (uint(i) & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

// next is the first member at or after i, or -1.
func (b bitset) next(i int) int {
	if i < 0 {
		i = 0
	}
	w := i >> 6
	if w >= len(b) {
		return -1
	}
	if x := b[w] >> (uint(i) & 63); x != 0 {
		return i + bits.TrailingZeros64(x)
	}
	for w++; w < len(b); w++ {
		if b[w] != 0 {
			return w<<6 + bits.TrailingZeros64(b[w])
		}
	}
	return -1
}

// hostIndex splits the hosts into those in use (holding a VM, or drawing
// power at the last update) and, per model, the idle ones.
type hostIndex struct {
	inUse bitset
	idle  []bitset // per model
}

func newHostIndex(s *Setup) hostIndex {
	x := hostIndex{inUse: newBitset(len(s.Hosts)), idle: make([]bitset, len(s.Models))}
	for m := range x.idle {
		x.idle[m] = newBitset(len(s.Hosts))
	}
	for h, m := range s.Hosts {
		x.idle[m].set(h)
	}
	return x
}

// isIdle: no VM on the host's list (tentative moves included) and no
// MIPS granted at the last update.
func (h *hostState) isIdle() bool { return len(h.vms) == 0 && h.util == 0 }

// touch files host h again after its VM list or utilisation changed.
func (e *engine) touch(h int) {
	e.hosts[h].allocOK, e.hosts[h].histOK = false, false
	m := e.s.Hosts[h]
	if e.hosts[h].isIdle() {
		e.index.inUse.clear(h)
		e.index.idle[m].set(h)
	} else {
		e.index.inUse.set(h)
		e.index.idle[m].clear(h)
	}
}
