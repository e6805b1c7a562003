package server

import (
	"fmt"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// The fast codec must speak plain protobuf: what it writes the standard
// library reads, and the other way round, in one buffer or split across
// several; non-ECRAE messages fall back.
func TestCodecIsWireCompatible(t *testing.T) {
	small := &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-old", "x86_64", 3, 3)},
		ScorerWeights: map[string]float64{"energy": 2}, OmitExplanations: true}
	// Above gRPC's pooling threshold (1 KiB): encoded into a pooled buffer.
	large := &ecraev1.FilterHostsRequest{Instance: small.Instance, PassedOnly: true}
	for i := range 50 {
		large.Hosts = append(large.Hosts, novaHost(fmt.Sprintf("h-%d", i), "aarch64", int32(i%10), 1))
	}
	for _, c := range []struct {
		name string
		msg  proto.Message
		into func() proto.Message
	}{
		{"below the pooling threshold", small, func() proto.Message { return new(ecraev1.WeighHostsRequest) }},
		{"pooled", large, func() proto.Message { return new(ecraev1.FilterHostsRequest) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			fast, err := Codec{}.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			std := c.into()
			if err := proto.Unmarshal(fast.Materialize(), std); err != nil || !proto.Equal(std, c.msg) {
				t.Fatalf("standard decode of the fast encoding: %v %v", err, std)
			}
			fast.Free()
			plain, err := proto.Marshal(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			// One buffer, and the same bytes in three pieces as they may
			// come off the wire.
			third := len(plain) / 3
			for _, in := range []mem.BufferSlice{
				{mem.SliceBuffer(plain)},
				{mem.SliceBuffer(plain[:third]), mem.SliceBuffer(plain[third : 2*third]), mem.SliceBuffer(plain[2*third:])},
			} {
				back := c.into()
				if err := (Codec{}).Unmarshal(in, back); err != nil || !proto.Equal(back, c.msg) {
					t.Fatalf("fast decode of the standard encoding (%d pieces): %v %v", len(in), err, back)
				}
			}
		})
	}
	h := &healthpb.HealthCheckRequest{Service: "ecrae.v1.PlacementService"}
	b, err := Codec{}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var hb healthpb.HealthCheckRequest
	if err := (Codec{}).Unmarshal(b, &hb); err != nil || hb.GetService() != h.GetService() {
		t.Fatalf("fallback: %v %v", err, &hb)
	}
	if _, err := (Codec{}).Marshal(42); err == nil {
		t.Error("a non-message must be refused")
	}
}

// gRPC reuses the input buffer once Unmarshal returns: a decoded message
// must not point into it.
func TestCodecDecodedMessageOutlivesItsBuffer(t *testing.T) {
	want := &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-old", "x86_64", 3, 3)}}
	wire, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got ecraev1.FilterHostsRequest
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire)}, &got); err != nil {
		t.Fatal(err)
	}
	for i := range wire {
		wire[i] = 'X'
	}
	if !proto.Equal(&got, want) {
		t.Fatalf("the decoded message changed with its buffer: %v", &got)
	}

	// In pieces, the codec copies them into a pooled buffer and frees it;
	// the next Get of that size most likely hands the same buffer out.
	wire, _ = proto.Marshal(want)
	half := len(wire) / 2
	var split ecraev1.FilterHostsRequest
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(wire[:half]), mem.SliceBuffer(wire[half:])}, &split); err != nil {
		t.Fatal(err)
	}
	reused := mem.DefaultBufferPool().Get(len(wire))
	for i := range *reused {
		(*reused)[i] = 'X'
	}
	mem.DefaultBufferPool().Put(reused)
	if !proto.Equal(&split, want) {
		t.Fatalf("the message decoded from pieces changed with the pooled buffer: %v", &split)
	}
}
