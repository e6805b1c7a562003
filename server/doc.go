// Package server wires the knowledge base and the optimizer behind the gRPC
// API: it validates and converts requests, resolves tags and host models
// from a cached KB snapshot, and answers with per-scorer breakdowns.
package server
