package kbstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seeded opens a fresh store holding testKB().
func seeded(t *testing.T) *Store {
	t.Helper()
	s := openStore(t, tempDB(t))
	if err := s.Import(context.Background(), testKB(), true); err != nil {
		t.Fatalf("Import(testKB): %v", err)
	}
	return s
}

func snapshot(t *testing.T, s *Store) *KB {
	t.Helper()
	kb, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return kb
}

func TestOpenCreatesDirAndSeedsOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "var", "nested", "ecrae.db")
	s := openStore(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("KB file: %v, mode %v; want it created 0600", err, fi.Mode())
	}
	rev := s.Revision()
	if rev == 0 {
		t.Error("Revision() = 0; it must start above the zero value")
	}
	ok, err := s.SeedDefault(ctx)
	if err != nil || !ok {
		t.Fatalf("first SeedDefault = %v, %v; want true, nil", ok, err)
	}
	if s.Revision() != rev+1 {
		t.Errorf("Revision after seeding = %d, want %d", s.Revision(), rev+1)
	}
	ok, err = s.SeedDefault(ctx)
	if err != nil || ok {
		t.Fatalf("second SeedDefault = %v, %v; want false, nil", ok, err)
	}
	if s.Revision() != rev+1 {
		t.Errorf("a SeedDefault that did nothing bumped Revision to %d", s.Revision())
	}
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(def), snapshot(t, s)); diff != "" {
		t.Errorf("seeded KB differs from Default (-want +got):\n%s", diff)
	}
}

func TestSeedDefaultLeavesAnyContentAlone(t *testing.T) {
	// One host alone makes the KB non-empty; the operator's data wins.
	ctx := context.Background()
	s := openStore(t, tempDB(t))
	kb := &KB{Architectures: testKB().Architectures[:1]}
	if err := s.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SeedDefault(ctx); err != nil || ok {
		t.Fatalf("SeedDefault on a non-empty KB = %v, %v; want false, nil", ok, err)
	}
}

func TestCRUDTag(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	tag := Tag{Name: "batch", Mode: ModeHint, Candidates: []Candidate{{Architecture: "x86-a", PerformanceFactor: 1.2}}, CPULoad: 1}

	if err := s.CreateTag(ctx, tag); err != nil {
		t.Fatalf("CreateTag: %v", err)
	}
	got, err := s.GetTag(ctx, "batch")
	if err != nil {
		t.Fatalf("GetTag: %v", err)
	}
	if diff := cmp.Diff(tag, got); diff != "" {
		t.Errorf("GetTag (-want +got):\n%s", diff)
	}
	if err := s.CreateTag(ctx, tag); !errors.Is(err, ErrExists) || err.Error() != `tag "batch" already exists` {
		t.Errorf("CreateTag twice = %v, want ErrExists", err)
	}

	tag.Candidates = append(tag.Candidates, Candidate{ISA: ISAAarch64, PerformanceFactor: 0.5})
	if err := s.UpdateTag(ctx, tag); err != nil {
		t.Fatalf("UpdateTag: %v", err)
	}
	if got, _ := s.GetTag(ctx, "batch"); len(got.Candidates) != 2 {
		t.Errorf("after UpdateTag, %d candidates, want 2", len(got.Candidates))
	}
	if err := s.UpdateTag(ctx, Tag{Name: "nope", Candidates: tag.Candidates}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateTag(missing) = %v, want ErrNotFound", err)
	}

	tags, err := s.ListTags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range tags {
		names = append(names, tg.Name)
	}
	if diff := cmp.Diff([]string{"any-arm", "batch", "pinned", "web"}, names); diff != "" {
		t.Errorf("ListTags names, sorted (-want +got):\n%s", diff)
	}

	if err := s.DeleteTag(ctx, "batch"); err != nil {
		t.Fatalf("DeleteTag: %v", err)
	}
	if _, err := s.GetTag(ctx, "batch"); !errors.Is(err, ErrNotFound) || err.Error() != `tag "batch" not found` {
		t.Errorf("GetTag after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteTag(ctx, "batch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteTag twice = %v, want ErrNotFound", err)
	}
}

func TestCRUDOtherKinds(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)

	arch := Architecture{Name: "rv-c", ISA: ISARiscv64, Cores: 64, Threads: 64, MemoryMB: 131072, PowerWatts: linearCurve(30, 120)}
	if err := s.CreateArchitecture(ctx, arch); err != nil {
		t.Fatalf("CreateArchitecture: %v", err)
	}
	arch.Note = "updated"
	if err := s.UpdateArchitecture(ctx, arch); err != nil {
		t.Fatalf("UpdateArchitecture: %v", err)
	}
	if got, err := s.GetArchitecture(ctx, "rv-c"); err != nil || got.Note != "updated" {
		t.Errorf("GetArchitecture = %+v, %v", got, err)
	}
	if archs, err := s.ListArchitectures(ctx); err != nil || len(archs) != 3 {
		t.Errorf("ListArchitectures = %d entries, %v; want 3", len(archs), err)
	}

	flavor := Flavor{Name: "big", VCPUs: 16, MemoryMB: 65536, Tags: []string{"pinned"}}
	if err := s.CreateFlavor(ctx, flavor); err != nil {
		t.Fatalf("CreateFlavor: %v", err)
	}
	if err := s.CreateFlavor(ctx, flavor); !errors.Is(err, ErrExists) {
		t.Errorf("CreateFlavor twice = %v, want ErrExists", err)
	}
	flavor.RootGB = 100
	if err := s.UpdateFlavor(ctx, flavor); err != nil {
		t.Fatalf("UpdateFlavor: %v", err)
	}
	if got, err := s.GetFlavor(ctx, "big"); err != nil || got.RootGB != 100 {
		t.Errorf("GetFlavor = %+v, %v", got, err)
	}
	if flavors, err := s.ListFlavors(ctx); err != nil || len(flavors) != 2 {
		t.Errorf("ListFlavors = %d entries, %v; want 2", len(flavors), err)
	}

	host := Host{Name: "node-2", Architecture: "rv-c"}
	if err := s.CreateHost(ctx, host); err != nil {
		t.Fatalf("CreateHost: %v", err)
	}
	host.Rack = "r9"
	if err := s.UpdateHost(ctx, host); err != nil {
		t.Fatalf("UpdateHost: %v", err)
	}
	if got, err := s.GetHost(ctx, "node-2"); err != nil || got.Rack != "r9" {
		t.Errorf("GetHost = %+v, %v", got, err)
	}
	if hosts, err := s.ListHosts(ctx); err != nil || len(hosts) != 2 {
		t.Errorf("ListHosts = %d entries, %v; want 2", len(hosts), err)
	}

	// The new host holds the architecture; once it goes, so can the model.
	if err := s.DeleteArchitecture(ctx, "rv-c"); !errors.Is(err, ErrInUse) {
		t.Errorf("DeleteArchitecture(in use) = %v, want ErrInUse", err)
	}
	for _, del := range []func() error{
		func() error { return s.DeleteHost(ctx, "node-2") },
		func() error { return s.DeleteArchitecture(ctx, "rv-c") },
		func() error { return s.DeleteFlavor(ctx, "big") },
	} {
		if err := del(); err != nil {
			t.Errorf("delete: %v", err)
		}
	}
	for _, get := range []func() error{
		func() error { _, err := s.GetHost(ctx, "node-2"); return err },
		func() error { _, err := s.GetArchitecture(ctx, "rv-c"); return err },
		func() error { _, err := s.GetFlavor(ctx, "big"); return err },
		func() error { return s.DeleteHost(ctx, "node-2") },
		func() error { return s.UpdateHost(ctx, Host{Name: "ghost", Architecture: "x86-a"}) },
		func() error { return s.UpdateArchitecture(ctx, Architecture{Name: "ghost"}) },
		func() error { return s.UpdateFlavor(ctx, Flavor{Name: "ghost"}) },
	} {
		if err := get(); !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
	}
}

func TestDeleteInUseNamesReferrers(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	for _, tc := range []struct {
		del  func() error
		want string
	}{
		{func() error { return s.DeleteArchitecture(ctx, "x86-a") }, `architecture "x86-a" is in use by tag "pinned", tag "web", host "node-1"`},
		{func() error { return s.DeleteArchitecture(ctx, "arm-b") }, `architecture "arm-b" is in use by tag "web"`},
		{func() error { return s.DeleteTag(ctx, "web") }, `tag "web" is in use by flavor "small"`},
		{func() error { return s.DeleteFlavor(ctx, "small") }, `flavor "small" is in use by tag "web"`},
	} {
		err := tc.del()
		if !errors.Is(err, ErrInUse) || err.Error() != tc.want {
			t.Errorf("delete = %v, want ErrInUse %q", err, tc.want)
		}
	}
	if diff := cmp.Diff(sortedCopy(testKB()), snapshot(t, s)); diff != "" {
		t.Errorf("refused deletes changed the KB (-want +got):\n%s", diff)
	}
}

func TestInvalidWritesLeaveDBUnchanged(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	before := snapshot(t, s)
	rev := s.Revision()

	for _, tc := range []struct {
		name  string
		write func() error
		want  string
	}{
		{
			name: "update tag with zero factor",
			write: func() error {
				tg := testKB().Tags[0]
				tg.Candidates[0].PerformanceFactor = 0
				return s.UpdateTag(ctx, tg)
			},
			want: "tag.candidates[0].performance_factor: must be > 0 (1 = the tag's reference)",
		},
		{
			name: "create tag naming a missing architecture",
			write: func() error {
				return s.CreateTag(ctx, Tag{Name: "t", Candidates: []Candidate{{Architecture: "zz", PerformanceFactor: 1}}})
			},
			want: `tag.candidates[0].architecture: architecture "zz" does not exist`,
		},
		{
			name:  "create host with a bad name",
			write: func() error { return s.CreateHost(ctx, Host{Name: "bad name", Architecture: "x86-a"}) },
			want:  `host.name: "bad name" may only contain letters, digits, '.', '_' and '-'`,
		},
		{
			// The problem is in another entity: it is named, not indexed.
			name: "architecture isa change breaks a tag",
			write: func() error {
				a := testKB().Architectures[0]
				a.ISA = ISAPpc64le
				return s.UpdateArchitecture(ctx, a)
			},
			want: `tags["pinned"].candidates[0].isa: "x86_64" contradicts architecture "x86-a", whose isa is "ppc64le"`,
		},
		{
			name:  "flavor with too few vcpus",
			write: func() error { return s.UpdateFlavor(ctx, Flavor{Name: "small", MemoryMB: 1}) },
			want:  "flavor.vcpus: must be > 0, got 0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.write()
			var verr *ValidationError
			if !errors.As(err, &verr) || err.Error() != tc.want {
				t.Errorf("write = %v, want *ValidationError %q", err, tc.want)
			}
		})
	}
	if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
		t.Errorf("invalid writes changed the KB (-before +after):\n%s", diff)
	}
	if s.Revision() != rev {
		t.Errorf("invalid writes bumped Revision from %d to %d", rev, s.Revision())
	}
}

func TestRevisionBumpsOnlyOnCommit(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	rev := s.Revision()
	// Reads and failed writes leave it alone.
	_, _ = s.ListTags(ctx)
	_, _ = s.Snapshot(ctx)
	_ = s.CreateHost(ctx, Host{Name: "node-1", Architecture: "x86-a"}) // ErrExists
	_ = s.DeleteTag(ctx, "missing")                                    // ErrNotFound
	if s.Revision() != rev {
		t.Fatalf("Revision moved from %d to %d without a commit", rev, s.Revision())
	}
	if err := s.CreateHost(ctx, Host{Name: "node-9", Architecture: "arm-b"}); err != nil {
		t.Fatal(err)
	}
	if s.Revision() != rev+1 {
		t.Errorf("Revision = %d after one commit, want %d", s.Revision(), rev+1)
	}
}

func TestCanceledContextChangesNothing(t *testing.T) {
	s := seeded(t)
	rev := s.Revision()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CreateHost(ctx, Host{Name: "n", Architecture: "x86-a"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateHost(canceled) = %v, want context.Canceled", err)
	}
	if err := s.Import(ctx, testKB(), true); !errors.Is(err, context.Canceled) {
		t.Errorf("Import(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Snapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshot(canceled) = %v, want context.Canceled", err)
	}
	if s.Revision() != rev {
		t.Errorf("canceled writes bumped Revision")
	}
}

func TestImportMergeAndReplace(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)

	// Merge: upsert an architecture (changed note) and add a new one.
	add := &KB{Architectures: []Architecture{testKB().Architectures[1], {
		Name: "p8", ISA: ISAPpc64le, Cores: 20, Threads: 160, MemoryMB: 262144, PowerWatts: linearCurve(250, 600), Estimate: true}}}
	add.Architectures[0].Note = "merged"
	if err := s.Import(ctx, add, false); err != nil {
		t.Fatalf("merge Import: %v", err)
	}
	want := testKB()
	want.Architectures[1].Note = "merged"
	want.Architectures = append(want.Architectures, add.Architectures[1])
	if diff := cmp.Diff(sortedCopy(want), snapshot(t, s)); diff != "" {
		t.Errorf("after merge (-want +got):\n%s", diff)
	}

	// A merge whose result is invalid changes nothing, though the import
	// itself is valid: tag "pinned" says x86-a is x86_64.
	before := snapshot(t, s)
	bad := &KB{Architectures: []Architecture{testKB().Architectures[0]}}
	bad.Architectures[0].ISA = ISAS390x
	err := s.Import(ctx, bad, false)
	wantErr := `tags["pinned"].candidates[0].isa: "x86_64" contradicts architecture "x86-a", whose isa is "s390x" (after merging the import into the current KB)`
	if err == nil || err.Error() != wantErr {
		t.Errorf("invalid merge = %v, want %q", err, wantErr)
	}
	if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
		t.Errorf("invalid merge changed the KB (-before +after):\n%s", diff)
	}

	// An invalid import is refused before any transaction.
	inv := testKB()
	inv.Hosts[0].Architecture = "nope"
	if err := s.Import(ctx, inv, true); err == nil {
		t.Error("Import accepted an invalid KB")
	}

	// Replace: only the imported KB remains.
	small := &KB{SchemaVersion: CurrentSchemaVersion, Architectures: []Architecture{add.Architectures[1]}}
	if err := s.Import(ctx, small, true); err != nil {
		t.Fatalf("replace Import: %v", err)
	}
	if diff := cmp.Diff(sortedCopy(small), snapshot(t, s)); diff != "" {
		t.Errorf("after replace (-want +got):\n%s", diff)
	}
}

func TestSnapshotIsACopy(t *testing.T) {
	s := seeded(t)
	a := snapshot(t, s)
	a.Tags[0].Candidates[0].PerformanceFactor = 99
	a.Flavors[0].ExtraSpecs["x"] = "y"
	a.Architectures[0].PowerWatts[0] = 1
	if diff := cmp.Diff(sortedCopy(testKB()), snapshot(t, s)); diff != "" {
		t.Errorf("mutating a snapshot reached the store (-want +got):\n%s", diff)
	}
}

func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	s := seeded(t)
	rev := s.Revision()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.CreateHost(ctx, Host{Name: fmt.Sprintf("h%02d", i), Architecture: "arm-b"})
			if _, err := s.Snapshot(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	hosts, err := s.ListHosts(ctx)
	if err != nil || len(hosts) != n+1 {
		t.Errorf("ListHosts = %d, %v; want %d", len(hosts), err, n+1)
	}
	if s.Revision() != rev+n {
		t.Errorf("Revision = %d, want %d", s.Revision(), rev+n)
	}
}
