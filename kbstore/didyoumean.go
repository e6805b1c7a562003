package kbstore

import (
	"maps"
	"slices"

	"github.com/ecrae/ecrae/internal/suggest"
)

// didYouMean suggests the closest of known's names to name.
func didYouMean[V any](name string, known map[string]V) string {
	return suggest.DidYouMean(name, slices.Collect(maps.Keys(known)))
}
