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
// its garbage. Here all references of a call share one slab, and their names
// are the ones last seen with the same digest (interned): three allocations per call instead of
// three per host. A full state is decoded as before, into a message of its own
// (the state cache may keep it).
type refDecoder struct {
	mu    sync.RWMutex
	names map[uint64]refNames // by state_ref
}

func newRefDecoder() *refDecoder { return &refDecoder{names: make(map[uint64]refNames)} }

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

// decode fills msg from data: every field but the hosts through the generated
// decoder, the hosts here.
func (d *refDecoder) decode(data []byte, msg vtMessage, hosts *[]*ecraev1.HostState) error {
	// One pass to split the hosts from the rest and count the references.
	var rest []byte
	var elems [][]byte
	refs := 0
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[max(n, 0):])
		if n < 0 || m < 0 {
			// Malformed (or groups, which the generated decoder skips
			// more leniently): its answer, whatever it is, is the one.
			return msg.UnmarshalVT(data)
		}
		if num == fieldHosts && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			elems = append(elems, v)
			if isRef(v) {
				refs++
			}
		} else {
			rest = append(rest, b[:n+m]...)
		}
		b = b[n+m:]
	}
	if err := msg.UnmarshalVT(rest); err != nil {
		return err
	}
	if len(elems) == 0 {
		return nil
	}
	out := make([]*ecraev1.HostState, len(elems))
	slab := make([]ecraev1.HostState, refs)
	d.mu.RLock()
	var missed []refNames
	for i, v := range elems {
		if !isRef(v) {
			h := &ecraev1.HostState{}
			if err := h.UnmarshalVT(v); err != nil {
				d.mu.RUnlock()
				return fmt.Errorf("hosts[%d]: %w", i, err)
			}
			out[i] = h
			continue
		}
		h := &slab[0]
		slab = slab[1:]
		missed = d.decodeRef(v, h, missed)
		out[i] = h
	}
	d.mu.RUnlock()
	if len(missed) > 0 {
		d.learn(missed)
	}
	*hosts = out
	return nil
}

// isRef reports whether v, an encoded HostState, holds no field but host,
// nodename and state_ref (each at most once), with state_ref set. Anything
// else (a full state, an unknown field) goes to the generated decoder.
func isRef(v []byte) bool {
	var seen [3]bool
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return false
		}
		var k int
		switch {
		case num == fieldHost && typ == protowire.BytesType:
			k = 0
		case num == fieldNodename && typ == protowire.BytesType:
			k = 1
		case num == fieldStateRef && typ == protowire.Fixed64Type:
			k = 2
		default:
			return false
		}
		if seen[k] {
			return false
		}
		seen[k] = true
		m := protowire.ConsumeFieldValue(num, typ, v[n:])
		if m < 0 {
			return false
		}
		v = v[n+m:]
	}
	return seen[2]
}

// decodeRef fills h from v, which isRef accepted, with the names last
// decoded for its digest when they are the same bytes; the others are
// copied and returned in missed for learn (d.mu is read-locked).
func (d *refDecoder) decodeRef(v []byte, h *ecraev1.HostState, missed []refNames) []refNames {
	var host, nodename []byte
	for len(v) > 0 {
		num, _, n := protowire.ConsumeTag(v)
		v = v[n:]
		switch num {
		case fieldStateRef:
			x, m := protowire.ConsumeFixed64(v)
			h.StateRef, v = x, v[m:]
		case fieldHost:
			host, n = protowire.ConsumeBytes(v)
			v = v[n:]
		default:
			nodename, n = protowire.ConsumeBytes(v)
			v = v[n:]
		}
	}
	if k, ok := d.names[h.StateRef]; ok && k.host == string(host) && k.nodename == string(nodename) {
		h.Host, h.Nodename = k.host, k.nodename
		return missed
	}
	h.Host, h.Nodename = string(host), string(nodename)
	if len(host)+len(nodename) <= internMaxLen {
		missed = append(missed, refNames{h.StateRef, h.Host, h.Nodename})
	}
	return missed
}

// refNames are the names a reference came with.
type refNames struct {
	digest         uint64
	host, nodename string
}

// learn remembers the names of references by digest; past internLimit
// digests it starts afresh (the digests of states long replaced go too).
func (d *refDecoder) learn(names []refNames) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range names {
		if len(d.names) >= internLimit {
			clear(d.names)
		}
		d.names[k.digest] = k
	}
}
