package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeNova is Nova's flavor API as far as a flavor sync uses it, recording
// every request. Nova itself cannot run here; the KB side is the real
// service.
type fakeNova struct {
	mu       sync.Mutex
	flavors  []map[string]any
	requests []string
}

func (n *fakeNova) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	defer n.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	n.requests = append(n.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(body)))
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/flavors/detail":
		json.NewEncoder(w).Encode(map[string]any{"flavors": n.flavors})
	case r.Method == http.MethodPost && r.URL.Path == "/flavors":
		var req struct {
			Flavor map[string]any `json:"flavor"`
		}
		json.Unmarshal(body, &req)
		f := req.Flavor
		f["id"] = fmt.Sprintf("id-%d", len(n.flavors)+1)
		n.flavors = append(n.flavors, f)
		json.NewEncoder(w).Encode(map[string]any{"flavor": f})
	case strings.HasSuffix(r.URL.Path, "/os-extra_specs"):
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/flavors/"), "/os-extra_specs")
		for _, f := range n.flavors {
			if f["id"] != id {
				continue
			}
			specs, _ := f["extra_specs"].(map[string]string)
			if specs == nil { // a created flavor: Nova lists it without extra_specs here, so the sync asks
				specs = map[string]string{}
			}
			if r.Method == http.MethodPost { // adds and overwrites the keys given
				var req struct {
					ExtraSpecs map[string]string `json:"extra_specs"`
				}
				json.Unmarshal(body, &req)
				for k, v := range req.ExtraSpecs {
					specs[k] = v
				}
				f["stored_specs"] = specs
			}
			if st, ok := f["stored_specs"].(map[string]string); ok {
				specs = st
			}
			json.NewEncoder(w).Encode(map[string]any{"extra_specs": specs})
			return
		}
		http.Error(w, `{"itemNotFound": {"code": 404, "message": "no flavor"}}`, http.StatusNotFound)
	default:
		http.Error(w, `{"itemNotFound": {"code": 404, "message": "not here"}}`, http.StatusNotFound)
	}
}

// kb flavors sync shows, then (--yes) makes, Nova's flavors what the KB
// says: creates the missing ones with their ecrae:tag, sets the extra
// specs of matching ones, leaves a differently sized one alone (exit 3).
func TestKBFlavorsSync(t *testing.T) {
	noCloud(t)
	c, _ := startServe(t, t.TempDir())
	srv := "--server=" + c.grpcAddr
	out, err := cli(t, "kb", "show", "--json", srv)
	if err != nil {
		t.Fatal(err)
	}
	var kb struct {
		Flavors []struct {
			Name     string   `json:"name"`
			VCPUs    int      `json:"vcpus"`
			MemoryMB int      `json:"memory_mb"`
			RootGB   int      `json:"root_gb"`
			EphGB    int      `json:"ephemeral_gb"`
			Tags     []string `json:"tags"`
		} `json:"flavors"`
	}
	if err := json.Unmarshal([]byte(out), &kb); err != nil || len(kb.Flavors) < 4 {
		t.Fatalf("kb show --json: %v\n%s", err, out)
	}
	f0, f1, f2 := kb.Flavors[0], kb.Flavors[1], kb.Flavors[2]
	nova := &fakeNova{flavors: []map[string]any{
		// Same sizes, no extra specs: the tag is set.
		{"id": "a", "name": f0.Name, "vcpus": f0.VCPUs, "ram": f0.MemoryMB, "disk": f0.RootGB, "OS-FLV-EXT-DATA:ephemeral": f0.EphGB, "extra_specs": map[string]string{}},
		// Other vCPUs: a conflict, left alone.
		{"id": "b", "name": f1.Name, "vcpus": f1.VCPUs + 1, "ram": f1.MemoryMB, "disk": f1.RootGB, "OS-FLV-EXT-DATA:ephemeral": f1.EphGB, "extra_specs": map[string]string{}},
		// Already tagged: unchanged.
		{"id": "c", "name": f2.Name, "vcpus": f2.VCPUs, "ram": f2.MemoryMB, "disk": f2.RootGB, "OS-FLV-EXT-DATA:ephemeral": f2.EphGB, "extra_specs": map[string]string{"ecrae:tag": f2.Tags[0]}},
	}}
	hs := httptest.NewServer(nova)
	defer hs.Close()
	t.Setenv("OS_AUTH_TYPE", "noauth")
	t.Setenv("OS_COMPUTE_ENDPOINT_OVERRIDE", hs.URL)
	t.Setenv("OS_PLACEMENT_ENDPOINT_OVERRIDE", hs.URL)

	out, err = cli(t, "kb", "flavors", "sync", srv)
	if exitCode(err) != exitPartial || !strings.Contains(err.Error(), "1 flavor in Nova with other sizes") {
		t.Fatalf("dry run: %v (want exit 3 for the conflict)\n%s", err, out)
	}
	for _, want := range []string{
		f0.Name + " ", "set-specs", "ecrae:tag=" + f0.Tags[0],
		f1.Name + " ", "conflict", fmt.Sprintf("vcpus %d in Nova, %d in the KB", f1.VCPUs+1, f1.VCPUs),
		"unchanged", "create", "dry run on environment (OS_AUTH_TYPE=noauth)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	for _, r := range nova.requests {
		if !strings.HasPrefix(r, "GET ") {
			t.Errorf("the dry run changed Nova: %s", r)
		}
	}

	nova.requests = nil
	out, err = cli(t, "kb", "flavors", "sync", "--yes", "--json", srv)
	if exitCode(err) != exitPartial {
		t.Fatalf("--yes: %v\n%s", err, out)
	}
	creates, specs := 0, map[string]bool{}
	for _, r := range nova.requests {
		switch {
		case strings.HasPrefix(r, "POST /flavors "):
			creates++
		case strings.HasPrefix(r, "POST /flavors/"):
			specs[r] = true
		case strings.HasPrefix(r, "GET "):
		default:
			t.Errorf("unexpected request %s", r)
		}
	}
	// Every KB flavor but the three Nova has is created, and each created
	// one and f0 get their extra specs (f1 and f2 none).
	if wantCreates := len(kb.Flavors) - 3; creates != wantCreates || len(specs) != wantCreates+1 {
		t.Errorf("%d creates and %d extra-spec calls, want %d and %d:\n%s", creates, len(specs), wantCreates, wantCreates+1, strings.Join(nova.requests, "\n"))
	}
	if !specs[`POST /flavors/a/os-extra_specs {"extra_specs":{"ecrae:tag":"`+f0.Tags[0]+`"}}`] {
		t.Errorf("no ecrae:tag set on %s:\n%s", f0.Name, strings.Join(nova.requests, "\n"))
	}
	jsonGolden(t, "kb-flavors-sync", out)
	var doc struct {
		Applied bool             `json:"applied"`
		Flavors []map[string]any `json:"flavors"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || !doc.Applied || len(doc.Flavors) != len(kb.Flavors) {
		t.Errorf("--json: %v\n%s", err, out)
	}

	// Again: only the conflict is left.
	nova.requests = nil
	out, err = cli(t, "kb", "flavors", "sync", "--yes", srv)
	if exitCode(err) != exitPartial || strings.Count(out, "unchanged") != len(kb.Flavors)-1 {
		t.Errorf("second sync: %v\n%s", err, out)
	}
}
