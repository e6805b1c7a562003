package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// CPUTimes is the aggregate "cpu" line of /proc/stat, in clock ticks.
type CPUTimes struct {
	Busy  uint64 // user+nice+system+irq+softirq+steal
	Total uint64 // Busy + idle + iowait
}

// ParseProcStat reads the aggregate "cpu" line of /proc/stat. guest and
// guest_nice are left out: the kernel already counts them in user and nice.
func ParseProcStat(data []byte) (CPUTimes, error) {
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// kernels before 2.6.11 stop after iowait or earlier.
		if len(f) < 5 {
			return CPUTimes{}, fmt.Errorf("/proc/stat: cpu line has %d fields, want at least 4 counters", len(f)-1)
		}
		var v [8]uint64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %q is not a counter", i+1, truncate(string(f[i+1])))
			}
			v[i] = n
		}
		idle := v[3] + v[4]
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		if busy < v[0] || idle < v[3] || busy+idle < busy {
			return CPUTimes{}, errors.New("/proc/stat: cpu counters overflow")
		}
		return CPUTimes{Busy: busy, Total: busy + idle}, nil
	}
	return CPUTimes{}, errors.New(`/proc/stat: no aggregate "cpu" line`)
}

// Utilization is the busy share between two readings; ok is false when no
// tick passed (or the counters went back: a reset).
func Utilization(prev, cur CPUTimes) (u float64, ok bool) {
	if cur.Total <= prev.Total || cur.Busy < prev.Busy {
		return 0, false
	}
	u = float64(cur.Busy-prev.Busy) / float64(cur.Total-prev.Total)
	return min(1, max(0, u)), true
}

// procSource measures CPU utilisation from /proc/stat between two calls.
type procSource struct {
	path string
	mu   sync.Mutex
	prev *CPUTimes
}

func newProcSource(path string) *procSource { return &procSource{path: path} }

// utilization returns the busy share since the previous call;
// ErrPriming on the first.
func (p *procSource) utilization() (float64, error) {
	data, err := os.ReadFile(p.path)
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	cur, err := ParseProcStat(data)
	if err != nil {
		return 0, fmt.Errorf("proc: %s: %w", p.path, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.prev
	p.prev = &cur
	if prev == nil {
		return 0, ErrPriming
	}
	u, ok := Utilization(*prev, cur)
	if !ok {
		return 0, fmt.Errorf("proc: %s: no CPU time passed since the last reading", p.path)
	}
	return u, nil
}

// truncate quotes at most 100 bytes of a bad value in an error.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
