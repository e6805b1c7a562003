package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/agent"
	"github.com/ecrae/ecrae/events"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/nats-io/nats.go"
)

// ibm is the default KB's ibm-x3550-m3-x5670 curve.
var ibm = []float64{66, 107, 120, 131, 143, 156, 173, 191, 211, 229, 247}

// TestKBCalibrate: a node agent's samples reach the real service over its
// embedded NATS; `ecrae kb calibrate` shows the fit next to the model,
// changes nothing, and stores it with --write.
func TestKBCalibrate(t *testing.T) {
	noCloud(t)
	c, _ := startServe(t, t.TempDir())
	srv := "--server=" + c.grpcAddr
	if out, err := cli(t, "kb", "host", "set", "node-1", "--arch", "ibm-x3550-m3-x5670", srv); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	nc, err := nats.Connect("nats://" + c.natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := &agent.NATSPublisher{NC: nc}
	// Nova announces node-1's compute service first: a sample alone does
	// not make a host.
	svc := fmt.Sprintf(`{"event_type": "service.create", "message_id": "m-node-1", "priority": "INFO", "publisher_id": "nova-compute:node-1",
		"timestamp": %q, "payload": {"nova_object.name": "ServiceStatusPayload", "nova_object.namespace": "nova", "nova_object.version": "1.1",
		"nova_object.data": {"binary": "nova-compute", "host": "node-1", "disabled": false, "forced_down": false, "topic": "compute", "uuid": "9b0c8f1e-0000-4000-8000-000000000001", "version": 64}}}`,
		time.Now().Add(-2*time.Minute).UTC().Format("2006-01-02 15:04:05.000000"))
	if err := nc.Publish("nova.versioned_notifications.info.service.create", []byte(svc)); err != nil {
		t.Fatal(err)
	}
	// The node draws 1.5× its model: 3 samples at each 10 % step, as the
	// agent publishes them.
	at := time.Now().Add(-time.Minute)
	for k := 0; k <= 10; k++ {
		for range 3 {
			at = at.Add(100 * time.Millisecond)
			w, u := 1.5*ibm[k], float64(k)/10
			b, _ := json.Marshal(events.Sample{Host: "node-1", Timestamp: at.UTC().Format(time.RFC3339Nano),
				Watts: &w, CPUUtilization: &u, Source: "ipmi", WattsSource: events.WattsMeasured})
			if err := pub.Publish(context.Background(), agent.Subject("node-1"), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	var resp ecraev1.CalibrateHostsResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := cli(t, "kb", "calibrate", "node-1", "--json", srv)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if err := unmarshalCLIJSON([]byte(out), &resp); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if resp.GetHosts()[0].GetSamples() == 33 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the samples never all arrived: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for k, w := range resp.GetHosts()[0].GetFittedWatts() {
		if math.Abs(w-1.5*ibm[k]) > 1e-6 {
			t.Errorf("point %d: %v W, want 1.5 × %v", k, w, ibm[k])
		}
	}
	out, err := cli(t, "kb", "calibrate", "--all", srv)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"node-1: model ibm-x3550-m3-x5670, 33 samples at 0–100 % utilisation, measured 1.50× the model",
		"model W  66.0", "fit W    99.0", "nothing written"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if out, _ := cli(t, "kb", "export", srv); !strings.Contains(out, "architecture: ibm-x3550-m3-x5670") || strings.Contains(out, "calibrated-") {
		t.Fatalf("changed without --write:\n%s", out)
	}
	out, err = cli(t, "kb", "calibrate", "node-1", "--write", srv)
	if err != nil || !strings.Contains(out, "written: architecture calibrated-node-1, host node-1 now uses it") {
		t.Fatalf("%v:\n%s", err, out)
	}
	if out, _ := cli(t, "kb", "export", srv); !strings.Contains(out, "name: calibrated-node-1") || !strings.Contains(out, "power_watts: [99, 160.5, 180, 196.5") {
		t.Errorf("not stored:\n%s", out)
	}
}

func TestKBCalibrateUsage(t *testing.T) {
	for _, args := range [][]string{{"kb", "calibrate"}, {"kb", "calibrate", "h", "--all"}, {"kb", "calibrate", "--all", "--min-samples", "0"}} {
		if _, err := cli(t, args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestKBCalibrateGolden fixes the text and --json shapes of a response.
func TestKBCalibrateGolden(t *testing.T) {
	resp := &ecraev1.CalibrateHostsResponse{Hosts: []*ecraev1.HostCalibration{{
		Host: "node-1", Architecture: "ibm-x3550-m3-x5670", Samples: 33, MinUtilization: 0, MaxUtilization: 1,
		ModelWatts: ibm, FittedWatts: []float64{99, 160.5, 180, 196.5, 214.5, 234, 259.5, 286.5, 316.5, 343.5, 370.5},
		Support: []float64{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, Scale: 1.5, RmsModelWatts: 87.25, RmsFittedWatts: 0,
		WrittenArchitecture: "calibrated-node-1",
	}, {Host: "node-2", Skipped: "no measured whole-node samples (a node agent publishing watts from ipmi or redfish, and utilisation, on ecrae.metrics.node-2; RAPL covers CPU packages and DRAM only)"}}, Written: true}
	var text, js bytes.Buffer
	if err := printCalibration(&text, resp); err != nil {
		t.Fatal(err)
	}
	if err := printJSON(&js, resp); err != nil {
		t.Fatal(err)
	}
	calGolden(t, "kb_calibrate.txt", text.Bytes())
	// protojson varies its spacing on purpose: compare the JSON re-indented.
	var canon, compact bytes.Buffer
	if err := json.Compact(&compact, js.Bytes()); err != nil {
		t.Fatal(err)
	}
	canon.Reset()
	if err := json.Indent(&canon, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	calGolden(t, "kb_calibrate.json", append(canon.Bytes(), '\n'))
}

func calGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/ecrae -run TestKBCalibrateGolden -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./cmd/ecrae -run TestKBCalibrateGolden -update rewrites it):\n%s", path, firstDiff(string(want), string(got)))
	}
}
