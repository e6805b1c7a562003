package openstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	th "github.com/gophercloud/gophercloud/v2/testhelper"
	fakeclient "github.com/gophercloud/gophercloud/v2/testhelper/client"
)

// The bodies below follow what Nova 26 (Zed) answers at microversion 2.87
// in the in-process harness (integration/nova): a server's admin fields,
// os-migrations entries, instance actions. Only the fields the executor
// reads, and a few around them, are kept.

const serverID = "9ad5e5ad-4bc0-4a5b-9a1e-2d4a5e0a6f3c"

func serverBody(status, host, task string) string {
	t := "null"
	if task != "" {
		t = fmt.Sprintf("%q", task)
	}
	return fmt.Sprintf(`{"server": {"id": %q, "name": "web-1", "status": %q, "tenant_id": "6f70656e737461636b20342065766572",
 "user_id": "admin", "OS-EXT-SRV-ATTR:host": %q, "OS-EXT-SRV-ATTR:hypervisor_hostname": %q,
 "OS-EXT-STS:task_state": %s, "OS-EXT-STS:vm_state": "active", "OS-EXT-STS:power_state": 1,
 "flavor": {"vcpus": 2, "ram": 2048, "disk": 1, "ephemeral": 0, "swap": 0, "original_name": "m1.small", "extra_specs": {}},
 "addresses": {}, "metadata": {}, "links": [], "created": "2026-05-01T12:00:00Z", "updated": "2026-05-01T12:00:05Z"}}`,
		serverID, status, host, host, t)
}

func migrationJSON(id int, status, src, dst string) string {
	return fmt.Sprintf(`{"id": %d, "uuid": "1b2c%04d-0000-4000-8000-000000000000", "instance_uuid": %q,
 "source_compute": %q, "dest_compute": %q, "source_node": %q, "dest_node": %q, "dest_host": "127.0.0.1",
 "status": %q, "migration_type": "live-migration", "old_instance_type_id": 1, "new_instance_type_id": 1,
 "created_at": "2026-05-01T12:00:01.000000", "updated_at": "2026-05-01T12:00:04.000000",
 "user_id": "admin", "project_id": "6f70656e737461636b20342065766572", "links": []}`,
		id, id, serverID, src, dst, src, dst, status)
}

// fakeNova scripts one server's life after the migration is asked for:
// the k-th poll reads migs[k] then states[k] (the last one repeats).
type fakeNova struct {
	mu       sync.Mutex
	body     map[string]any // the os-migrateLive request
	refuse   int            // answer the action with this status, 0 = 202
	pre      string         // the server before the action
	states   []string       // server bodies after the action
	migs     [][]string     // os-migrations entries after the action
	before   []string       // os-migrations entries before the action
	actions  string         // os-instance-actions body
	srvGets  int
	migGets  int
	migrated bool
}

func (f *fakeNova) install(t *testing.T, fs th.FakeServer) {
	fs.Mux.HandleFunc("/servers/"+serverID+"/action", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "POST")
		th.TestHeader(t, r, "X-OpenStack-Nova-API-Version", MigrateMicroversion)
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		json.Unmarshal(b, &f.body)
		if f.refuse != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.refuse)
			fmt.Fprint(w, `{"conflictingRequest": {"code": 409, "message": "Cannot 'os-migrateLive' instance `+serverID+` while it is in task_state migrating"}}`)
			return
		}
		f.migrated = true
		w.WriteHeader(http.StatusAccepted)
	})
	fs.Mux.HandleFunc("/servers/"+serverID, func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		body := f.pre
		if f.migrated {
			body = f.states[min(f.srvGets, len(f.states)-1)]
			f.srvGets++
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	})
	fs.Mux.HandleFunc("/os-migrations", func(w http.ResponseWriter, r *http.Request) {
		th.TestFormValues(t, r, map[string]string{"instance_uuid": serverID, "migration_type": "live-migration"})
		f.mu.Lock()
		defer f.mu.Unlock()
		list := f.before
		if f.migrated && len(f.migs) > 0 {
			list = append(append([]string(nil), f.before...), f.migs[min(f.migGets, len(f.migs)-1)]...)
			f.migGets++
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"migrations": [%s]}`, strings.Join(list, ","))
	})
	fs.Mux.HandleFunc("/servers/"+serverID+"/os-instance-actions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, f.actions)
	})
}

func fakeCompute(fs th.FakeServer) *gophercloud.ServiceClient {
	c := fakeclient.ServiceClient(fs)
	c.Type = "compute" // gophercloud sends the microversion header by type
	return c
}

func newMigrator(t *testing.T, f *fakeNova) *Migrator {
	fs := th.SetupHTTP()
	t.Cleanup(fs.Teardown)
	f.install(t, fs)
	return NewMigrator(fakeCompute(fs), time.Millisecond)
}

func TestLiveMigrateSucceeds(t *testing.T) {
	f := &fakeNova{
		before: []string{migrationJSON(3, "completed", "host2", "host1")}, // an older move: not ours
		pre:    serverBody("ACTIVE", "host1", ""),
		states: []string{
			serverBody("MIGRATING", "host1", "migrating"),
			serverBody("MIGRATING", "host2", "migrating"),
			serverBody("ACTIVE", "host2", ""),
		},
		migs: [][]string{
			{migrationJSON(7, "running", "host1", "host2")},
			{migrationJSON(7, "running", "host1", "host2")},
			{migrationJSON(7, "completed", "host1", "host2")},
		},
	}
	m := newMigrator(t, f)
	if h, err := m.Locate(context.Background(), serverID); err != nil || h != "host1" {
		t.Fatalf("Locate = %q, %v", h, err)
	}
	if err := m.LiveMigrate(context.Background(), serverID, "host2"); err != nil {
		t.Fatalf("LiveMigrate: %v", err)
	}
	want := map[string]any{"os-migrateLive": map[string]any{"host": "host2", "block_migration": "auto"}}
	if fmt.Sprint(f.body) != fmt.Sprint(want) {
		t.Errorf("request body %v, want %v", f.body, want)
	}
}

func TestLiveMigrateFilterRefusedIsReported(t *testing.T) {
	f := &fakeNova{
		pre: serverBody("ACTIVE", "host1", ""),
		states: []string{
			serverBody("MIGRATING", "host1", "migrating"),
			serverBody("ACTIVE", "host1", ""),
		},
		migs: [][]string{
			{migrationJSON(8, "accepted", "host1", "")},
			{migrationJSON(8, "error", "host1", "")},
		},
		actions: `{"instanceActions": [{"action": "live-migration", "instance_uuid": "` + serverID + `",
 "message": "No valid host was found. There are not enough hosts available.", "project_id": "p", "request_id": "req-1",
 "start_time": "2026-05-01T12:00:01.000000", "user_id": "admin", "updated_at": "2026-05-01T12:00:02.000000"},
 {"action": "create", "instance_uuid": "` + serverID + `", "message": null, "project_id": "p", "request_id": "req-0",
 "start_time": "2026-05-01T11:00:00.000000", "user_id": "admin", "updated_at": "2026-05-01T11:00:01.000000"}]}`,
	}
	m := newMigrator(t, f)
	err := m.LiveMigrate(context.Background(), serverID, "host3")
	if err == nil {
		t.Fatal("LiveMigrate succeeded; want the migration's error")
	}
	for _, want := range []string{`ended "error"`, "the server is on host1", "No valid host was found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestLiveMigrateRefusedByAPI(t *testing.T) {
	f := &fakeNova{refuse: http.StatusConflict, pre: serverBody("ACTIVE", "host1", "")}
	m := newMigrator(t, f)
	err := m.LiveMigrate(context.Background(), serverID, "host2")
	if err == nil || !strings.Contains(err.Error(), "Nova refused") || !strings.Contains(err.Error(), "409") {
		t.Fatalf("err = %v, want Nova's refusal with its code", err)
	}
}

func TestLiveMigrateTimesOut(t *testing.T) {
	f := &fakeNova{
		pre:    serverBody("ACTIVE", "host1", ""),
		states: []string{serverBody("MIGRATING", "host1", "migrating")},
		migs:   [][]string{{migrationJSON(9, "running", "host1", "host2")}},
	}
	m := newMigrator(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := m.LiveMigrate(ctx, serverID, "host2")
	if err == nil || !strings.Contains(err.Error(), "no outcome before the step's deadline") ||
		!strings.Contains(err.Error(), "migration 9 running") {
		t.Fatalf("err = %v, want a timeout saying what was last seen", err)
	}
}

func TestLiveMigrateEndsElsewhere(t *testing.T) {
	f := &fakeNova{
		pre:    serverBody("ACTIVE", "host1", ""),
		states: []string{serverBody("ACTIVE", "host3", "")},
		migs:   [][]string{{migrationJSON(10, "completed", "host1", "host3")}},
	}
	m := newMigrator(t, f)
	err := m.LiveMigrate(context.Background(), serverID, "host2")
	if err == nil || !strings.Contains(err.Error(), "on host3, not on host2") {
		t.Fatalf("err = %v", err)
	}
}

func TestServerGroups(t *testing.T) {
	fs := th.SetupHTTP()
	defer fs.Teardown()
	fs.Mux.HandleFunc("/os-server-groups", func(w http.ResponseWriter, r *http.Request) {
		th.TestFormValues(t, r, map[string]string{"all_projects": "true"})
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"server_groups": [
 {"id": "g1", "name": "web", "policy": "anti-affinity", "rules": {}, "members": ["a", "b"], "project_id": "p", "user_id": "u"},
 {"id": "g2", "name": "db", "policy": "affinity", "rules": {}, "members": ["c"], "project_id": "p", "user_id": "u"}]}`)
	})
	m := NewMigrator(fakeCompute(fs), 0)
	gs, err := m.ServerGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(gs)
	if want := "[{g1 web anti-affinity [a b]} {g2 db affinity [c]}]"; got != want {
		t.Errorf("groups %s, want %s", got, want)
	}
}
