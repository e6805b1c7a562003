// Package ha runs several `ecrae serve` replicas as one service on a NATS
// JetStream cluster (issue 14): the cluster options of the embedded NATS
// server, the knowledge base replicated through a JetStream key-value
// bucket, the leader lease that lets one replica act at a time, and what
// a new leader takes over: the plans (a bucket) and the power manager's
// history (a stream), from which it learns the hosts that are off. All
// agreement is JetStream's RAFT; this package writes no consensus.
package ha
