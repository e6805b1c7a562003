package server

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// vtMessage is what protoc-gen-go-vtproto adds to our messages: marshalling
// without reflection, two to three times faster on the placement path, where
// one call carries every candidate host.
type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// Codec is the gRPC codec of the service and its Go clients: our messages
// take the generated fast path, others (health, reflection) the standard
// one. The wire format is protobuf either way.
type Codec struct{}

// Name is "proto", so peers see the standard content type.
func (Codec) Name() string { return "proto" }

// Marshal encodes v.
func (Codec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case vtMessage:
		return m.MarshalVT()
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("codec: %T is not a protobuf message", v)
}

// Unmarshal decodes data into v, a fresh message.
func (Codec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case vtMessage:
		return m.UnmarshalVT(data)
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("codec: %T is not a protobuf message", v)
}
