// Package ha runs several `ecrae serve` replicas as one service on a NATS
// JetStream cluster (issue 14): the cluster options of the embedded NATS
// server, the knowledge base replicated through a JetStream key-value
// bucket, and the leader lease that lets one replica act at a time. All
// agreement is JetStream's RAFT; this package writes no consensus.
package ha
