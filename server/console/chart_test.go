package console

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run %s -update to accept):\n%s", file, t.Name(), got)
	}
}

func TestPowerChartGolden(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var samples []Sample
	for i, w := range []float64{900, 1100, 1300} {
		samples = append(samples, Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), ByArch: map[string]Watts{
			"old": {Model: 1000, Measured: w, ModelOfMeasured: 950, Hosts: 4, MeasuredHosts: 2},
			"arm": {Model: 200, Hosts: 2}, // no readings: no measured line
		}})
	}
	got := string(PowerChart(samples))
	// The y axis: the highest point, 1300 W, rounds up to 2000 W (2 × 10³).
	if !strings.Contains(got, ">2 kW<") || strings.Contains(got, `data-series="arm measured"`) {
		t.Errorf("axis or series wrong:\n%s", got)
	}
	golden(t, "chart.svg", got)
	if empty := string(PowerChart(nil)); !strings.Contains(empty, "no samples yet") {
		t.Errorf("empty chart: %s", empty)
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 10}, {7, 10}, {11, 20}, {20, 20}, {21, 50}, {268, 500}, {560, 1000}, {1300, 2000}, {5001, 10000},
	} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	hosts := []*ecraev1.LiveHost{
		{Host: "a", Isa: "x86_64", Architecture: "old", ModelWatts: 100, Watts: 120, WattsMeasured: true},
		{Host: "b", Isa: "x86_64", Architecture: "old", ModelWatts: 150, Watts: 150},
		{Host: "c", Isa: "x86_64", Architecture: "", ModelWatts: 0}, // unsized: no model,
	}
	s := Summarise(time.Unix(0, 0), hosts)
	// old: model 100 + 150 = 250; measured a only: 120 against its model 100.
	if w := s.ByArch["old"]; w != (Watts{Model: 250, Measured: 120, ModelOfMeasured: 100, Hosts: 2, MeasuredHosts: 1}) {
		t.Errorf("old: %+v", w)
	}
	if w := s.ByArch["unknown"]; w.Hosts != 1 {
		t.Errorf("unknown: %+v", w)
	}
}

// TestFleetRingBounded: the ring keeps the newest size samples, oldest first.
func TestFleetRingBounded(t *testing.T) {
	f := NewFleet(3, nil)
	for i := range 5 {
		f.Add(Sample{At: time.Unix(int64(i), 0)})
	}
	got := f.Samples()
	if len(got) != 3 || got[0].At.Unix() != 2 || got[2].At.Unix() != 4 {
		t.Errorf("samples %v", got)
	}
}

func FuzzWhatIfForm(f *testing.F) {
	f.Add("web", "2", "4096", "10", "1", "old")
	f.Add("", "x", "", "", "", "")
	f.Add("", "99999999999999999999", "-1", "", "0", "")
	f.Fuzz(func(t *testing.T, tag, vcpus, ram, disk, count, arch string) {
		req, err := whatifForm{Tag: tag, VCPUs: vcpus, RAMMB: ram, DiskGB: disk, Count: count, Arch: arch}.request()
		if err != nil {
			st, _ := status.FromError(err)
			// The field named first; the value quoted at most 100 bytes
			// (escaped, up to 4 characters a byte).
			field, _, _ := strings.Cut(st.Message(), ":")
			if st.Code() != codes.InvalidArgument || !strings.Contains("vcpus ram_mb disk_gb count", field) || len(st.Message()) > 500 {
				t.Fatalf("error %v", err)
			}
			return
		}
		in := req.GetInstances()[0]
		if in.GetFlavor().GetVcpus() < 0 || in.GetNumInstances() < 0 || in.GetNumInstances() > 1000 {
			t.Fatalf("request %v", req)
		}
	})
}

func TestRealised(t *testing.T) {
	f := NewFleet(10, nil)
	t0 := time.Unix(1000, 0)
	for i, w := range []Watts{
		{Model: 500, Measured: 300, ModelOfMeasured: 250}, // 300 + 500 − 250 = 550 W
		{Model: 480, Measured: 290, ModelOfMeasured: 240}, // during the plan
		{Model: 400, Measured: 260, ModelOfMeasured: 200}, // 260 + 400 − 200 = 460 W
	} {
		f.Add(Sample{At: t0.Add(time.Duration(i) * 10 * time.Second), ByArch: map[string]Watts{"old": w}})
	}
	// Started at 1005 (the 1000 sample is before), ended at 1015 (1020 is after): 550 − 460 = 90 W.
	if got, ok := f.Realised(t0.Add(5*time.Second), t0.Add(15*time.Second)); !ok || got != 90 {
		t.Errorf("realised %v %v, want 90", got, ok)
	}
	if _, ok := f.Realised(t0.Add(-time.Second), t0.Add(15*time.Second)); ok {
		t.Error("realised without a sample before the start")
	}
	if _, ok := f.Realised(t0, t0.Add(25*time.Second)); ok {
		t.Error("realised without a sample after the end")
	}
}

// TestFleetGauges: the newest sample's series, and an architecture gone loses its own.
func TestFleetGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := NewFleet(4, reg)
	f.Add(Sample{ByArch: map[string]Watts{"old": {Model: 500, Measured: 120, ModelOfMeasured: 100, Hosts: 3, MeasuredHosts: 1}, "arm": {Model: 80, Hosts: 1}}})
	f.Add(Sample{ByArch: map[string]Watts{"old": {Model: 450, Hosts: 3}}})
	want := `
# HELP ecrae_fleet_hosts Hosts of the live view by architecture, and how many have a fresh power reading (measured=true).
# TYPE ecrae_fleet_hosts gauge
ecrae_fleet_hosts{architecture="old",measured="false"} 3
ecrae_fleet_hosts{architecture="old",measured="true"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ecrae_fleet_hosts"); err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(f.watts.WithLabelValues("old", "model")); n != 450 {
		t.Errorf("model watts %v", n)
	}
}

func TestPowerState(t *testing.T) {
	seen := timestamppb.Now()
	for _, tc := range []struct {
		h    *ecraev1.LiveHost
		want string
	}{
		{&ecraev1.LiveHost{Instances: 2}, "on"},
		{&ecraev1.LiveHost{LastSeen: seen}, "on"},
		{&ecraev1.LiveHost{LastSeen: seen, Stale: true}, "unknown (empty and silent)"},
		{&ecraev1.LiveHost{ServiceState: "down"}, "down or off"},
		{&ecraev1.LiveHost{}, "unknown (empty and silent)"},
	} {
		if got := powerState(tc.h); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.h, got, tc.want)
		}
	}
}
