package server

import (
	"context"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeRequests feeds arbitrary wire bytes through the request decoding
// and validation of all three placement calls: none may panic, and a refusal
// is always InvalidArgument (or FailedPrecondition for a what-if with no
// hosts anywhere), never an internal error.
func FuzzDecodeRequests(f *testing.F) {
	seeds := []proto.Message{
		&ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-old", "x86_64", 3, 3)}},
		&ecraev1.WeighHostsRequest{Instance: small("pinned-old"), Hosts: []*ecraev1.HostState{{Host: "x", CpuInfo: "{", Metrics: map[string]float64{"cpu.percent": 250}}}},
		&ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{small("web")}},
		&ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-new", "x86_64", 1, 1)},
			HostRefs: appendPacked(appendPacked(nil, 7, "h-old", "h-old"), 0, "", "")},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	srv := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		var w ecraev1.WeighHostsRequest
		if proto.Unmarshal(data, &w) == nil {
			checkRefusal(t, "WeighHosts", func() error { _, err := srv.WeighHosts(ctx, &w); return err })
			checkRefusal(t, "FilterHosts", func() error {
				_, err := srv.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: w.GetInstance(), Hosts: w.GetHosts(), HostRefs: w.GetHostRefs()})
				return err
			})
		}
		var wi ecraev1.WhatIfRequest
		if proto.Unmarshal(data, &wi) == nil {
			if len(wi.GetInstances()) > 0 && wi.GetInstances()[0].GetNumInstances() > 50 {
				wi.GetInstances()[0].NumInstances = 50 // keep each fuzz run short
			}
			checkRefusal(t, "WhatIf", func() error { _, err := srv.WhatIf(ctx, &wi); return err })
		}
	})
}

func checkRefusal(t *testing.T, what string, call func() error) {
	t.Helper()
	err := call()
	switch status.Code(err) {
	case codes.OK, codes.InvalidArgument, codes.FailedPrecondition:
	default:
		t.Errorf("%s: %v", what, err)
	}
}

// fuzzServer is a Server on a fresh KB, called directly (no transport), so
// the fuzzer spends its time in decoding and validation.
func fuzzServer(f *testing.F) *Server {
	h := newHarness(f, testKB)
	srv, err := New(Config{}, h.store, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	return srv
}
