package agent

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const procStatSample = `cpu  4705 356 584 3699176 23060 0 277 10 20 30
cpu0 1393 280 234 2009538 20476 0 59 0 0 0
intr 1234 5 6
ctxt 1990473
`

func TestParseProcStat(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     CPUTimes
		err      bool
	}{
		// busy = user 4705 + nice 356 + system 584 + irq 0 + softirq 277 +
		// steal 10 = 5932; total = 5932 + idle 3699176 + iowait 23060 =
		// 3728168 (guest 20 and guest_nice 30 are inside user and nice).
		// One per-CPU line: 1 CPU.
		{"full", procStatSample, CPUTimes{Busy: 5932, Total: 3728168, CPUs: 1}, false},
		// Linux 2.6.0: user nice system idle iowait only: busy 6, total 6+4+5.
		{"old kernel", "cpu 1 2 3 4 5\n", CPUTimes{Busy: 6, Total: 15}, false},
		{"too few fields", "cpu 1 2 3\n", CPUTimes{}, true},
		{"not a number", "cpu 1 2 x 4 5\n", CPUTimes{}, true},
		{"no cpu line", "cpu0 1 2 3 4 5\n", CPUTimes{}, true},
		{"overflow", "cpu 18446744073709551615 1 0 0 0\n", CPUTimes{}, true},
	} {
		got, err := ParseProcStat([]byte(c.in))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v, error %v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestUtilization(t *testing.T) {
	for _, c := range []struct {
		prev, cur CPUTimes
		want      float64
		ok        bool
	}{
		{CPUTimes{Busy: 100, Total: 1000}, CPUTimes{Busy: 130, Total: 1100}, 0.3, true}, // 30 busy of 100 ticks
		{CPUTimes{Busy: 100, Total: 1000}, CPUTimes{Busy: 100, Total: 1000}, 0, false},  // no tick
		{CPUTimes{Busy: 100, Total: 1000}, CPUTimes{Busy: 50, Total: 500}, 0, false},    // counters reset
	} {
		got, ok := Utilization(c.prev, c.cur)
		if ok != c.ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Utilization(%v, %v) = %v, %v; want %v, %v", c.prev, c.cur, got, ok, c.want, c.ok)
		}
	}
}

func TestProcSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu 100 0 0 900 0 0 0 0\n")
	p := newProcSource(path)
	if _, err := p.read(); !errors.Is(err, ErrPriming) {
		t.Fatalf("first: %v, want ErrPriming", err)
	}
	write("cpu 175 0 0 925 0 0 0 0\n") // 75 busy of 100 ticks
	if r, err := p.read(); err != nil || r.Util != 0.75 || r.HasDemand {
		t.Fatalf("second: %+v, %v; want 0.75, no demand (no task has a schedstat)", r, err)
	}
}

func TestParseSchedstat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		err  bool
	}{
		{"4004530 30836401 2\n", 30836401, false},
		{"1 2", 2, false},
		{"1\n", 0, true},
		{"1 -2 3", 0, true},
		{"", 0, true},
	} {
		got, err := ParseSchedstat([]byte(c.in))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("ParseSchedstat(%q) = %d, %v; want %d, error %v", c.in, got, err, c.want, c.err)
		}
	}
}

func FuzzParseSchedstat(f *testing.F) {
	for _, s := range []string{"4004530 30836401 2\n", "1 2", "", "x y z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseSchedstat(data) // never panics
	})
}

func TestCPUDemand(t *testing.T) {
	// 4 CPUs, 10 s: 4000 ticks in the aggregate (4 CPUs × 10 s × 100).
	prev, cur := CPUTimes{Busy: 0, Total: 0, CPUs: 4}, CPUTimes{Busy: 4000, Total: 4000, CPUs: 4}
	const s = uint64(1e9)
	for _, c := range []struct {
		name        string
		util        float64
		prevW, curW map[int]uint64
		want        float64
		ok          bool
	}{
		// Eight always-runnable tasks on 4 CPUs: each runs half the time
		// and waits half, 8 × 5 s = 40 s waited over 4 CPUs × 10 s: 1 + 1 = 2.
		{"twice the CPUs asked for", 1, map[int]uint64{1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0},
			map[int]uint64{1: 5 * s, 2: 5 * s, 3: 5 * s, 4: 5 * s, 5: 5 * s, 6: 5 * s, 7: 5 * s, 8: 5 * s}, 2, true},
		// Task 9 started since: its 4 s count whole; task 2 ended: its
		// wait is gone with it. 0.5 + (2 + 4) / 40 = 0.65.
		{"a task starts, one ends", 0.5, map[int]uint64{1: 1 * s, 2: 3 * s}, map[int]uint64{1: 3 * s, 9: 4 * s}, 0.65, true},
		// Thread id 1 reused (its counter went back): its 1 s is new.
		// 0.25 + 1 / 40 = 0.275.
		{"a reused thread id", 0.25, map[int]uint64{1: 7 * s}, map[int]uint64{1: 1 * s}, 0.275, true},
		{"no previous waits", 0.5, nil, map[int]uint64{1: s}, 0, false},
	} {
		got, ok := CPUDemand(c.util, prev, cur, c.prevW, c.curW)
		if ok != c.ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: %v, %v; want %v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// TestProcSourceDemand reads a proc tree as the kernel lays it out: the
// aggregate and per-CPU lines of stat, and each task's schedstat under
// PID/task/TID.
func TestProcSourceDemand(t *testing.T) {
	root := t.TempDir()
	write := func(rel, s string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu 0 0 0 0 0 0 0 0\ncpu0 0 0 0 0\ncpu1 0 0 0 0\n")
	write("1/task/1/schedstat", "0 0 0\n")
	write("1/task/2/schedstat", "0 0 0\n")
	write("7/task/7/schedstat", "0 0 0\n")
	write("self/task/1/schedstat", "0 99999999999 0\n") // not a PID: skipped
	p := newProcSource(filepath.Join(root, "stat"))
	if _, err := p.read(); !errors.Is(err, ErrPriming) {
		t.Fatalf("first: %v, want ErrPriming", err)
	}
	// 2 CPUs fully busy for 10 s (2000 ticks), and the three tasks waited
	// 6 + 5 + 4 = 15 s of the 20 CPU-seconds: demand 1 + 15 / 20 = 1.75.
	write("stat", "cpu 2000 0 0 0 0 0 0 0\ncpu0 1000 0 0 0\ncpu1 1000 0 0 0\n")
	write("1/task/1/schedstat", "5000000000 6000000000 10\n")
	write("1/task/2/schedstat", "5000000000 5000000000 10\n")
	write("7/task/7/schedstat", "10000000000 4000000000 10\n")
	r, err := p.read()
	if err != nil || r.Util != 1 || !r.HasDemand || math.Abs(r.Demand-1.75) > 1e-9 {
		t.Fatalf("second: %+v, %v; want utilisation 1, demand 1.75", r, err)
	}
}

func FuzzParseProcStat(f *testing.F) {
	for _, s := range []string{procStatSample, "cpu 1 2 3 4 5\n", "cpu 1 2 3\n", "cpu 1 2 x 4 5\n", "", "cpu"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseProcStat(data)
		if err != nil {
			return
		}
		if c.Busy > c.Total {
			t.Fatalf("busy %d > total %d", c.Busy, c.Total)
		}
	})
}
