package power

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

func TestIPMIAgainstFakeBMC(t *testing.T) {
	port := startFakeBMC(t)
	ep, err := ParseEndpoint(fmt.Sprintf("ipmi://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Backends{}.For(ep, Credentials{"admin", "password"}, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, err := b.Status(ctx); err != nil || st != StateOff {
		t.Fatalf("status at start = %v, %v; want off (fakebmc starts off)", st, err)
	}
	if err := b.On(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ipmitool(t, port, "power", "status"); got != "Chassis Power is on" {
		t.Errorf("ipmitool after On: %q", got)
	}
	if st, err := b.Status(ctx); err != nil || st != StateOn {
		t.Errorf("status after On = %v, %v", st, err)
	}
	if err := b.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ipmitool(t, port, "power", "status"); got != "Chassis Power is off" {
		t.Errorf("ipmitool after Off: %q", got)
	}
	// Wrong password: RAKP fails, an error rather than a guess.
	bad, _ := Backends{Timeout: time.Second}.For(ep, Credentials{"admin", "wrong"}, true)
	if st, err := bad.Status(ctx); err == nil || st != StateUnknown {
		t.Errorf("wrong password: %v, %v; want an error and unknown", st, err)
	}
}

// redfishStandIn is a stand-in for a Redfish BMC (Debian has no Redfish
// emulator): one ComputerSystem with PowerState and the
// #ComputerSystem.Reset action from DMTF's schema, with basic auth.
type redfishStandIn struct {
	mu     sync.Mutex
	state  string
	resets []string
}

func (r *redfishStandIn) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); !ok || u != "root" || p != "calvin" {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case req.Method == http.MethodGet && req.URL.Path == "/redfish/v1/Systems/1":
		json.NewEncoder(w).Encode(map[string]any{
			"@odata.id": "/redfish/v1/Systems/1", "Id": "1", "PowerState": r.state,
			"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
				"target":                            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
				"ResetType@Redfish.AllowableValues": []string{"On", "ForceOff", "GracefulShutdown"}}},
		})
	case req.Method == http.MethodPost && req.URL.Path == "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset":
		var body struct{ ResetType string }
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch body.ResetType {
		case "On":
			r.state = "On"
		case "ForceOff":
			r.state = "Off"
		default:
			http.Error(w, "bad ResetType", http.StatusBadRequest)
			return
		}
		r.resets = append(r.resets, body.ResetType)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, req)
	}
}

func TestRedfishReset(t *testing.T) {
	rf := &redfishStandIn{state: "On"}
	srv := httptest.NewServer(rf)
	defer srv.Close()
	ep, err := ParseEndpoint("redfish+http://" + strings.TrimPrefix(srv.URL, "http://") + "/Systems/1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Backends{}.For(ep, Credentials{"root", "calvin"}, true)
	ctx := context.Background()
	if st, err := b.Status(ctx); err != nil || st != StateOn {
		t.Fatalf("status = %v, %v", st, err)
	}
	if err := b.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st != StateOff {
		t.Errorf("after Off: %v", st)
	}
	if err := b.On(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ForceOff", "On"}; fmt.Sprint(rf.resets) != fmt.Sprint(want) {
		t.Errorf("resets %v, want %v", rf.resets, want)
	}
	bad, _ := Backends{}.For(ep, Credentials{"root", "nope"}, true)
	if _, err := bad.Status(ctx); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("wrong password: %v", err)
	}
}

// TestIronicPowerState runs against recorded Ironic API responses
// (httptest): Ironic's API needs its conductor, database and a driver,
// which do not run in a Go test here.
func TestIronicPowerState(t *testing.T) {
	const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	var mu sync.Mutex
	state, puts := "power off", []string{}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/nodes/"+node, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"uuid": %q, "name": "compute-3", "power_state": %q, "target_power_state": null, "provision_state": "active", "maintenance": false}`, node, state)
	})
	mux.HandleFunc("/v1/nodes/"+node+"/states/power", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var body struct {
			Target string `json:"target"`
		}
		if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		puts = append(puts, body.Target)
		state = body.Target
		w.WriteHeader(http.StatusAccepted)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	sc := &gophercloud.ServiceClient{ProviderClient: &gophercloud.ProviderClient{HTTPClient: *http.DefaultClient},
		Endpoint: srv.URL + "/v1/", ResourceBase: srv.URL + "/v1/"}
	ep, _ := ParseEndpoint("ironic://" + node)
	b, err := Backends{Baremetal: sc}.For(ep, Credentials{}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if st, err := b.Status(ctx); err != nil || st != StateOff {
		t.Fatalf("status = %v, %v", st, err)
	}
	if err := b.On(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st != StateOn {
		t.Errorf("after On: %v", st)
	}
	if err := b.Off(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "[power on power off]"; fmt.Sprint(puts) != want {
		t.Errorf("PUT targets %v, want %s", puts, want)
	}
	if _, err := (Backends{}).For(ep, Credentials{}, false); err == nil || !strings.Contains(err.Error(), "no Ironic") {
		t.Errorf("ironic without a baremetal client: %v", err)
	}
}
