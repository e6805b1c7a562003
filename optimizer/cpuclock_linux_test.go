//go:build linux

package optimizer

import (
	"runtime"
	"syscall"
	"time"
)

// threadClock returns a clock that reads the CPU time of the calling
// goroutine's thread, which it locks: a budget on it is the same on a
// loaded machine as on an idle one (the benchmarks' ECRAE_BENCH_CLOCK=cpu),
// and unlock to release the thread.
func threadClock() (now func() time.Time, unlock func()) {
	runtime.LockOSThread()
	return func() time.Time {
		var ru syscall.Rusage
		if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
			return time.Now()
		}
		return time.Unix(0, ru.Utime.Nano()+ru.Stime.Nano())
	}, runtime.UnlockOSThread
}
