package server

import "testing"

// TestDirtyPoolTiers: a buffer has the length asked for and the capacity
// of the smallest power of two (at least 256) that holds it; past 64 MiB it
// is allocated as asked; Put keeps only tier-sized buffers.
func TestDirtyPoolTiers(t *testing.T) {
	cases := []struct {
		n, tier, cap int
	}{
		{0, 0, 256}, // tier 0 is 2^8
		{1, 0, 256},
		{256, 0, 256},
		{257, 1, 512},
		{16 << 10, 6, 16 << 10},  // 2^14: tier 14-8
		{400_000, 11, 1 << 19},   // 2^18 < 400,000 <= 2^19
		{64 << 20, 18, 64 << 20}, // the largest tier
		{64<<20 + 1, -1, 64<<20 + 1},
	}
	p := newDirtyPool()
	for _, c := range cases {
		if got := tier(c.n); got != c.tier {
			t.Errorf("tier(%d) = %d, want %d", c.n, got, c.tier)
		}
		b := p.Get(c.n)
		if len(*b) != c.n || cap(*b) != c.cap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", c.n, len(*b), cap(*b), c.cap)
		}
		p.Put(b)
	}
	// A tier-sized buffer comes back (sync.Pool may drop it, never
	// another size); an odd one is not kept.
	b := p.Get(1000)
	(*b)[0] = 42
	p.Put(b)
	odd := make([]byte, 1000)
	p.Put(&odd)
	for range 10 {
		got := p.Get(600)
		if cap(*got) != 1024 || len(*got) != 600 {
			t.Fatalf("Get(600) after Put: len %d cap %d", len(*got), cap(*got))
		}
	}
}
