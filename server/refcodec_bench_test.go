package server

import (
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// BenchmarkDecodeRefs decodes a WeighHostsRequest of 10,000 references with
// the generated decoder (codec=generated, the code before issue 15) and the
// compact one.
func BenchmarkDecodeRefs(b *testing.B) {
	refs := make([]*ecraev1.HostState, 10000)
	for i, h := range benchHosts(len(refs)) {
		refs[i] = &ecraev1.HostState{Host: h.GetHost(), Nodename: h.GetNodename(), StateRef: uint64(i + 1)}
	}
	data, err := proto.Marshal(&ecraev1.WeighHostsRequest{Instance: &ecraev1.InstanceRequest{Tag: "x"}, Hosts: refs, ScoresOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec Codec
	}{{"codec=generated", Codec{}}, {"codec=compact", NewCodec()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := &ecraev1.WeighHostsRequest{}
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, m); err != nil || len(m.GetHosts()) != len(refs) {
					b.Fatal(err)
				}
			}
		})
	}
}
