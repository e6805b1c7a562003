// Package events feeds the live host view (package hostview) from NATS
// JetStream: Nova's versioned notifications, published by the shim's
// oslo.messaging "nats" driver on <prefix>.versioned_notifications.
// <priority>.<event_type>, and node power samples on ecrae.metrics.<host>.
// One stream captures both; the view is read from it in stream order,
// starting after the last sequence the saved view covers, so what is
// published while the service is down (or applied after its last save and
// lost in a crash) is applied when it comes back, once. Malformed messages
// and messages past a limit (size, field length, future timestamp, sample
// range, unknown host) are counted, logged with their subject and skipped;
// unknown event types are counted and ignored. See README.md for the sample
// schema, the limits and the restart rules.
package events
