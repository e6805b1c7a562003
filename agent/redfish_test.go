package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// mockupServer serves DMTF's recorded mockup (testdata/redfish) the way
// the DMTF mockup server does: /redfish/v1/X is X/index.json. There is no
// Redfish emulator in Debian, hence httptest. hide names the resources
// gone at each request (an older BMC without PowerSubsystem); it requires
// basic auth admin:secret.
func mockupServer(t *testing.T, hide func() []string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var hidden []string
		if hide != nil {
			hidden = hide()
		}
		p := path.Clean(r.URL.Path)
		for _, h := range hidden {
			if strings.Contains(p, "/"+h) {
				http.NotFound(w, r)
				return
			}
		}
		b, err := os.ReadFile(filepath.Join("testdata", "redfish", filepath.FromSlash(p), "index.json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		s := string(b)
		for _, h := range hidden {
			// Drop the link line's member so that the chassis no longer
			// links the resource, as an older service would.
			s = strings.ReplaceAll(s, `"`+h+`": {`, `"Hidden`+h+`": {`)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(s))
	}))
	t.Cleanup(srv.Close)
	return srv, &gets
}

func TestRedfish(t *testing.T) {
	creds := Credentials{Username: "admin", Password: "secret"}
	for _, c := range []struct {
		name, path string
		hide       []string
		want       float64
	}{
		// PowerSubsystem: Bay1's InputPowerWatts 937.4; Bay2 is absent
		// (no Metrics): 937.4 W.
		{"power subsystem, first chassis", "", nil, 937.4},
		{"power subsystem, named chassis", "/redfish/v1/Chassis/1U", nil, 937.4},
		// Without PowerSubsystem: Power's PowerControl[0].PowerConsumedWatts.
		{"legacy Power", "/redfish/v1/Chassis/1U", []string{"PowerSubsystem"}, 344},
	} {
		srv, gets := mockupServer(t, func() []string { return c.hide })
		r, err := NewRedfish(srv.URL+c.path, creds, false, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Watts(context.Background())
		if err != nil || got != c.want {
			t.Errorf("%s: %v W, %v; want %v", c.name, got, err, c.want)
		}
		// The next reading goes straight to the resource found: one GET
		// (Bay1's metrics, or Power).
		gets.Store(0)
		if got, err := r.Watts(context.Background()); err != nil || got != c.want || gets.Load() != 1 {
			t.Errorf("%s, second reading: %v W, %v, %d GETs; want %v W in 1", c.name, got, err, gets.Load(), c.want)
		}
	}
}

func TestRedfishErrors(t *testing.T) {
	srv, _ := mockupServer(t, func() []string { return []string{"PowerSubsystem", "Power"} })
	r, _ := NewRedfish(srv.URL, Credentials{Username: "admin", Password: "secret"}, false, 5*time.Second)
	if _, err := r.Watts(context.Background()); err == nil || !strings.Contains(err.Error(), "links neither PowerSubsystem nor Power") {
		t.Errorf("no power resource: %v", err)
	}
	r, _ = NewRedfish(srv.URL, Credentials{Username: "admin", Password: "nope"}, false, 5*time.Second)
	if _, err := r.Watts(context.Background()); err == nil || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: %v; want the URL and 401", err)
	}
	for _, bad := range []string{"ftp://bmc", "https://", "https://bmc/redfish/v1/Systems/1"} {
		if _, err := NewRedfish(bad, Credentials{}, false, time.Second); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestRedfishRediscovers: when the resource found first goes away (the
// BMC's tree changed), the next reading walks from the chassis again.
func TestRedfishRediscovers(t *testing.T) {
	var legacy atomic.Bool
	srv, _ := mockupServer(t, func() []string {
		if legacy.Load() {
			return []string{"PowerSubsystem"}
		}
		return nil
	})
	r, _ := NewRedfish(srv.URL, Credentials{Username: "admin", Password: "secret"}, false, 5*time.Second)
	if w, err := r.Watts(context.Background()); err != nil || w != 937.4 {
		t.Fatalf("first: %v, %v", w, err)
	}
	legacy.Store(true) // PowerSubsystem is gone: only Power is left
	if w, err := r.Watts(context.Background()); err != nil || w != 344 {
		t.Fatalf("after the change: %v, %v; want 344 from Power", w, err)
	}
}
