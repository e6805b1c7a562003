package memlimit

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		live   uint64
		floor  int64
		factor float64
		want   int64
	}{
		{"small heap keeps the floor", 100 << 20, 1 << 30, 4, 1 << 30},    // 4×100 MiB = 400 MiB < 1 GiB
		{"large heap lifts the limit", 600 << 20, 1 << 30, 4, 2400 << 20}, // 4×600 MiB = 2400 MiB
		{"exactly at the floor", 256 << 20, 1 << 30, 4, 1 << 30},          // 4×256 MiB = 1 GiB
		{"saturates", math.MaxUint64, 0, 4, math.MaxInt64},                // 4×2^64 overflows int64
	} {
		if got := Limit(tc.live, tc.floor, tc.factor); got != tc.want {
			t.Errorf("%s: Limit(%d, %d, %g) = %d, want %d", tc.name, tc.live, tc.floor, tc.factor, got, tc.want)
		}
	}
}

// TestApplyFollowsLiveHeap retains a real 64 MiB and checks the limit the
// runtime holds afterwards is at least factor × the live heap it measured.
func TestApplyFollowsLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	keep := make([]byte, 64<<20)
	for i := range keep {
		keep[i] = byte(i)
	}
	runtime.GC() // the live heap is what the last collection marked
	c := &Controller{Floor: 1 << 20, Factor: 4}
	got := c.Apply()
	if live := LiveHeap(); live < 64<<20 {
		t.Fatalf("live heap %d after retaining 64 MiB", live)
	}
	if got < 4*(64<<20) {
		t.Errorf("limit %d MiB, want at least 4×64 MiB", got>>20)
	}
	if now := debug.SetMemoryLimit(-1); now != got {
		t.Errorf("runtime holds limit %d, Apply returned %d", now, got)
	}
	runtime.KeepAlive(keep)
}

func TestRunStopsWithContext(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Controller{Floor: 1 << 30, Factor: 4, Interval: time.Millisecond}).Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for debug.SetMemoryLimit(-1) == math.MaxInt64 { // Run replaces the limit set above
		if time.Now().After(deadline) {
			t.Fatal("limit never applied")
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
