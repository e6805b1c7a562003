package hostview

import (
	"bytes"
	"testing"
	"time"
)

// TestPowerStats: the view sums the measured (utilisation, watts) pairs
// of a host's samples for calibration, skips late and half samples, and
// keeps the sums across a save and load.
func TestPowerStats(t *testing.T) {
	v := New(Options{Now: newClock(t0).now})
	power := func(at time.Time, w, u float64, hasW, hasU bool) Outcome {
		return v.Apply(0, &Event{Kind: KindPower, Type: "ecrae.metrics", Timestamp: at,
			Power: PowerSample{Host: "h1", At: at, Watts: w, HasWatts: hasW, Utilization: u, HasUtil: hasU}})
	}
	if _, ok := v.PowerStats("h1"); ok {
		t.Fatal("stats before any sample")
	}
	// Nova knows the host (a sample alone does not make one).
	v.Apply(0, &Event{Kind: KindMetrics, Type: "metrics.update", Timestamp: t0, Metrics: MetricsSample{Host: "h1"}})
	power(t0.Add(1*time.Second), 100, 0, true, true)  // idle
	power(t0.Add(2*time.Second), 200, 1, true, true)  // full load
	power(t0.Add(3*time.Second), 150, 0, true, false) // no utilisation: not a pair
	power(t0.Add(4*time.Second), 0, 0.5, false, true) // no watts (model): not a pair
	v.Apply(0, &Event{Kind: KindPower, Type: "ecrae.metrics", Timestamp: t0.Add(5 * time.Second),
		Power: PowerSample{Host: "h1", At: t0.Add(5 * time.Second), Watts: 40, HasWatts: true,
			Utilization: 0.5, HasUtil: true, Source: SourceRAPL}}) // CPU and DRAM only: not wall power
	if got := power(t0, 999, 0.5, true, true); got != Stale { // late
		t.Fatalf("late sample: %v", got)
	}
	s, ok := v.PowerStats("h1")
	// Two pairs: Σp at idle (point 0) 100, at full load (point 10) 200.
	if !ok || s.N != 2 || s.RHS[0] != 100 || s.RHS[10] != 200 || s.MinU != 0 || s.MaxU != 1 {
		t.Fatalf("stats %+v, %v", s, ok)
	}
	if hosts := v.PowerStatsHosts(); len(hosts) != 1 || hosts[0] != "h1" {
		t.Fatalf("hosts %v", hosts)
	}
	var buf bytes.Buffer
	if err := v.Save(&buf); err != nil {
		t.Fatal(err)
	}
	v2 := New(Options{})
	if err := v2.Load(&buf); err != nil {
		t.Fatal(err)
	}
	if s2, ok := v2.PowerStats("h1"); !ok || s2 != s {
		t.Fatalf("after load: %+v, %v; want %+v", s2, ok, s)
	}
}
