package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// raplZone is one powercap zone the agent sums: a CPU package, or the
// DRAM subzone of a package. The core and uncore subzones are parts of
// their package and are left out, as is psys (it covers the packages).
type raplZone struct {
	dir      string // e.g. intel-rapl:0 or intel-rapl:0/intel-rapl:0:2
	name     string // package-0, dram
	maxRange uint64 // max_energy_range_uj: the counter wraps past it
	last     uint64
}

// RAPL measures package and DRAM power from the Linux powercap tree by
// differencing energy_uj between two readings. It is CPU and memory power,
// not the whole node's: the sample says "rapl" so that a reader knows.
type RAPL struct {
	root string
	now  func() time.Time

	mu    sync.Mutex
	zones []raplZone
	at    time.Time // time of the last reading; zero = none
}

// NewRAPL reads the tree under root (normally /sys/class/powercap). now
// is the clock (nil = time.Now).
func NewRAPL(root string, now func() time.Time) *RAPL {
	if now == nil {
		now = time.Now
	}
	return &RAPL{root: root, now: now}
}

// Name implements WattsSource.
func (r *RAPL) Name() string { return SourceRAPL }

// discover finds the package zones and their DRAM subzones.
func (r *RAPL) discover() ([]raplZone, error) {
	tops, err := filepath.Glob(filepath.Join(r.root, "*-rapl:*"))
	if err != nil {
		return nil, err
	}
	var zones []raplZone
	for _, top := range tops {
		rel, _ := filepath.Rel(r.root, top)
		if strings.Count(filepath.Base(top), ":") != 1 {
			continue // a subzone linked at the top level
		}
		name, err := readTrim(filepath.Join(top, "name"))
		if err != nil {
			return nil, fmt.Errorf("rapl: %w", err)
		}
		if !strings.HasPrefix(name, "package") {
			continue
		}
		zones = append(zones, raplZone{dir: rel, name: name})
		subs, _ := filepath.Glob(filepath.Join(top, filepath.Base(top)+":*"))
		for _, sub := range subs {
			if n, err := readTrim(filepath.Join(sub, "name")); err == nil && n == "dram" {
				srel, _ := filepath.Rel(r.root, sub)
				zones = append(zones, raplZone{dir: srel, name: "dram"})
			}
		}
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("rapl: no package zone under %s", r.root)
	}
	sort.Slice(zones, func(i, j int) bool { return zones[i].dir < zones[j].dir })
	for i := range zones {
		m, err := readUint(filepath.Join(r.root, zones[i].dir, "max_energy_range_uj"))
		if err != nil {
			return nil, fmt.Errorf("rapl: %w", err)
		}
		zones[i].maxRange = m
	}
	return zones, nil
}

// Watts implements WattsSource: the average power since the previous
// call, ErrPriming on the first.
func (r *RAPL) Watts(context.Context) (float64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.zones == nil {
		z, err := r.discover()
		if err != nil {
			return 0, err
		}
		r.zones = z
	}
	now := r.now()
	cur := make([]uint64, len(r.zones))
	for i, z := range r.zones {
		v, err := readUint(filepath.Join(r.root, z.dir, "energy_uj"))
		if err != nil {
			r.zones, r.at = nil, time.Time{} // rediscover: a zone may have gone
			return 0, fmt.Errorf("rapl: %w", err)
		}
		cur[i] = v
	}
	prevAt := r.at
	var uj uint64
	for i := range r.zones {
		uj += counterDelta(r.zones[i].last, cur[i], r.zones[i].maxRange)
		r.zones[i].last = cur[i]
	}
	r.at = now
	if prevAt.IsZero() {
		return 0, ErrPriming
	}
	dt := now.Sub(prevAt).Seconds()
	if dt <= 0 {
		return 0, errors.New("rapl: no time passed since the last reading")
	}
	return float64(uj) / 1e6 / dt, nil
}

// counterDelta is cur-prev for a counter that wraps to 0 past maxRange.
func counterDelta(prev, cur, maxRange uint64) uint64 {
	if cur >= prev {
		return cur - prev
	}
	return maxRange - prev + cur
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func readUint(path string) (uint64, error) {
	s, err := readTrim(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a counter", path, truncate(s))
	}
	return v, nil
}
