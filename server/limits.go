package server

import (
	"context"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
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

// maxStatusMessage bounds an error's message on the wire. Every error
// quotes at most 100 bytes of a bad value (internal/quote); this is the
// net under a path that does not, since a message past the peer's header
// limit turns the call's status into INTERNAL: RST_STREAM.
const maxStatusMessage = 4 << 10

// MessageLimitOptions are the server options of a message limit of max
// bytes, received and sent, with errors' messages bounded.
func MessageLimitOptions(max int) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(max), grpc.MaxSendMsgSize(max),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			return resp, boundStatus(err)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return boundStatus(h(srv, ss))
		}),
	}
}

// boundStatus cuts err's message to maxStatusMessage bytes, keeping its
// code and details.
func boundStatus(err error) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	msg := st.Message()
	if len(msg) <= maxStatusMessage {
		return err
	}
	cut := maxStatusMessage
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	p := st.Proto()
	p.Message = fmt.Sprintf("%s…(%d bytes)", msg[:cut], len(msg))
	return status.ErrorProto(p)
}

// MessageLimitCallOptions are the same limit for a client's calls.
func MessageLimitCallOptions(max int) []grpc.CallOption {
	return []grpc.CallOption{grpc.MaxCallRecvMsgSize(max), grpc.MaxCallSendMsgSize(max)}
}
