package optimizer

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// vbp builds a .vbp instance from capacities and item sizes.
func vbp(caps []int64, items ...[]int64) *PackInstance {
	return &PackInstance{Format: "vbp", Dims: len(caps), BinTypes: []PackBinType{{Capacity: caps}}, Items: items}
}

func sizes1(xs ...int64) [][]int64 {
	out := make([][]int64, len(xs))
	for i, x := range xs {
		out[i] = []int64{x}
	}
	return out
}

// optimum finds the least number of bins by exhaustive search (small n).
func optimum(inst *PackInstance) int {
	n := len(inst.Items)
	best := n
	loads := make([][]int64, 0, n)
	var rec func(i int)
	rec = func(i int) {
		if len(loads) >= best {
			return
		}
		if i == n {
			best = len(loads)
			return
		}
		capOf := inst.BinTypes[0].Capacity
		for b := range loads {
			ok := true
			for k, x := range inst.Items[i] {
				ok = ok && loads[b][k]+x <= capOf[k]
			}
			if ok {
				for k, x := range inst.Items[i] {
					loads[b][k] += x
				}
				rec(i + 1)
				for k, x := range inst.Items[i] {
					loads[b][k] -= x
				}
			}
		}
		loads = append(loads, slices.Clone(inst.Items[i]))
		rec(i + 1)
		loads = loads[:len(loads)-1]
	}
	rec(0)
	return best
}

// TestEveryAlgorithmPacksValidly: on random vector instances every
// algorithm's packing passes the independent check, uses no fewer bins than
// the bounds allow, and the bounds never exceed the true optimum.
func TestEveryAlgorithmPacksValidly(t *testing.T) {
	var algos []string
	for _, a := range Algorithms() {
		if !strings.HasPrefix(a, "current") {
			algos = append(algos, a)
		}
	}
	for k := range 30 {
		r := rand.New(rand.NewPCG(uint64(k), 7))
		d := 1 + r.IntN(3)
		caps := make([]int64, d)
		for j := range caps {
			caps[j] = 100
		}
		n := 3 + r.IntN(6)
		var items [][]int64
		for range n {
			it := make([]int64, d)
			for j := range it {
				it[j] = 1 + r.Int64N(70)
			}
			items = append(items, it)
		}
		inst := vbp(caps, items...)
		opt := optimum(inst)
		for _, a := range algos {
			res, err := Pack(inst, PackOptions{Algorithm: a, Seed: uint64(k), Budget: Budget{MaxIterations: 2000}})
			if err != nil {
				t.Fatalf("case %d %s: %v", k, a, err)
			}
			used, err := CheckPacking(inst, res.Assignment)
			if err != nil || used != res.Bins {
				t.Fatalf("case %d %s: invalid packing (%v), %d bins used, %d reported", k, a, err, used, res.Bins)
			}
			b := res.Bounds
			if b.Bins > opt || b.Continuous > opt || b.L2 > opt || b.Conflicts > opt {
				t.Fatalf("case %d: bounds %+v above the optimum %d", k, b, opt)
			}
			if res.Bins < opt {
				t.Fatalf("case %d %s: %d bins, below the optimum %d", k, a, res.Bins, opt)
			}
			if strings.HasSuffix(a, "+ls") && res.Bins > opt+1 {
				t.Errorf("case %d %s: %d bins, optimum %d", k, a, res.Bins, opt)
			}
		}
	}
}

func TestBoundsCases(t *testing.T) {
	cases := []struct {
		name                string
		inst                *PackInstance
		cont, l2, conflicts int
	}{
		// 18 units in bins of 10: 2 by volume, but no two 6s share a bin.
		{"three sixes", vbp([]int64{10}, sizes1(6, 6, 6)...), 2, 3, 3},
		// Four 7s and four 4s: volume 44 → 5. With α = 4, J1 holds the 7s
		// (above 10 − 4) and J3 the 4s: L2 = 4 + ⌈16/10⌉ = 6, the optimum.
		// The four 7s and one 4 conflict pairwise: a clique of 5.
		{"sevens and fours", vbp([]int64{10}, sizes1(7, 7, 7, 7, 4, 4, 4, 4)...), 5, 6, 5},
		// Two dimensions: each item fills one dimension beyond half.
		{"crossed", vbp([]int64{10, 10}, []int64{6, 1}, []int64{1, 6}, []int64{6, 6}), 2, 2, 2},
	}
	for _, c := range cases {
		b := c.inst.problem().lowerBounds()
		if b.Continuous != c.cont || b.L2 != c.l2 || b.Conflicts != c.conflicts || b.Bins != max(c.cont, c.l2, c.conflicts) {
			t.Errorf("%s: bounds %+v, want continuous %d, L2 %d, conflicts %d", c.name, b, c.cont, c.l2, c.conflicts)
		}
		if opt := optimum(c.inst); b.Bins > opt {
			t.Errorf("%s: bound %d above the optimum %d", c.name, b.Bins, opt)
		}
	}
}

// TestLocalSearchBeatsFFDOnTriplets: twelve items that pack as four exact
// triplets; FFD pairs the big ones and needs more bins, the local search
// reaches the optimum.
func TestLocalSearchBeatsFFDOnTriplets(t *testing.T) {
	// Triplets (a, b, c) with a+b+c = 100: a big item and two small ones.
	trip := [][3]int64{{49, 26, 25}, {48, 27, 25}, {47, 27, 26}, {46, 28, 26}}
	var items [][]int64
	for _, tr := range trip {
		for _, x := range tr {
			items = append(items, []int64{x, x})
		}
	}
	inst := vbp([]int64{100, 100}, items...)
	ffd, err := Pack(inst, PackOptions{Algorithm: "ffd-l1"})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := Pack(inst, PackOptions{Algorithm: "ffd-l1+ls", Seed: 1, Budget: Budget{MaxIterations: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	if ffd.Bins <= 4 || ls.Bins != 4 || ls.Stopped != StoppedOptimal {
		t.Errorf("FFD %d bins, FFD+LS %d (%s); want FFD above 4, LS at the optimum 4", ffd.Bins, ls.Bins, ls.Stopped)
	}
}

func TestPackDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var items [][]int64
	for range 60 {
		items = append(items, []int64{1 + r.Int64N(40), 1 + r.Int64N(40), 1 + r.Int64N(40)})
	}
	inst := vbp([]int64{100, 100, 100}, items...)
	for _, a := range []string{DefaultAlgorithm, "pso+ls", "bfd-l2+ls"} {
		x, err := Pack(inst, PackOptions{Algorithm: a, Seed: 9, Budget: Budget{MaxIterations: 3000}})
		if err != nil {
			t.Fatal(err)
		}
		y, _ := Pack(inst, PackOptions{Algorithm: a, Seed: 9, Budget: Budget{MaxIterations: 3000}})
		if !slices.Equal(x.Assignment, y.Assignment) {
			t.Errorf("%s: the same seed gave two packings", a)
		}
	}
}

func TestPackErrors(t *testing.T) {
	inst := vbp([]int64{10, 10}, []int64{5, 5}, []int64{5, 11})
	inst.Lines = []int{4, 5}
	_, err := Pack(inst, PackOptions{})
	if !errors.Is(err, ErrItemTooLarge) || !strings.Contains(err.Error(), "item 1 (line 5)") {
		t.Errorf("err = %v, want ErrItemTooLarge naming item 1, line 5", err)
	}
	if _, err := Pack(vbp([]int64{10}, []int64{5}), PackOptions{Algorithm: "current"}); err == nil {
		t.Error("current accepted without a current placement")
	}
	if _, err := Pack(vbp([]int64{10}, []int64{5}), PackOptions{Algorithm: "ffd-l7"}); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("err = %v, want ErrUnknownAlgorithm", err)
	}
}

// TestHeterogeneousBins: a .vmp-style instance with two host types uses the
// big hosts first and stays within each type's count.
func TestHeterogeneousBins(t *testing.T) {
	inst := &PackInstance{Format: "vmp", Dims: 2,
		BinTypes: []PackBinType{{Capacity: []int64{16, 32}, Count: 6}, {Capacity: []int64{32, 128}, Count: 2}}}
	for range 10 {
		inst.Items = append(inst.Items, []int64{4, 30})
	}
	res, err := Pack(inst, PackOptions{Seed: 1, Budget: Budget{MaxIterations: 5000}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckPacking(inst, res.Assignment); err != nil {
		t.Fatal(err)
	}
	// A big host holds four 30 GB items (120 of 128 GB), a small one one:
	// the two big hosts and two small ones.
	if res.Bins != 4 {
		t.Errorf("%d bins, want 4: %v", res.Bins, res.Assignment)
	}
	for _, b := range res.Assignment {
		if b < 0 || b >= 8 {
			t.Fatalf("bin %d does not exist", b)
		}
	}
}
