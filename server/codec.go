package server

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// vtMessage is what protoc-gen-go-vtproto adds to our messages: marshalling
// without reflection, two to three times faster on the placement path, where
// one call carries every candidate host.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// Codec is the gRPC codec (encoding.CodecV2) of the service and its Go
// clients: our messages take the generated fast path, others (health,
// reflection) the standard one. The wire format is protobuf either way.
//
// Both directions go through gRPC's buffer pool instead of allocating per
// call: a Nova pass carries every candidate host, and at a thousand hosts the
// allocations of the copies alone set the pace of the collector, whose
// cycles are what a pass's tail latency is made of.
//
// A Codec from NewCodec also decodes the host references of the placement
// calls into a compact form (see refDecoder); the zero Codec decodes them
// with the generated code, one message per host.
type Codec struct {
	refs *refDecoder
	pool mem.BufferPool // nil: gRPC's default
}

// NewCodec returns the service's codec, with compact host references and
// buffers that are not zeroed (see dirtyPool): run the server with
// ServerOptions, so that gRPC's transport takes its buffers there too.
func NewCodec() Codec { return Codec{refs: newRefDecoder(), pool: newDirtyPool()} }

// ServerOptions makes a gRPC server use c for every message and c's buffer
// pool for its transport.
func (c Codec) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.ForceServerCodecV2(c)}
	if c.pool != nil {
		opts = append(opts, experimental.BufferPool(c.pool))
	}
	return opts
}

func (c Codec) bufferPool() mem.BufferPool {
	if c.pool != nil {
		return c.pool
	}
	return mem.DefaultBufferPool()
}

// Name is "proto", so peers see the standard content type.
func (Codec) Name() string { return "proto" }

// Marshal encodes v into a pooled buffer; gRPC frees it once written.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case vtMessage:
		size := m.SizeVT()
		if mem.IsBelowBufferPoolingThreshold(size) {
			buf := make([]byte, size)
			if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
				return nil, err
			}
			return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
		}
		pool := c.bufferPool()
		buf := pool.Get(size)
		if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
			pool.Put(buf)
			return nil, err
		}
		return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
	case proto.Message:
		buf, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	return nil, fmt.Errorf("codec: %T is not a protobuf message", v)
}

// Unmarshal decodes data into v, a fresh message. The generated decoder
// copies every string and byte field, so the (pooled) input is released as
// soon as it returns.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	var decode func([]byte) error
	switch m := v.(type) {
	case vtMessage:
		decode = m.UnmarshalVT
		if hosts := hostsOf(v); hosts != nil && c.refs != nil {
			decode = func(b []byte) error { return c.refs.decode(b, m, hosts) }
		}
	case proto.Message:
		decode = func(b []byte) error { return proto.Unmarshal(b, m) }
	default:
		return fmt.Errorf("codec: %T is not a protobuf message", v)
	}
	if len(data) == 1 {
		return decode(data[0].ReadOnlyData())
	}
	buf := data.MaterializeToBuffer(c.bufferPool())
	defer buf.Free()
	return decode(buf.ReadOnlyData())
}
