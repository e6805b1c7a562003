package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mockupServer serves DMTF's recorded mockup (testdata/redfish) the way
// the DMTF mockup server does: /redfish/v1/X is X/index.json. There is no
// Redfish emulator in Debian, hence httptest. hide removes resources (an
// older BMC without PowerSubsystem); it requires basic auth admin:secret.
func mockupServer(t *testing.T, hide ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		p := path.Clean(r.URL.Path)
		b, err := os.ReadFile(filepath.Join("testdata", "redfish", filepath.FromSlash(p), "index.json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		s := string(b)
		for _, h := range hide {
			// Drop the link line's member so that the chassis no longer
			// links the resource, as an older service would.
			s = strings.ReplaceAll(s, `"`+h+`": {`, `"Hidden`+h+`": {`)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(s))
	}))
	t.Cleanup(srv.Close)
	return srv
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
		srv := mockupServer(t, c.hide...)
		r, err := NewRedfish(srv.URL+c.path, creds, false, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Watts(context.Background())
		if err != nil || got != c.want {
			t.Errorf("%s: %v W, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestRedfishErrors(t *testing.T) {
	srv := mockupServer(t, "PowerSubsystem", "Power")
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
