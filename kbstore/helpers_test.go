package kbstore

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// linearCurve gives 11 evenly spaced points from idle to max watts.
func linearCurve(idle, max float64) []float64 {
	c := make([]float64, PowerPoints)
	for i := range c {
		c[i] = idle + (max-idle)*float64(i)/10
	}
	return c
}

// testKB is a small valid KB that touches every kind of reference: tag →
// architecture, tag → flavor, tag → isa only, flavor → tag, host →
// architecture.
func testKB() *KB {
	return &KB{
		SchemaVersion: CurrentSchemaVersion,
		Architectures: []Architecture{
			{Name: "x86-a", ISA: ISAx86_64, CPU: "Test Xeon", Sockets: 2, Cores: 8, Threads: 16, CoreMHz: 2500,
				MemoryMB: 65536, DiskGB: 480, PowerWatts: linearCurve(50, 250), SSJOps100: 800000, SSJOpsPerWatt: 5000,
				Year: 2019, Source: "test data", Note: "made up"},
			{Name: "arm-b", ISA: ISAAarch64, Cores: 32, Threads: 32, MemoryMB: 65536, PowerWatts: linearCurve(40, 150), Estimate: true},
		},
		Tags: []Tag{
			{Name: "web", Description: "front ends", Mode: ModeHint, UtilizationCeiling: 0.7, CPULoad: 0.5, Source: "assumed",
				Candidates: []Candidate{
					{Architecture: "arm-b", PerformanceFactor: 0.8, UtilizationCeiling: 0.6, Note: "efficient"},
					{Architecture: "x86-a", Flavor: "small", PerformanceFactor: 1},
				}},
			{Name: "pinned", Mode: ModeExact, Candidates: []Candidate{{Architecture: "x86-a", ISA: ISAx86_64, PerformanceFactor: 1}}},
			{Name: "any-arm", Candidates: []Candidate{{ISA: ISAAarch64, PerformanceFactor: 1}}},
		},
		Flavors: []Flavor{
			{Name: "small", VCPUs: 1, MemoryMB: 2048, RootGB: 20, EphemeralGB: 10, SwapMB: 512,
				ExtraSpecs: map[string]string{"ecrae:tag": "web", "hw:cpu_policy": "shared"}, Tags: []string{"web", "any-arm"}},
		},
		Hosts: []Host{{Name: "node-1", Architecture: "x86-a", Rack: "r1", PowerCapWatts: 300, Note: "first"}},
	}
}

// sortedCopy is what Snapshot and EncodeYAML→ParseYAML give back for kb.
func sortedCopy(kb *KB) *KB {
	c := kb.clone()
	c.sortByName()
	return c
}

// checkIntegrity runs bbolt's consistency check; a closed DB is skipped.
func checkIntegrity(t testing.TB, db *bolt.DB) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt integrity check of %s: %v", db.Path(), err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		t.Errorf("integrity check of %s: %v", db.Path(), err)
	}
}

// openStore opens path and, at cleanup, checks integrity then closes.
func openStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		checkIntegrity(t, s.db)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func tempDB(t *testing.T) string { return filepath.Join(t.TempDir(), "ecrae.db") }
