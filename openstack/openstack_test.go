package openstack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/placement/v1/resourceproviders"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func clearEnv(t *testing.T) {
	for _, v := range []string{"OS_CLOUD", "OS_AUTH_URL", "OS_AUTH_TYPE", "OS_TOKEN", "OS_CLIENT_CONFIG_FILE",
		"OS_COMPUTE_ENDPOINT_OVERRIDE", "OS_PLACEMENT_ENDPOINT_OVERRIDE"} {
		t.Setenv(v, "")
	}
	t.Chdir(t.TempDir()) // no ./clouds.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}

func TestConnectWithoutCredentials(t *testing.T) {
	clearEnv(t)
	if _, err := Connect(context.Background(), Options{}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("err %v, want ErrNoCredentials", err)
	}
}

// TestConnectNoKeystone: clouds.yaml and OS_* forms of an endpoint-override
// cloud send the token and the microversions to the given endpoints.
func TestConnectNoKeystone(t *testing.T) {
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("X-Auth-Token") + " " + r.Header.Get("OpenStack-API-Version") + " " + r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/servers/detail"):
			w.Write([]byte(`{"servers": []}`))
		case strings.HasSuffix(r.URL.Path, "/os-hypervisors/detail"):
			w.Write([]byte(`{"hypervisors": []}`))
		default:
			w.Write([]byte(`{"resource_providers": []}`))
		}
	}))
	defer srv.Close()
	check := func(c *Client, src string) {
		t.Helper()
		if !strings.Contains(c.Source, src) {
			t.Errorf("source %q, want %q", c.Source, src)
		}
		inv, err := c.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Hosts) != 0 || inv.At.IsZero() {
			t.Errorf("inventory %+v", inv)
		}
		if got := seen.Load().(string); got != "admin:admin compute 2.87 /nova/v2.1/servers/detail" {
			t.Errorf("last request %q", got)
		}
	}

	clearEnv(t)
	cfg := filepath.Join(t.TempDir(), "clouds.yaml")
	os.WriteFile(cfg, []byte("clouds:\n  lab:\n    auth_type: none\n    auth: {token: 'admin:admin'}\n"+
		"    compute_endpoint_override: "+srv.URL+"/nova/v2.1\n    placement_endpoint_override: "+srv.URL+"/placement\n"), 0o600)
	t.Setenv("OS_CLIENT_CONFIG_FILE", cfg)
	c, err := Connect(context.Background(), Options{Cloud: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	check(c, `cloud "lab"`)
	if _, err := Connect(context.Background(), Options{Cloud: "other"}); err == nil || !strings.Contains(err.Error(), `no cloud "other"`) {
		t.Errorf("unknown cloud: %v", err)
	}

	clearEnv(t)
	t.Setenv("OS_AUTH_TYPE", "none")
	t.Setenv("OS_TOKEN", "admin:admin")
	t.Setenv("OS_COMPUTE_ENDPOINT_OVERRIDE", srv.URL+"/nova/v2.1")
	if _, err := Connect(context.Background(), Options{}); err == nil {
		t.Error("no placement endpoint accepted")
	}
	t.Setenv("OS_PLACEMENT_ENDPOINT_OVERRIDE", srv.URL+"/placement")
	c, err = Connect(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(c, "OS_AUTH_TYPE=none")
}

func TestConversions(t *testing.T) {
	c := capacity(map[string]resourceproviders.Inventory{
		"VCPU":      {Total: 64, Reserved: 2, AllocationRatio: 0.1},
		"MEMORY_MB": {Total: 262144, Reserved: 512, AllocationRatio: 1.5},
		"DISK_GB":   {Total: 4000, AllocationRatio: 1},
	})
	want := hostview.Capacity{VCPUs: 64, VCPUsReserved: 2, CPURatio: 0.1, MemoryMB: 262144, MemoryMBReserved: 512, RAMRatio: 1.5, DiskGB: 4000, DiskRatio: 1}
	if c != want {
		t.Errorf("capacity %+v", c)
	}
	s := &servers.Server{ID: "u1", Host: "h1", HypervisorHostname: "h1.example", TenantID: "p", VmState: "stopped", PowerState: servers.SHUTDOWN,
		Flavor: map[string]any{"original_name": "m1", "vcpus": 2.0, "ram": 2048.0, "disk": 20.0, "ephemeral": 0.0, "swap": "",
			"extra_specs": map[string]any{"ecrae:tag": "web"}}}
	i := instance(s)
	if i.Host != "h1" || i.Node != "h1.example" || i.PowerState != "shutdown" || i.Tag != "web" ||
		i.Flavor != (hostview.Flavor{Name: "m1", VCPUs: 2, MemoryMB: 2048, RootGB: 20}) {
		t.Errorf("instance %+v", i)
	}
}

type fakeReader struct {
	fails atomic.Int32 // fail this many reads first
	reads atomic.Int32
	inv   hostview.Inventory
}

func (f *fakeReader) Read(context.Context) (hostview.Inventory, error) {
	f.reads.Add(1)
	if f.fails.Add(-1) >= 0 {
		return hostview.Inventory{}, errors.New("placement unreachable")
	}
	inv := f.inv
	inv.At = time.Now()
	return inv, nil
}

func TestSyncerCountsDriftAndRetries(t *testing.T) {
	v := hostview.New(hostview.Options{})
	r := &fakeReader{inv: hostview.Inventory{
		Hosts:     []hostview.HostInventory{{Name: "h1", State: "up", Capacity: hostview.Capacity{VCPUs: 8, MemoryMB: 8192}}},
		Instances: []hostview.Instance{{UUID: "i1", Host: "h1", Flavor: hostview.Flavor{VCPUs: 2, MemoryMB: 1024}, State: "active"}},
	}}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := NewSyncer(r, v, 0, nil, m)
	s.retry = 10 * time.Millisecond
	// The first sync fills the empty view: a bootstrap, not drift.
	d, err := s.SyncOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.HostsAdded != 1 || d.InstancesAdded != 1 {
		t.Errorf("bootstrap %+v", d)
	}
	if got := value(t, m.drift.WithLabelValues("instance_added")); got != 0 {
		t.Errorf("bootstrap counted as drift: %v", got)
	}
	// Nova knows an instance the view missed: drift, counted.
	r.inv.Instances = append(r.inv.Instances, hostview.Instance{UUID: "i2", Host: "h1", Flavor: hostview.Flavor{VCPUs: 2, MemoryMB: 1024}, State: "active"})
	if d, err = s.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d.InstancesAdded != 1 || d.UsageMismatch != 1 {
		t.Errorf("drift %+v", d)
	}
	if got := value(t, m.drift.WithLabelValues("instance_added")); got != 1 {
		t.Errorf("drift metric %v", got)
	}
	// Bootstrap only (interval 0): Run retries a failed read, then stops.
	r.fails.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s.Run(ctx)
	if r.reads.Load() != 4 || value(t, m.runs.WithLabelValues("error")) != 1 || value(t, m.runs.WithLabelValues("ok")) != 3 {
		t.Errorf("reads %d, runs ok %v error %v", r.reads.Load(), value(t, m.runs.WithLabelValues("ok")), value(t, m.runs.WithLabelValues("error")))
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
