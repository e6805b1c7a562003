package server

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// dirtyPool is a mem.BufferPool that does not zero what it hands out. gRPC's
// default pool clears every buffer it returns, and a Nova pass at 10,000
// hosts moves about half a megabyte each way: clearing it cost more than
// decoding the references. Every user of these buffers writes them whole
// before reading them (gRPC reads a frame's exact length into its buffer;
// the codec marshals a message's exact size), so no byte of an earlier call
// is ever read.
type dirtyPool struct {
	// tiers[k] holds buffers of capacity 1<<(k+minTierShift).
	tiers [maxTierShift - minTierShift + 1]sync.Pool
}

// Buffers from 256 bytes to 64 MiB (the largest message, --grpc-max-message)
// are pooled by powers of two; larger ones are allocated.
const (
	minTierShift = 8
	maxTierShift = 26
)

var _ mem.BufferPool = (*dirtyPool)(nil)

func newDirtyPool() *dirtyPool { return &dirtyPool{} }

// tier is the index of the smallest tier holding n bytes, or -1.
func tier(n int) int {
	if n > 1<<maxTierShift {
		return -1
	}
	s := bits.Len(uint(max(n, 1) - 1)) // ceil(log2(n))
	return max(s, minTierShift) - minTierShift
}

// Get returns a buffer of length n, its content undefined.
func (p *dirtyPool) Get(n int) *[]byte {
	k := tier(n)
	if k < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[k].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(k+minTierShift))
	return &b
}

// Put keeps b for a later Get when its capacity is one of the tiers'.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c < 1<<minTierShift || c > 1<<maxTierShift || c&(c-1) != 0 {
		return
	}
	p.tiers[bits.Len(uint(c))-1-minTierShift].Put(b)
}
