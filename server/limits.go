package server

import (
	"google.golang.org/grpc"
)

// DefaultMaxMessage is the gRPC message limit, both ways, of `ecrae serve`
// (--grpc-max-message), the CLI (--max-message) and the shim ([ecrae]
// max_message_mb): 64 MiB. Nova sends every candidate host in one call,
// and a host with libvirt's real cpu_info (106 CPU features) is 1,370
// bytes on the wire: a FilterHosts request of 10,000 hosts is 13.1 MiB
// (TestTenThousandLibvirtHostsFitTheDefaultLimit measures it), past gRPC's
// own 4 MiB default, which stops near 3,000 hosts. 64 MiB serves about
// 48,000 such hosts: 10,000 with more than 4× headroom for fatter
// cpu_info, metrics and aggregates.
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
