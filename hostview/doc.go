// Package hostview is the service's live picture of the compute hosts and
// the instances on them, kept current by Nova's notifications and node power
// samples (package events) and reconciled with Nova and Placement (package
// openstack).
//
// # Rules
//
//   - Idempotent: an event whose message_id was applied already changes
//     nothing (a bounded window of ids is remembered).
//   - Order-tolerant: an instance event older than the last one applied to
//     that instance changes nothing; the same holds per host for service
//     events, Nova metrics and power samples. A deleted instance leaves a
//     tombstone, so a late create does not bring it back.
//   - Stream position: AppliedSeq is the last stream sequence applied, and
//     is saved with the view (SaveFile), so a restart resumes right after
//     it. A node sample for a host the view does not know is refused
//     (UnknownHost), never turned into a host.
//   - Concurrency: writers take one mutex for the few microseconds an event
//     needs; readers get an immutable Snapshot, rebuilt at most once per
//     change and shared by every reader until the next one, so scoring never
//     waits on ingestion and ingestion waits on a reader only while a
//     snapshot is copied.
//   - Staleness: a host not heard from (no event published by its compute
//     service, no service change, no metric or power sample, no resync that
//     saw it up) for StaleAfter is stale, and a measurement older than
//     StaleAfter is not used: scoring falls back to the model's estimate and
//     says so.
package hostview
