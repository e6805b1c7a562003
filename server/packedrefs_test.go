package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// randomCluster is n Nova host states of random size, load, ISA and
// metrics, each with a digest, and a live view that knows most of them, with
// instances and power samples on some.
func randomCluster(rng *rand.Rand, n int) ([]*ecraev1.HostState, *hostview.View) {
	arches := []string{"x86_64", "aarch64", "ppc64le", ""}
	hosts := make([]*ecraev1.HostState, n)
	view := hostview.New(hostview.Options{StaleAfter: time.Hour, Now: func() time.Time { return t0 }})
	inv := hostview.Inventory{At: t0}
	for i := range hosts {
		vcpus := int32(8 << rng.IntN(4))
		used := rng.Int32N(vcpus*2 + 1)
		ram := int64(vcpus) * 4096
		h := &ecraev1.HostState{
			Host: fmt.Sprintf("h%03d", i), Nodename: fmt.Sprintf("h%03d.example.org", i),
			VcpusTotal: vcpus, VcpusUsed: used, CpuAllocationRatio: []float64{0, 1, 4}[rng.IntN(3)],
			TotalUsableRamMb: ram, FreeRamMb: ram - int64(used)*1024, RamAllocationRatio: 1.5,
			TotalUsableDiskGb: 500, FreeDiskMb: 500*1024 - int64(used)*10240, DiskAllocationRatio: 1,
			NumInstances: used / 2,
		}
		if isa := arches[rng.IntN(len(arches))]; isa != "" {
			h.CpuInfo = `{"arch": "` + isa + `"}`
		}
		if rng.IntN(3) == 0 {
			h.Metrics = map[string]float64{"cpu.percent": float64(rng.IntN(101))}
		}
		hosts[i] = h
		if rng.IntN(5) == 0 {
			continue // not in the view
		}
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h.Host, Nodename: h.Nodename, ISA: arches[rng.IntN(3)], State: "up",
			Capacity: hostview.Capacity{VCPUs: int(vcpus), CPURatio: 4, MemoryMB: ram, RAMRatio: 1, DiskGB: 500, DiskRatio: 1}})
		for k := range rng.IntN(4) {
			inv.Instances = append(inv.Instances, hostview.Instance{UUID: fmt.Sprintf("%s-%d", h.Host, k), Host: h.Host, Node: h.Nodename,
				State: "active", PowerState: "running", Tag: []string{"", "web-frontend", "batch"}[rng.IntN(3)],
				Flavor: hostview.Flavor{Name: "f", VCPUs: 1 + rng.IntN(4), MemoryMB: 2048}})
		}
	}
	view.Reconcile(inv)
	for i := range n {
		if rng.IntN(4) == 0 {
			view.Apply(0, power(hosts[i].Host, t0, 80+rng.Float64()*300, rng.Float64()))
		}
	}
	return setDigests(hosts), view
}

// setDigests gives each host a digest of its content (as the shim does).
func setDigests(hosts []*ecraev1.HostState) []*ecraev1.HostState {
	for _, h := range hosts {
		h.StateDigest = 0
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(h)
		if err != nil {
			panic(err)
		}
		h.StateDigest = 1
		for _, c := range b { // FNV-1a: any content hash will do
			h.StateDigest = (h.StateDigest ^ uint64(c)) * 1099511628211
		}
	}
	return hosts
}

// serve runs srv behind a real gRPC listener with codec; it returns a
// client connection that marshals deterministically.
func serve(t *testing.T, srv *Server, codec Codec) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(codec.ServerOptions()...)
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pack is the call's hosts as the shim sends them once the service holds
// them: every host whose digest held[digest] says is held as a packed
// reference, the others in full (returned in order, for hosts).
func pack(hosts []*ecraev1.HostState, held map[uint64]bool) (refs []byte, full []*ecraev1.HostState) {
	for _, h := range hosts {
		if held[h.GetStateDigest()] {
			refs = appendPacked(refs, h.GetStateDigest(), h.GetHost(), h.GetNodename())
			continue
		}
		refs = appendPacked(refs, 0, "", "")
		full = append(full, h)
	}
	return refs, full
}

// TestPackedRefsAnswerAsFullStates: on random clusters and requests, the
// service answers a call whose hosts come as packed references (all of them,
// or mixed with changed hosts in full) byte for byte as the code before
// issue 15 answers the same hosts sent in full: both filter forms, both
// weigher forms.
func TestPackedRefsAnswerAsFullStates(t *testing.T) {
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.SeedDefault(ctx); err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 15))
		hosts, view := randomCluster(rng, 150+rng.IntN(150))
		before, err := New(Config{Live: view}, store, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		before.baseline = true
		after, err := New(Config{Live: view}, store, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		old, cur := serve(t, before, Codec{}), serve(t, after, NewCodec())
		held := map[uint64]bool{}
		for round := range 6 {
			if round > 0 && round%2 == 0 {
				// Nova's last boot changed a few hosts: they go in full.
				for range 1 + rng.IntN(5) {
					h := proto.Clone(hosts[rng.IntN(len(hosts))]).(*ecraev1.HostState)
					h.VcpusUsed++
					h.FreeRamMb -= 1024
					setDigests([]*ecraev1.HostState{h})
					for i := range hosts {
						if hosts[i].GetHost() == h.GetHost() {
							hosts[i] = h
						}
					}
				}
			}
			inst := &ecraev1.InstanceRequest{
				Flavor: &ecraev1.Flavor{Name: "f", Vcpus: int32(1 + rng.IntN(16)), MemoryMb: int64(512 << rng.IntN(6)), RootGb: int64(rng.IntN(40))},
				Tag:    []string{"", "web-frontend", "batch", "database", "arm-native"}[rng.IntN(5)],
			}
			if rng.IntN(3) == 0 {
				inst.ImageProperties = map[string]string{"hw_architecture": "aarch64"}
			}
			refs, full := pack(hosts, held)
			if len(full) == len(hosts) {
				refs = nil // nothing held yet: the plain form, as the shim
			}
			plain := make([]*ecraev1.HostState, len(hosts))
			for i, h := range hosts {
				plain[i] = proto.Clone(h).(*ecraev1.HostState)
				plain[i].StateDigest = 0
			}
			step := fmt.Sprintf("seed %d round %d (%d hosts, %d in full, tag %q)", seed, round, len(hosts), len(full), inst.GetTag())
			for _, passedOnly := range []bool{true, false} {
				want := &ecraev1.FilterHostsResponse{}
				got := &ecraev1.FilterHostsResponse{}
				sameAnswer(t, step, old, cur, "FilterHosts",
					&ecraev1.FilterHostsRequest{Instance: inst, Hosts: plain, PassedOnly: passedOnly}, want,
					&ecraev1.FilterHostsRequest{Instance: inst, Hosts: full, HostRefs: refs, PassedOnly: passedOnly}, got)
			}
			for _, scoresOnly := range []bool{true, false} {
				want := &ecraev1.WeighHostsResponse{}
				got := &ecraev1.WeighHostsResponse{}
				sameAnswer(t, step, old, cur, "WeighHosts",
					&ecraev1.WeighHostsRequest{Instance: inst, Hosts: plain, ScoresOnly: scoresOnly}, want,
					&ecraev1.WeighHostsRequest{Instance: inst, Hosts: full, HostRefs: refs, ScoresOnly: scoresOnly}, got)
				if !got.GetRefsPacked() {
					t.Fatalf("%s: the answer does not say refs_packed", step)
				}
			}
			// The weigher's call of a Nova pass holds the hosts the filter
			// passed: a subsequence, which the service's hint must follow.
			var some []*ecraev1.HostState
			for i, h := range hosts {
				if i%(2+round) != 0 {
					some = append(some, h)
				}
			}
			subRefs, subFull := pack(some, held)
			subPlain := make([]*ecraev1.HostState, len(some))
			for i, h := range some {
				subPlain[i] = proto.Clone(h).(*ecraev1.HostState)
				subPlain[i].StateDigest = 0
			}
			if len(subFull) == len(some) {
				subRefs = nil
			}
			want, got := &ecraev1.WeighHostsResponse{}, &ecraev1.WeighHostsResponse{}
			sameAnswer(t, step+" (a subsequence)", old, cur, "WeighHosts",
				&ecraev1.WeighHostsRequest{Instance: inst, Hosts: subPlain, ScoresOnly: true}, want,
				&ecraev1.WeighHostsRequest{Instance: inst, Hosts: subFull, HostRefs: subRefs, ScoresOnly: true}, got)
			for _, h := range hosts {
				held[h.GetStateDigest()] = true
			}
		}
	}
}

// sameAnswer calls method with wantReq on old and gotReq on cur and fails
// unless the answers are the same bytes.
func sameAnswer(t *testing.T, step string, old, cur *grpc.ClientConn, method string, wantReq proto.Message, want proto.Message, gotReq proto.Message, got proto.Message) {
	t.Helper()
	ctx := context.Background()
	full := "/ecrae.v1.PlacementService/" + method
	if err := old.Invoke(ctx, full, wantReq, want); err != nil {
		t.Fatalf("%s: %s before: %v", step, method, err)
	}
	if err := cur.Invoke(ctx, full, gotReq, got); err != nil {
		t.Fatalf("%s: %s packed: %v", step, method, err)
	}
	det := proto.MarshalOptions{Deterministic: true}
	w, err1 := det.Marshal(want)
	g, err2 := det.Marshal(got)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if !bytes.Equal(w, g) {
		t.Fatalf("%s: %s answers differ:\npacked %v\nbefore %v", step, method, got, want)
	}
}

// TestPackedRefsRefusals: a malformed host_refs, or one that does not
// match hosts, is InvalidArgument naming the field; a reference the service
// does not hold is FailedPrecondition naming the host, as for unpacked
// references (the shim then sends full states).
func TestPackedRefsRefusals(t *testing.T) {
	h := newHarness(t, testKB)
	srv, err := New(Config{MaxHosts: 3}, h.store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hosts := setDigests([]*ecraev1.HostState{novaHost("a", "x86_64", 3, 3), novaHost("b", "x86_64", 3, 3)})
	inst := small("web")
	if _, err := srv.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: inst, Hosts: hosts}); err != nil {
		t.Fatal(err)
	}
	ref := func(i int) []byte {
		return appendPacked(nil, hosts[i].GetStateDigest(), hosts[i].GetHost(), hosts[i].GetNodename())
	}
	cases := []struct {
		name  string
		refs  []byte
		hosts []*ecraev1.HostState
		code  codes.Code
		text  string
	}{
		{"short digest", []byte{1, 2, 3}, nil, codes.InvalidArgument, "host_refs: host 0 at byte 0 of 3: not a whole entry"},
		{"names cut", ref(0)[:10], nil, codes.InvalidArgument, "host_refs: host 0 at byte 0 of 10"},
		{"second cut", append(ref(0), 7), nil, codes.InvalidArgument, "host_refs: host 1 at byte"},
		{"place without a state", append(ref(0), make([]byte, 8)...), nil, codes.InvalidArgument, "host_refs: 1 places for full states, but hosts holds 0"},
		{"state without a place", ref(0), hosts[1:], codes.InvalidArgument, "host_refs: 0 places for full states, but hosts holds 1"},
		{"too many", append(append(ref(0), ref(1)...), append(ref(0), ref(1)...)...), nil, codes.InvalidArgument, "host_refs: 4 hosts exceed the limit of 3"},
		{"reference in hosts", append(ref(0), make([]byte, 8)...), []*ecraev1.HostState{{Host: "b", Nodename: "b", StateRef: hosts[1].GetStateDigest()}}, codes.InvalidArgument, "hosts[1].state_ref: a call with host_refs"},
		{"not held", append(ref(0), appendPacked(nil, 99, "b", "b")...), nil, codes.FailedPrecondition, `host_refs[1]: state 0000000000000063 of host "b" (node "b") is not held here`},
		{"other node", appendPacked(nil, hosts[0].GetStateDigest(), "b", hosts[0].GetNodename()), nil, codes.FailedPrecondition, "host_refs[0]: state"},
	}
	for _, c := range cases {
		_, err := srv.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: inst, Hosts: c.hosts, HostRefs: c.refs, ScoresOnly: true})
		if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.text) {
			t.Errorf("%s: got %v, want %v containing %q", c.name, err, c.code, c.text)
		}
	}
	// And the well-formed call of the same pieces is answered.
	resp, err := srv.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: inst, HostRefs: append(ref(1), ref(0)...), ScoresOnly: true})
	if err != nil || len(resp.GetScoreValues()) != 2 {
		t.Fatalf("got %v, %v", resp, err)
	}
}

// FuzzPackedRefs: whatever host_refs holds, reading it never panics and
// never reads past it, and a layout countPacked accepts is one it reads
// back entry by entry to the end.
func FuzzPackedRefs(f *testing.F) {
	f.Add(appendPacked(appendPacked(nil, 7, "host", "node"), 0, "", ""))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, fulls, err := countPacked(data)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refusal %v", err)
			}
			return
		}
		var again []byte
		seen, places := 0, 0
		for at := 0; at < len(data); seen++ {
			r, k := nextPacked(data[at:])
			if k <= 0 || at+k > len(data) {
				t.Fatalf("entry %d at %d: length %d of %d", seen, at, k, len(data))
			}
			if r.digest == 0 {
				places++
			}
			again = appendPacked(again, r.digest, string(r.host), string(r.nodename))
			at += k
		}
		if seen != n || places != fulls {
			t.Fatalf("counted %d hosts, %d places; read %d, %d", n, fulls, seen, places)
		}
		// Minimal varints re-encode to the same bytes; others are shorter.
		if len(again) > len(data) {
			t.Fatalf("re-encoded %d bytes from %d", len(again), len(data))
		}
	})
}

// TestPackedRefsHintHoldsNoDroppedState: a state evicted since the call
// that left it in the service's hint is not held any more, hint or not:
// a reference to it is FailedPrecondition.
func TestPackedRefsHintHoldsNoDroppedState(t *testing.T) {
	h := newHarness(t, testKB)
	srv, err := New(Config{StateCacheSize: 4}, h.store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mk := func(prefix string) []*ecraev1.HostState {
		var hosts []*ecraev1.HostState
		for i := range 4 {
			hosts = append(hosts, novaHost(fmt.Sprintf("%s%d", prefix, i), "x86_64", 3, 3))
		}
		return setDigests(hosts)
	}
	inst := small("web")
	call := func(hosts []*ecraev1.HostState, packed bool) error {
		req := &ecraev1.WeighHostsRequest{Instance: inst, Hosts: hosts, ScoresOnly: true}
		if packed {
			req.Hosts, req.HostRefs = nil, nil
			for _, h := range hosts {
				req.HostRefs = appendPacked(req.HostRefs, h.GetStateDigest(), h.GetHost(), h.GetNodename())
			}
		}
		_, err := srv.WeighHosts(ctx, req)
		return err
	}
	first, second := mk("a"), mk("b")
	for _, step := range []struct {
		hosts  []*ecraev1.HostState
		packed bool
		code   codes.Code
	}{
		{first, false, codes.OK},
		{first, true, codes.OK}, // the hint now holds first's states
		{second, false, codes.OK},
		{first, true, codes.FailedPrecondition}, // evicted by second's
		{first, false, codes.OK},
		{first, true, codes.OK},
	} {
		if err := call(step.hosts, step.packed); status.Code(err) != step.code {
			t.Fatalf("%s… packed=%v: %v, want %v", step.hosts[0].GetHost(), step.packed, err, step.code)
		}
	}
}
