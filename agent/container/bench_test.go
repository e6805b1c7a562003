package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkMigrate measures one migration per mode and working-set size
// (the seed's §6.1 comparison): total time, downtime (the counter's
// longest pause, seen from outside by polling its file on both nodes),
// bytes sent, and for post-copy the time until the last page arrived.
// LXC's modes, then podman's (stop-and-copy only: see Podman.Limits),
// interleaved per size so that a loaded machine weighs on all of them.
// Sizes: ECRAE_CRIU_BENCH_MB (default "50,200,500"). Run with -benchtime 1x
// (make bench-criu).
func BenchmarkMigrate(b *testing.B) {
	c, f := needCRIU(b)
	sizes := []int{50, 200, 500}
	if s := os.Getenv("ECRAE_CRIU_BENCH_MB"); s != "" {
		sizes = nil
		for _, p := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n <= 0 {
				b.Fatalf("ECRAE_CRIU_BENCH_MB %q: want sizes in MB, comma-separated", s)
			}
			sizes = append(sizes, n)
		}
	}
	type run struct{ runtime, mode string }
	runs := []run{{"lxc", ModeStopcopy}}
	if f.Lazy {
		runs = append(runs, run{"lxc", ModePostcopy})
	}
	runs = append(runs, run{"podman", ModeStopcopy})
	for _, ws := range sizes {
		for _, r := range runs {
			name := fmt.Sprintf("%s/%dMB", r.mode, ws)
			if r.runtime != "lxc" {
				name = r.runtime + "-" + name
			}
			b.Run(name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					benchOne(b, c, f, r.runtime, r.mode, ws)
				}
			})
		}
	}
}

// benchReportEvery is the agents' report interval in the benchmark: the
// agent's default. The tests' 100 ms would have podman's reporter (ps,
// inspect, stats) contend for podman's locks with the checkpoint.
const benchReportEvery = 10 * time.Second

func benchOne(b *testing.B, c CRIU, f Features, runtime, mode string, ws int) {
	b.StopTimer()
	nc := startNATS(b)
	var files func() []string
	if runtime == "podman" {
		needPodman(b)
		tarball := rootfsTar(b)
		a := startPodmanNodeEvery(b, nc.ConnectedUrl(), "node-a", c, f, tarball, benchReportEvery)
		d := startPodmanNodeEvery(b, nc.ConnectedUrl(), "node-b", c, f, tarball, benchReportEvery)
		newPodmanCounter(b, a, "ctr", ws, "")
		// The container's layer on either node (vfs: a directory per
		// layer; only the container's has /tmp/counter). A glob, not
		// podman: the observer must not contend for podman's locks.
		files = func() []string {
			pa, _ := filepath.Glob(filepath.Join(a.pmRoot, "vfs", "dir", "*", "tmp", "counter"))
			pd, _ := filepath.Glob(filepath.Join(d.pmRoot, "vfs", "dir", "*", "tmp", "counter"))
			return append(pa, pd...)
		}
	} else {
		a := startNodeEvery(b, nc.ConnectedUrl(), "node-a", c, f, NodeArch(), benchReportEvery)
		d := startNodeEvery(b, nc.ConnectedUrl(), "node-b", c, f, NodeArch(), benchReportEvery)
		newCounterContainer(b, a.lxcpath, "ctr", ws, "")
		fixed := []string{
			filepath.Join(a.lxcpath, "ctr", "rootfs", "tmp", "counter"),
			filepath.Join(d.lxcpath, "ctr", "rootfs", "tmp", "counter"),
		}
		files = func() []string { return fixed }
	}
	// The counter where it runs: the source's file until the move (the
	// destination has none), then the destination's (the source's is gone
	// with the container).
	counter := func() (int, error) {
		best, err := 0, error(os.ErrNotExist)
		for _, p := range files() {
			if n, e := readInt(p); e == nil && n > best {
				best, err = n, nil
			}
		}
		return best, err
	}
	// The observer: the longest time between two increases of the
	// counter, on whichever node has it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var longest time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		last, lastAt := 0, time.Now()
		for {
			select {
			case <-stop:
				return
			default:
			}
			now := time.Now()
			for _, p := range files() {
				if n, err := readInt(p); err == nil && n > last {
					if gap := now.Sub(lastAt); last > 0 && gap > longest {
						longest = gap
					}
					last, lastAt = n, now
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// Counting before the move.
	waitFor(b, time.Minute, "counter running", func() bool { n, err := counter(); return err == nil && n > 20 })
	b.StartTimer()
	rep := ask(b, nc, "node-a", MigrateRequest{Container: "ctr", To: "node-b", Mode: mode})
	b.StopTimer()
	if rep.Error != "" {
		b.Fatalf("migration: %s", rep.Error)
	}
	// Counting after: the pause is over once it counts on the destination
	// again (and for post-copy, the pages have all arrived when the reply
	// came).
	var at int
	waitFor(b, time.Minute, "counter on the destination", func() bool { n, err := counter(); at = n; return err == nil && n > 0 })
	waitFor(b, time.Minute, "counter going on", func() bool { n, err := counter(); return err == nil && n > at+20 })
	close(stop)
	wg.Wait()
	b.ReportMetric(rep.TotalMS, "total-ms")
	b.ReportMetric(float64(longest.Microseconds())/1000, "downtime-ms")
	b.ReportMetric(float64(rep.BytesSent)/1e6, "MB-sent")
	if mode == ModePostcopy {
		b.ReportMetric(rep.PagesDoneMS, "pages-done-ms")
	}
}
