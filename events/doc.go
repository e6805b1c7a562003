// Package events feeds the live host view (package hostview) from NATS
// JetStream: Nova's versioned notifications, published by the shim's
// oslo.messaging "nats" driver on <prefix>.versioned_notifications.
// <priority>.<event_type>, and node power samples on ecrae.metrics.<host>.
// One stream captures both; one durable pull consumer applies each message
// to the view and then acknowledges it, so what is published while the
// service is down is applied when it comes back, once. Malformed messages
// are counted, logged with their subject and skipped; unknown event types
// are counted and ignored. See README.md for the sample schema and the
// restart rules.
package events
