package server

import (
	"fmt"
	"sync"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the placement calls' hosts and of a reference's fields
// (placement.proto): FilterHostsRequest.hosts and WeighHostsRequest.hosts
// are both 2.
const (
	fieldHosts    protowire.Number = 2
	fieldHost     protowire.Number = 1
	fieldNodename protowire.Number = 2
	fieldStateRef protowire.Number = 20
)

// internLimit bounds the references whose names a codec remembers (the
// state cache's default 40,000 and more), and internMaxLen the length of
// their names together (a DNS name is at most 253): at most 32 MiB whatever
// clients send.
const (
	internLimit  = 1 << 17
	internMaxLen = 256
)

// refDecoder decodes the placement calls that carry host references in a
// compact way. From its second call on, the shim sends each unchanged host as
// a reference: a host name, a node name and a digest. Decoded by the
// generated code each is a HostState of its own (~300 bytes zeroed) and two
// fresh strings; at 10,000 hosts that was a third of a pass's CPU and most of
// its garbage. Here a reference that comes again with the same names is the
// HostState decoded the first time: no allocation at all. Those messages are
// shared between calls and must not be modified (the service only reads a
// request). A full state is decoded as before, into a message of its own (the
// state cache may keep it).
type refDecoder struct {
	mu   sync.RWMutex
	refs map[uint64]*ecraev1.HostState // by state_ref
}

func newRefDecoder() *refDecoder { return &refDecoder{refs: make(map[uint64]*ecraev1.HostState)} }

// hostsOf is the field of m decodeHosts fills, or nil for another message.
func hostsOf(v any) *[]*ecraev1.HostState {
	switch m := v.(type) {
	case *ecraev1.FilterHostsRequest:
		return &m.Hosts
	case *ecraev1.WeighHostsRequest:
		return &m.Hosts
	}
	return nil
}

// decode fills msg from data: every field but the hosts through the
// generated decoder, the hosts here.
func (d *refDecoder) decode(data []byte, msg vtMessage, hosts *[]*ecraev1.HostState) error {
	if !hasHosts(data) {
		// Packed references (host_refs) and nothing in hosts: the
		// generated decoder, without first copying the rest aside.
		return msg.UnmarshalVT(data)
	}
	var rest []byte
	var out []*ecraev1.HostState
	var learned []*ecraev1.HostState
	d.mu.RLock()
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[max(n, 0):])
		if n < 0 || m < 0 {
			d.mu.RUnlock()
			// Malformed (or groups, which the generated decoder skips
			// more leniently): its answer, whatever it is, is the one.
			return msg.UnmarshalVT(data)
		}
		if num != fieldHosts || typ != protowire.BytesType {
			rest = append(rest, b[:n+m]...)
			b = b[n+m:]
			continue
		}
		v, _ := protowire.ConsumeBytes(b[n:])
		b = b[n+m:]
		if out == nil {
			out = make([]*ecraev1.HostState, 0, 64)
		}
		ref, host, nodename, ok := parseRef(v)
		if !ok {
			h := &ecraev1.HostState{}
			if err := h.UnmarshalVT(v); err != nil {
				d.mu.RUnlock()
				return fmt.Errorf("hosts[%d]: %w", len(out), err)
			}
			out = append(out, h)
			continue
		}
		if h, ok := d.refs[ref]; ok && h.Host == string(host) && h.Nodename == string(nodename) {
			out = append(out, h)
			continue
		}
		h := &ecraev1.HostState{Host: string(host), Nodename: string(nodename), StateRef: ref}
		if len(host)+len(nodename) <= internMaxLen {
			learned = append(learned, h)
		}
		out = append(out, h)
	}
	d.mu.RUnlock()
	if len(learned) > 0 {
		d.learn(learned)
	}
	if err := msg.UnmarshalVT(rest); err != nil {
		return err
	}
	if out != nil {
		*hosts = out
	}
	return nil
}

// hasHosts reports whether data holds a hosts field, or is not well-formed
// (decode then says what the generated decoder says).
func hasHosts(data []byte) bool {
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[max(n, 0):])
		if n < 0 || m < 0 || num == fieldHosts {
			return true
		}
		b = b[n+m:]
	}
	return false
}

// parseRef reads v, an encoded HostState, as a reference: host, nodename
// and state_ref (each at most once), state_ref set, no other field. Anything
// else (a full state, an unknown field) is !ok, for the generated decoder.
func parseRef(v []byte) (ref uint64, host, nodename []byte, ok bool) {
	var seen [3]bool
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return 0, nil, nil, false
		}
		v = v[n:]
		var k int
		switch {
		case num == fieldHost && typ == protowire.BytesType:
			k = 0
			host, n = protowire.ConsumeBytes(v)
		case num == fieldNodename && typ == protowire.BytesType:
			k = 1
			nodename, n = protowire.ConsumeBytes(v)
		case num == fieldStateRef && typ == protowire.Fixed64Type:
			k = 2
			ref, n = protowire.ConsumeFixed64(v)
		default:
			return 0, nil, nil, false
		}
		if n < 0 || seen[k] {
			return 0, nil, nil, false
		}
		seen[k] = true
		v = v[n:]
	}
	return ref, host, nodename, seen[2]
}

// learn remembers references by digest; past internLimit digests it starts
// afresh (the digests of states long replaced go too).
func (d *refDecoder) learn(refs []*ecraev1.HostState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range refs {
		if len(d.refs) >= internLimit {
			clear(d.refs)
		}
		d.refs[h.StateRef] = h
	}
}
