package server

import (
	"strings"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestPowerMethodAccess: the power reads are a scheduler's (as `ecrae power
// status|history` and the console's power panel read them), the actions an
// operator's; every method named is a real RPC (a misspelt name in the
// table would silently fall back to operator-only).
func TestPowerMethodAccess(t *testing.T) {
	_ = ecraev1.File_ecrae_v1_power_proto // the registry holds the power service
	for _, c := range []struct {
		method string
		role   Role
		want   bool
	}{
		{"/ecrae.v1.PowerService/GetPowerStatus", RoleScheduler, true},
		{"/ecrae.v1.PowerService/ListPowerEvents", RoleScheduler, true},
		{"/ecrae.v1.PowerService/PowerOff", RoleScheduler, false},
		{"/ecrae.v1.PowerService/PowerOn", RoleScheduler, false},
		{"/ecrae.v1.PowerService/PowerOff", RoleOperator, true},
		{"/ecrae.v1.PowerService/ListPowerEvents", RoleAgent, false},
	} {
		svc, m, _ := strings.Cut(strings.TrimPrefix(c.method, "/"), "/")
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil || d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(m)) == nil {
			t.Errorf("%s is not an RPC: %v", c.method, err)
		}
		if got := Allowed(c.role, c.method); got != c.want {
			t.Errorf("Allowed(%s, %s) = %v, want %v", c.role, c.method, got, c.want)
		}
	}
}
