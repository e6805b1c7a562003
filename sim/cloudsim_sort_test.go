package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// sortSmall is a drop-in for slices.Sort on host histories: the same
// sorted values for every length up to histLen and past it, ties and zeros
// included (the percentiles of MAD and IQR read them by rank).
func TestSortSmallMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range histLen + 10 {
		for range 50 {
			data := make([]float64, n)
			for i := range data {
				data[i] = float64(r.IntN(8)) / 7 // few values: many ties
				if r.IntN(3) == 0 {
					data[i] = r.Float64()
				}
			}
			want := slices.Sorted(slices.Values(data))
			got := slices.Clone(data)
			sortSmall(got)
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d: sortSmall %v, want %v", n, got, want)
			}
		}
	}
}
