// Package suggest finds the known name closest to a mistyped one, for
// "did you mean" in errors.
package suggest

import (
	"fmt"
	"slices"
)

// DidYouMean returns ` (did you mean "x"?)` for the name in known closest
// to name, or "" when none is within a third of name's length in edits.
// Ties go to the first in sorted order, so messages are stable.
func DidYouMean(name string, known []string) string {
	names := slices.Sorted(slices.Values(known))
	best, bestD := "", len(name)/3+1
	for _, k := range names {
		if d := Distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
