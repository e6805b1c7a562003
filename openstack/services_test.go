package openstack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	th "github.com/gophercloud/gophercloud/v2/testhelper"
)

// TestServicesDisableEnable runs against os-services answers shaped as
// Nova 26 gives them at microversion 2.87 (the Nova harness test in
// integration/ drives the real one).
func TestServicesDisableEnable(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	const id = "4c8a2f7e-3b0c-4f8e-9d47-0b8d2b6a1e11"
	var mu sync.Mutex
	var puts []string
	fs.Mux.HandleFunc("/os-services", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("host") != "c1" || r.URL.Query().Get("binary") != "nova-compute" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"services": []}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"services": [{"id": %q, "binary": "nova-compute", "host": "c1", "zone": "nova", "status": "enabled", "state": "up", "updated_at": "2026-05-01T10:00:00.000000", "disabled_reason": null, "forced_down": false}]}`, id)
	})
	fs.Mux.HandleFunc("/os-services/"+id, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		puts = append(puts, fmt.Sprintf("%v/%v", body["status"], body["disabled_reason"]))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"service": {"id": %q, "binary": "nova-compute", "host": "c1", "zone": "nova", "status": %q, "state": "up", "forced_down": false}}`, id, body["status"])
	})
	s := NewServices(fakeCompute(fs))
	ctx := context.Background()
	if err := s.DisableService(ctx, "c1", "ecrae: powered off"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableService(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(puts, "; "), "disabled/ecrae: powered off; enabled/<nil>"; got != want {
		t.Errorf("PUTs %q, want %q", got, want)
	}
	if err := s.DisableService(ctx, "c9", "x"); err == nil || !strings.Contains(err.Error(), "host c9: Nova has no nova-compute service") {
		t.Errorf("unknown host: %v", err)
	}
}

// TestHostBusy: Nova's own answer, servers of every project on the host,
// then its unsettled migrations (answers shaped as Nova 26 gives them).
func TestHostBusy(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	var servers, migs string
	fs.Mux.HandleFunc("/servers/detail", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("host") != "c1" || r.URL.Query().Get("all_tenants") != "true" {
			http.Error(w, "want host=c1&all_tenants=true, got "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"servers": [%s]}`, servers)
	})
	fs.Mux.HandleFunc("/os-migrations", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("host") != "c1" {
			http.Error(w, "want host=c1", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"migrations": [%s]}`, migs)
	})
	s := NewServices(fakeCompute(fs))
	ctx := context.Background()
	for _, tc := range []struct {
		name, servers, migs, want string
	}{
		{"idle", "", `{"id": 3, "status": "completed", "instance_uuid": "i-1", "source_compute": "c1", "dest_compute": "c2", "migration_type": "live-migration"}`, ""},
		{"a server", `{"id": "i-9", "name": "vm", "status": "SHUTOFF"}`, "", "Nova lists 1 server(s) on c1 (first: i-9)"},
		// A resize waiting for its confirmation still holds the source.
		{"an unconfirmed resize", "", `{"id": 4, "status": "finished", "instance_uuid": "i-2", "source_compute": "c1", "dest_compute": "c2", "migration_type": "resize"}`, "migration 4 of i-2 (c1 → c2) is finished"},
	} {
		servers, migs = tc.servers, tc.migs
		got, err := s.HostBusy(ctx, "c1")
		if err != nil || got != tc.want {
			t.Errorf("%s: HostBusy = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
