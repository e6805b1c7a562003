package agent

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeZone writes one powercap zone. sysfs cannot be faked otherwise: the
// tests build the tree the kernel would show under t.TempDir().
func writeZone(t *testing.T, dir, name string, energy, maxRange uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		"name":                name + "\n",
		"energy_uj":           strconv.FormatUint(energy, 10) + "\n",
		"max_energy_range_uj": strconv.FormatUint(maxRange, 10) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setEnergy(t *testing.T, root, zone string, v uint64) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, zone, "energy_uj"), []byte(strconv.FormatUint(v, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRAPL reads a two-socket tree: package-0 with dram and core
// subzones, package-1 without dram, and psys. Core (part of its package)
// and psys (covers the packages) must not be counted.
func TestRAPL(t *testing.T) {
	root := t.TempDir()
	const maxR = 262143328850 // a real max_energy_range_uj
	writeZone(t, filepath.Join(root, "intel-rapl:0"), "package-0", 1_000_000, maxR)
	writeZone(t, filepath.Join(root, "intel-rapl:0", "intel-rapl:0:0"), "core", 500_000, maxR)
	writeZone(t, filepath.Join(root, "intel-rapl:0", "intel-rapl:0:1"), "dram", 2_000_000, maxR)
	writeZone(t, filepath.Join(root, "intel-rapl:1"), "package-1", maxR-4_000_000, maxR)
	writeZone(t, filepath.Join(root, "intel-rapl:2"), "psys", 7_000_000, maxR)

	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	r := NewRAPL(root, func() time.Time { return now })
	if _, err := r.Watts(context.Background()); !errors.Is(err, ErrPriming) {
		t.Fatalf("first reading: err %v, want ErrPriming", err)
	}

	steps := []struct {
		dt                     time.Duration
		pkg0, dram, pkg1, core uint64
		want                   float64
	}{
		// 10 s: package-0 +1,200 J, dram +100 J, package-1 +600 J with a
		// wrap: (maxR - (maxR-4e6)) + 596e6 µJ = 600e6 µJ.
		// (1200 + 100 + 600) J / 10 s = 190 W. core (+999 J) is not counted.
		{10 * time.Second, 1_201_000_000, 102_000_000, 596_000_000, 999_500_000, 190},
		// 5 s: package-0 +500 J, dram +50 J, package-1 +400 J:
		// 950 J / 5 s = 190 W again.
		{5 * time.Second, 1_701_000_000, 152_000_000, 996_000_000, 999_600_000, 190},
		// 2 s with nothing spent: 0 W.
		{2 * time.Second, 1_701_000_000, 152_000_000, 996_000_000, 999_600_000, 0},
	}
	for i, s := range steps {
		now = now.Add(s.dt)
		setEnergy(t, root, "intel-rapl:0", s.pkg0)
		setEnergy(t, root, "intel-rapl:0/intel-rapl:0:1", s.dram)
		setEnergy(t, root, "intel-rapl:1", s.pkg1)
		setEnergy(t, root, "intel-rapl:0/intel-rapl:0:0", s.core)
		got, err := r.Watts(context.Background())
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if math.Abs(got-s.want) > 1e-9 {
			t.Errorf("step %d: %v W, want %v", i, got, s.want)
		}
	}
}

func TestRAPLErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewRAPL(t.TempDir(), nil).Watts(ctx); err == nil {
		t.Error("empty tree: no error")
	}
	root := t.TempDir()
	writeZone(t, filepath.Join(root, "intel-rapl:0"), "package-0", 1, 100)
	if err := os.WriteFile(filepath.Join(root, "intel-rapl:0", "energy_uj"), []byte("lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewRAPL(root, nil).Watts(ctx)
	if err == nil || !strings.Contains(err.Error(), `"lots" is not a counter`) {
		t.Errorf("bad counter: err %v", err)
	}
}

func TestCounterDelta(t *testing.T) {
	for _, c := range []struct{ prev, cur, max, want uint64 }{
		{10, 25, 100, 15}, // no wrap
		{90, 5, 100, 15},  // wrap: (100-90) + 5
		{7, 7, 100, 0},
	} {
		if got := counterDelta(c.prev, c.cur, c.max); got != c.want {
			t.Errorf("counterDelta(%d, %d, %d) = %d, want %d", c.prev, c.cur, c.max, got, c.want)
		}
	}
}
