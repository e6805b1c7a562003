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
		{"full", procStatSample, CPUTimes{Busy: 5932, Total: 3728168}, false},
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
		{CPUTimes{100, 1000}, CPUTimes{130, 1100}, 0.3, true}, // 30 busy of 100 ticks
		{CPUTimes{100, 1000}, CPUTimes{100, 1000}, 0, false},  // no tick
		{CPUTimes{100, 1000}, CPUTimes{50, 500}, 0, false},    // counters reset
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
	if _, err := p.utilization(); !errors.Is(err, ErrPriming) {
		t.Fatalf("first: %v, want ErrPriming", err)
	}
	write("cpu 175 0 0 925 0 0 0 0\n") // 75 busy of 100 ticks
	if u, err := p.utilization(); err != nil || u != 0.75 {
		t.Fatalf("second: %v, %v; want 0.75", u, err)
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
