package server

import (
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

// The fast codec must speak plain protobuf: what it writes the standard
// library reads, and the other way round; non-ECRAE messages fall back.
func TestCodecIsWireCompatible(t *testing.T) {
	req := &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-old", "x86_64", 3, 3)},
		ScorerWeights: map[string]float64{"energy": 2}, OmitExplanations: true}
	fast, err := Codec{}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var std ecraev1.WeighHostsRequest
	if err := proto.Unmarshal(fast, &std); err != nil || !proto.Equal(&std, req) {
		t.Fatalf("standard decode of the fast encoding: %v %v", err, &std)
	}
	plain, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back ecraev1.WeighHostsRequest
	if err := (Codec{}).Unmarshal(plain, &back); err != nil || !proto.Equal(&back, req) {
		t.Fatalf("fast decode of the standard encoding: %v %v", err, &back)
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
