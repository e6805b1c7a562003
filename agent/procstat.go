package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// CPUTimes is the aggregate "cpu" line of /proc/stat, in clock ticks, and
// how many CPUs it adds up (the per-CPU lines).
type CPUTimes struct {
	Busy  uint64 // user+nice+system+irq+softirq+steal
	Total uint64 // Busy + idle + iowait
	CPUs  int
}

// userHZ is the unit of /proc/stat's counters, ticks per second: USER_HZ,
// 100 on every Linux architecture (the ABI fixes it, whatever the kernel's
// own HZ).
const userHZ = 100

// ParseProcStat reads the aggregate "cpu" line of /proc/stat and counts the
// per-CPU lines. guest and guest_nice are left out: the kernel already
// counts them in user and nice.
func ParseProcStat(data []byte) (CPUTimes, error) {
	var agg *CPUTimes
	cpus := 0
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) == 0 || !bytes.HasPrefix(f[0], []byte("cpu")) {
			continue
		}
		if string(f[0]) != "cpu" {
			cpus++ // cpu0, cpu1, ...
			continue
		}
		if agg != nil {
			continue // the first aggregate line counts
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
		agg = &CPUTimes{Busy: busy, Total: busy + idle}
	}
	if agg == nil {
		return CPUTimes{}, errors.New(`/proc/stat: no aggregate "cpu" line`)
	}
	agg.CPUs = cpus
	return *agg, nil
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

// ParseSchedstat reads a task's /proc/PID/task/TID/schedstat: nanoseconds
// on a CPU, nanoseconds waiting on a run queue, time slices. It returns the
// wait.
func ParseSchedstat(data []byte) (waitNs uint64, err error) {
	f := bytes.Fields(data)
	if len(f) < 2 {
		return 0, fmt.Errorf("schedstat: %d fields, want 3", len(f))
	}
	w, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("schedstat: wait %q is not a counter", truncate(string(f[1])))
	}
	return w, nil
}

// runQueueWaits reads the run-queue wait of every task under the proc
// root (ROOT/PID/task/TID/schedstat), by thread id. Tasks that end while
// it reads are left out. An error when no task has a schedstat (a kernel
// without CONFIG_SCHED_INFO).
func runQueueWaits(root string) (map[int]uint64, error) {
	procs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	waits := map[int]uint64{}
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		tasks, err := os.ReadDir(filepath.Join(root, p.Name(), "task"))
		if err != nil {
			continue // ended, or not ours to read
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join(root, p.Name(), "task", t.Name(), "schedstat"))
			if err != nil {
				continue
			}
			if w, err := ParseSchedstat(data); err == nil {
				waits[tid] = w
			}
		}
	}
	if len(waits) == 0 {
		return nil, fmt.Errorf("no task under %s has a schedstat: %w", root, fs.ErrNotExist)
	}
	return waits, nil
}

// CPUDemand is the CPU the tasks asked for between two readings, as a share
// of the node's CPUs: the busy share plus the time tasks spent runnable
// but waiting for a CPU (the CPUs the node lacked). It exceeds 1 when the
// node is asked for more than it has, which the busy share, capped at 1,
// cannot say. A task absent from prev started since: all its wait counts.
func CPUDemand(util float64, prev, cur CPUTimes, prevWaits, curWaits map[int]uint64) (float64, bool) {
	if cur.CPUs <= 0 || cur.Total <= prev.Total || prevWaits == nil || curWaits == nil {
		return 0, false
	}
	var waited uint64
	for tid, w := range curWaits {
		if p, ok := prevWaits[tid]; ok && w >= p {
			waited += w - p
		} else if !ok || w < p { // new, or a reused thread id
			waited += w
		}
	}
	// Elapsed per CPU: the aggregate counts every CPU's ticks.
	elapsedNs := float64(cur.Total-prev.Total) / float64(cur.CPUs) / userHZ * 1e9
	return util + float64(waited)/elapsedNs/float64(cur.CPUs), true
}

// procReading is what procSource measured between two calls.
type procReading struct {
	Util      float64
	Demand    float64
	HasDemand bool // the kernel keeps schedstat
}

// procSource measures CPU utilisation from /proc/stat, and demand from the
// tasks' run-queue waits beside it, between two calls.
type procSource struct {
	path string
	mu   sync.Mutex
	prev *CPUTimes
	// prevWaits are the run-queue waits at the previous call (nil: none).
	prevWaits map[int]uint64
}

func newProcSource(path string) *procSource { return &procSource{path: path} }

// read returns what was measured since the previous call; ErrPriming on
// the first.
func (p *procSource) read() (procReading, error) {
	data, err := os.ReadFile(p.path)
	if err != nil {
		return procReading{}, fmt.Errorf("proc: %w", err)
	}
	cur, err := ParseProcStat(data)
	if err != nil {
		return procReading{}, fmt.Errorf("proc: %s: %w", p.path, err)
	}
	waits, _ := runQueueWaits(filepath.Dir(p.path)) // no schedstat: utilisation only
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, prevWaits := p.prev, p.prevWaits
	p.prev, p.prevWaits = &cur, waits
	if prev == nil {
		return procReading{}, ErrPriming
	}
	u, ok := Utilization(*prev, cur)
	if !ok {
		return procReading{}, fmt.Errorf("proc: %s: no CPU time passed since the last reading", p.path)
	}
	r := procReading{Util: u}
	r.Demand, r.HasDemand = CPUDemand(u, *prev, cur, prevWaits, waits)
	return r, nil
}

// truncate quotes at most 100 bytes of a bad value in an error.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
