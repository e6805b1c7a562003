// Package optimizer is ECRAE's pure decision code: power models, the filter
// and scorer chain for one placement request, what-if placement of a batch,
// and (later) consolidation. It does no I/O: callers hand it snapshots.
//
// # Pipeline
//
// One request goes through (files in brackets):
//
//	state    per-request values computed once: sanitised request and
//	         profile, candidate factors and ceilings          [state.go]
//	fit      per-host values computed once: ISA, candidate entry,
//	         utilisation now and added, marginal watts         [state.go]
//	filter   host → capacity → isa → group → candidates →
//	         ceiling: the one rule set, shared with
//	         consolidation                          [filter.go, rules.go]
//	score    energy, consolidation: raw measure + explanation;
//	         then normalise to [0,100], × weight, sum          [score.go]
//	what-if  filter, score, pick the best, consume capacity on
//	         a private copy, next item                         [whatif.go]
//
// # Vocabulary
//
//   - Marginal watts: Watts(u+Δu) − Watts(u) of the host's power curve, plus
//     the idle power Curve[0] when the host is empty (no instances, no vCPUs
//     in use), because an empty host could be asleep.
//   - Factor: the performance factor of the host's candidate entry, the work
//     it does per core-second relative to the tag's reference; 1 when the
//     host matches no candidate or the profile lists none.
//   - Ceiling: the utilisation the host may reach with the instance; the
//     candidate's, else the profile's; 0 = none.
//
// # Explanations
//
// Every Component and Verdict carries its text, built eagerly: the server
// returns all of it. Each text is formatted with append-style helpers (an
// integer-based fixed-point formatter, not fmt) into a reused line buffer and
// copied into one strings.Builder (or byte buffer) per call; every
// Explanation or Reason is a substring of that one string. The text costs a
// fixed handful of allocations per call, not per host, and keeping any one
// explanation keeps the call's whole text (about 200 bytes a host) alive.
//
// # Bad numbers
//
// Inputs are sanitised, never rejected (the caller validates what it reports
// to users): a NaN or infinite allocation ratio, CPU load or performance
// factor counts as 1; a NaN, infinite or non-positive ceiling counts as none;
// a negative or non-finite curve point counts as 0 W; a non-finite measured
// utilisation falls back to the estimate, a finite one is clamped to [0, 1];
// zero or negative Model.Cores falls back to VCPUsTotal, then 1; negative
// request sizes count as 0; a nil Host.Model is an empty model. A weight
// that is NaN, infinite or not positive disables its scorer. So no score is
// ever NaN. Absurd but finite inputs (watts near MaxFloat64, factors near 0)
// can still give an infinite Raw or MarginalWatts; normalisation gives a
// non-finite Raw the worst score, 0, so Normalized is always in [0, 100].
package optimizer
