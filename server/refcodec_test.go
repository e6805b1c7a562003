package server

import (
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// refCodecCases are requests mixing references and full states, fields in
// every order the wire allows.
func refCodecCases() []proto.Message {
	full := benchHosts(3)
	full[1].StateDigest = 7
	refs := []*ecraev1.HostState{
		{Host: "compute-00000", Nodename: "compute-00000", StateRef: 1},
		{Host: "compute-00001", StateRef: 2},                          // no nodename
		{Host: "compute-00002", Nodename: "compute-00002", Uuid: "u"}, // not a reference: no state_ref
		{StateRef: 3}, // a reference without names
		full[0], full[1], full[2],
	}
	inst := &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "f", Vcpus: 2, MemoryMb: 4096}}
	return []proto.Message{
		&ecraev1.FilterHostsRequest{Instance: inst, Hosts: refs, PassedOnly: true},
		&ecraev1.WeighHostsRequest{Instance: inst, Hosts: refs, ScoresOnly: true, ScorerWeights: map[string]float64{"energy": 1}},
		&ecraev1.WeighHostsRequest{Instance: inst},
		&ecraev1.FilterHostsRequest{Hosts: refs[:2]},
	}
}

// TestRefCodecDecodesAsGenerated: the compact decoder gives the message the
// generated one gives, references and full states alike, twice in a row (the
// second time with interned names).
func TestRefCodecDecodesAsGenerated(t *testing.T) {
	c := NewCodec()
	for i, want := range refCodecCases() {
		b, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 2 {
			got := want.ProtoReflect().New().Interface()
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
				t.Fatalf("case %d round %d: %v", i, round, err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("case %d round %d: got %v, want %v", i, round, got, want)
			}
		}
	}
	// The references with digests 1, 2 and 3; full states are not kept.
	if n := len(c.refs.refs); n != 3 {
		t.Errorf("%d references remembered, want 3", n)
	}
}

// FuzzRefCodec: on any input the compact decoder accepts what the generated
// one accepts and yields the same message.
func FuzzRefCodec(f *testing.F) {
	for _, m := range refCodecCases() {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	c := NewCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		want := &ecraev1.WeighHostsRequest{}
		werr := want.UnmarshalVT(b)
		got := &ecraev1.WeighHostsRequest{}
		gerr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("generated decoder: %v, compact: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
}

// TestRefCodecNewNamesForADigest: a reference that comes with other names
// than last time under its digest gets its own names, not the remembered ones
// (the state cache then refuses it as naming another node).
func TestRefCodecNewNamesForADigest(t *testing.T) {
	c := NewCodec()
	for _, name := range []string{"a", "b", "a"} {
		b, err := proto.Marshal(&ecraev1.FilterHostsRequest{Hosts: []*ecraev1.HostState{{Host: name, Nodename: name + "-node", StateRef: 9}}})
		if err != nil {
			t.Fatal(err)
		}
		got := &ecraev1.FilterHostsRequest{}
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, got); err != nil {
			t.Fatal(err)
		}
		if h := got.GetHosts()[0]; h.GetHost() != name || h.GetNodename() != name+"-node" {
			t.Fatalf("sent %s, decoded %s/%s", name, h.GetHost(), h.GetNodename())
		}
	}
}
