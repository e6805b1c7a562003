package optimizer

import (
	"strings"
	"testing"
)

func TestWatts(t *testing.T) {
	// SPECpower HP ProLiant ML110 G4, as in CloudSim's examples.
	g4 := PowerCurve{86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117}
	tests := []struct {
		name  string
		curve PowerCurve
		u     float64
		want  float64
	}{
		{"idle point", line(50, 150), 0, 50},               // curve[0]
		{"10% point", line(50, 150), 0.1, 60},              // curve[1]
		{"full point", line(50, 150), 1, 150},              // curve[10]
		{"between idle and 10%", line(50, 150), 0.05, 55},  // idle 50, 10% 60: u=0.05 → 55 W
		{"between 90% and 100%", line(50, 150), 0.95, 145}, // 140 + (150−140)×0.5
		{"g4 at 20%", g4, 0.2, 92.6},                       // curve[2]
		{"g4 between 20% and 30%", g4, 0.25, 94.3},         // 92.6 + (96−92.6)×0.5
		{"g4 at 73%", g4, 0.73, 109.2},                     // 70% 108, 80% 112: 108 + 4×0.3
		{"clamped below", line(50, 150), -0.5, 50},         // u → 0
		{"clamped above", line(50, 150), 2, 150},           // u → 1
		{"NaN utilisation counts as 0", line(50, 150), nan, 50},
		{"NaN point counts as 0 W", PowerCurve{nan, 60}, 0.05, 30},     // 0 + (60−0)×0.5
		{"negative point counts as 0 W", PowerCurve{-5, 60}, 0, 0},     // −5 → 0
		{"infinite point counts as 0 W", PowerCurve{inf, 60}, 0.1, 60}, // curve[1]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := diffApprox(tc.want, tc.curve.Watts(tc.u)); d != "" {
				t.Errorf("Watts(%v) (-want +got):\n%s", tc.u, d)
			}
		})
	}
}

func TestNormalizeISA(t *testing.T) {
	for in, want := range map[string]string{
		"x86_64": "x86_64", "amd64": "x86_64", "X64": "x86_64", " x86-64 ": "x86_64",
		"arm64": "aarch64", "AArch64": "aarch64",
		"ppc64el": "ppc64le", "ppc64le": "ppc64le",
		"i386": "i686", "i586": "i686", "x86": "i686",
		"s390x": "s390x", "MIPS": "mips", "": "",
	} {
		if got := NormalizeISA(in); got != want {
			t.Errorf("NormalizeISA(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEffectiveISA(t *testing.T) {
	tests := []struct {
		h    Host
		want string
	}{
		{Host{ISA: "amd64", Model: altra}, "x86_64"}, // the host's own ISA wins
		{Host{Model: altra}, "aarch64"},              // else the model's
		{Host{Model: &Model{}}, ""},                  // unknown
		{Host{}, ""},                                 // no model at all
	}
	for _, tc := range tests {
		if got := tc.h.EffectiveISA(); got != tc.want {
			t.Errorf("EffectiveISA(%+v) = %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestCurrentUtilization(t *testing.T) {
	tests := []struct {
		name         string
		h            Host
		want         float64
		wantMeasured bool
	}{
		{"measured", measured(host("a", xeon, 8), 0.3), 0.3, true},
		{"measured clamped", measured(host("a", xeon, 8), 1.7), 1, true},
		{"measured NaN falls back to the estimate", measured(host("a", xeon, 8), nan), 0.5, false},                                      // 8/16
		{"estimated, load unknown", host("a", xeon, 8), 0.5, false},                                                                     // 8 × 1 / 16
		{"estimated with load", func() Host { h := host("a", xeon, 8); h.UsedCPULoad = 0.5; return h }(), 0.25, false},                  // 8 × 0.5 / 16
		{"estimate capped at 1", host("a", xeon, 40), 1, false},                                                                         // 40/16 → 1
		{"zero cores falls back to vCPUs total", func() Host { h := host("a", &Model{}, 4); h.VCPUsTotal = 8; return h }(), 0.5, false}, // 4/8
		{"zero cores, zero vCPUs: 1 core", Host{VCPUsUsed: 1}, 1, false},                                                                // 1/1
		{"empty", host("a", xeon, 0), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, m := tc.h.CurrentUtilization()
			if d := diffApprox(tc.want, u); d != "" || m != tc.wantMeasured {
				t.Errorf("CurrentUtilization() = %v, %v; want %v, %v", u, m, tc.want, tc.wantMeasured)
			}
		})
	}
}

func TestMarginalWatts(t *testing.T) {
	half := Profile{CPULoad: 0.5}
	tests := []struct {
		name string
		h    Host
		req  Request
		prof Profile
		want float64
	}{
		// xeon 50+100u W, 16 threads; 4 vCPUs at load 1: Δu = 4/16 = 0.25.
		{"busy, estimated", host("a", xeon, 8), small, Profile{}, 25},               // u=0.5: W(0.75)−W(0.5) = 125−100
		{"busy, measured", measured(host("a", xeon, 8), 0.3), small, Profile{}, 25}, // W(0.55)−W(0.3) = 105−80
		{"empty pays idle", host("a", xeon, 0), small, Profile{}, 75},               // W(0.25)−W(0) + idle = 25 + 50
		{"empty but one instance", func() Host { h := host("a", xeon, 0); h.NumInstances = 1; return h }(), small, Profile{}, 25},
		{"load 0.5", host("a", xeon, 8), small, half, 12.5},                   // Δu = 4×0.5/16 = 0.125: 112.5−100
		{"clamped at full load", host("a", xeon, 14), small, Profile{}, 12.5}, // u=0.875: W(1)−W(0.875) = 150−137.5
		{"altra empty", host("b", altra, 0), small, Profile{}, 32.5},          // 20+50u: W(0.25)−W(0) + 20 = 12.5 + 20
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := WeighHosts(tc.req, tc.prof, []Host{tc.h}, nil)[0].MarginalWatts
			if d := diffApprox(tc.want, got); d != "" {
				t.Errorf("MarginalWatts (-want +got):\n%s", d)
			}
		})
	}
}

func TestAppendFixed(t *testing.T) {
	tests := []struct {
		x    float64
		prec int
		want string
	}{
		{54.28, 1, "54.3"}, {0.7, 2, "0.70"}, {-0.04, 1, "0.0"}, {-1.25, 1, "-1.3"},
		{1234567, 0, "1234567"}, {0.005, 3, "0.005"}, {1e20, 1, "100000000000000000000.0"},
		{nan, 1, "NaN"}, {inf, 1, "+Inf"},
	}
	for _, tc := range tests {
		if got := string(appendFixed(nil, tc.x, tc.prec)); got != tc.want {
			t.Errorf("appendFixed(%v, %d) = %q, want %q", tc.x, tc.prec, got, tc.want)
		}
	}
	if got := string(appendRatio(nil, 16)) + " " + string(appendRatio(nil, 1.25)); !strings.EqualFold(got, "16.0 1.25") {
		t.Errorf("appendRatio = %q", got)
	}
}
