package server

import (
	"google.golang.org/grpc"
)

// DefaultMaxMessage is the gRPC message limit, both ways, of `ecrae serve`
// (--grpc-max-message), the CLI (--max-message) and the shim ([ecrae]
// max_message_mb): 64 MiB. Nova sends every candidate host in one call, and
// a host with libvirt's real cpu_info (about a hundred CPU features) costs
// about 1.4 KB on the wire: 10,000 hosts make a FilterHosts request of
// about 14 MB (BenchmarkFilterHostsLibvirt reports the exact req-bytes),
// and the full WeighHosts breakdown answer is larger still. 64 MiB leaves
// room for 40,000 such hosts, while gRPC's 4 MiB default stops near 3,000.
const DefaultMaxMessage = 64 << 20

// MessageLimitOptions are the server options of a message limit of max
// bytes, received and sent.
func MessageLimitOptions(max int) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(max), grpc.MaxSendMsgSize(max)}
}

// MessageLimitCallOptions are the same limit for a client's calls.
func MessageLimitCallOptions(max int) []grpc.CallOption {
	return []grpc.CallOption{grpc.MaxCallRecvMsgSize(max), grpc.MaxCallSendMsgSize(max)}
}
