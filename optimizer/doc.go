// Package optimizer is ECRAE's pure decision code: power models, the filter
// and scorer chain for one placement request, what-if placement of a batch,
// and (later) consolidation. It does no I/O: callers hand it snapshots.
package optimizer
