package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// criuStats is what CRIU 4.2 printed here for `criu dump --display-stats`
// of a sleeping process.
const criuStats = `Displaying dump stats:
Freezing time: 101 us
Frozen time: 7802 us
Memory dump time: 521 us
Memory write time: 141 us
IRMAP resolve time: 0 us
Memory pages scanned: 57 (0x39)
Memory pages skipped from parent: 0 (0x0)
Memory pages written: 30 (0x1e)
Lazy memory pages: 0 (0x0)
`

func TestParseDumpStats(t *testing.T) {
	got, err := parseDumpStats(criuStats)
	if err != nil || got != (DumpStats{FrozenUS: 7802, PagesScanned: 57, PagesSkipped: 0, PagesWritten: 30}) {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []string{
		"",                                   // nothing printed
		"Memory pages scanned: 57 (0x39)\n",  // no pages written
		"Memory pages written: -3 (0x0)\n",   // negative
		"Memory pages written: many (0x0)\n", // not a number
	} {
		if s, err := parseDumpStats(bad); err == nil {
			t.Errorf("parseDumpStats(%q) = %+v, want an error", bad, s)
		}
	}
}

func FuzzParseDumpStats(f *testing.F) {
	f.Add(criuStats)
	f.Add("Memory pages written: 9223372036854775807 (0x0)\nFrozen time: 1 us")
	f.Add("Memory pages written:\n")
	f.Fuzz(func(t *testing.T, out string) {
		s, err := parseDumpStats(out)
		if err != nil {
			return
		}
		if s.PagesWritten < 0 || s.PagesScanned < 0 || s.PagesSkipped < 0 || s.FrozenUS < 0 {
			t.Fatalf("%+v from %q", s, out)
		}
		// What it read prints back as CRIU would and reads the same.
		again, err := parseDumpStats(fmt.Sprintf("Frozen time: %d us\nMemory pages scanned: %d (0x0)\nMemory pages skipped from parent: %d (0x0)\nMemory pages written: %d (0x0)\n",
			s.FrozenUS, s.PagesScanned, s.PagesSkipped, s.PagesWritten))
		if err != nil || again != s {
			t.Fatalf("%+v reads back as %+v, %v", s, again, err)
		}
	})
}

// fakeCRIU writes a CRIU stand-in that records its arguments and prints
// the dump stats of one round per call, pages written from written (one
// per round; "fail" fails the round with a CRIU-style log line). The real
// CRIU 4.2 cannot pre-dump on this kernel: it has no soft-dirty memory
// tracking (criu check --feature mem_dirty_track fails; TestMigrate's
// precopy case skips, saying so), so the round logic is tested with this.
func fakeCRIU(t *testing.T, written ...string) (CRIU, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "written"), []byte(strings.Join(written, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/bin/sh
d=%q
echo "$*" >> "$d/args"
n=$(wc -l < "$d/args")
w=$(sed -n "${n}p" "$d/written")
img=
while [ $# -gt 0 ]; do
  if [ "$1" = --images-dir ]; then img=$2; fi
  shift
done
if [ "$w" = fail ]; then
  echo "(00.01) Error (criu/mem.c:1): fake: round $n cannot track memory" > "$img/pre-dump.log"
  exit 1
fi
echo page > "$img/pages-$n.img"
printf 'Displaying dump stats:\nFreezing time: 100 us\nFrozen time: 900 us\nMemory pages scanned: 5000 (0x0)\nMemory pages skipped from parent: 0 (0x0)\nMemory pages written: %%s (0x0)\nLazy memory pages: 0 (0x0)\n' "$w"
`, dir)
	bin := filepath.Join(dir, "criu")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return CRIU{Bin: bin}, filepath.Join(dir, "args")
}

// TestPrecopyRounds: pre-dump rounds go on while the dirty set shrinks and
// is above the threshold, up to the round limit; each round names the one
// before as its parent and is sent as it ends.
func TestPrecopyRounds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		written []string
		pol     PrecopyPolicy
		rounds  int
		why     string // substring of the reason, or of the error
		failing bool
	}{
		// 1000 > 100, 300 > 100 and < 1000, 50 ≤ 100: stop after round 3.
		{"threshold", []string{"1000", "300", "50"}, PrecopyPolicy{MaxRounds: 5, DirtyPages: 100}, 3, "round 3 wrote 50 pages, at most the threshold of 100", false},
		// A small container: the first round is already under it.
		{"first round small", []string{"80"}, PrecopyPolicy{MaxRounds: 5, DirtyPages: 100}, 1, "round 1 wrote 80 pages", false},
		// 1000, 900, 800 all > 10 and shrinking: the limit of 3 stops it.
		{"round limit", []string{"1000", "900", "800", "700"}, PrecopyPolicy{MaxRounds: 3, DirtyPages: 10}, 3, "round limit 3 reached (800 pages", false},
		// 500 then 600 ≥ 500: writing faster than copying, stop.
		{"not shrinking", []string{"1000", "500", "600", "10"}, PrecopyPolicy{MaxRounds: 5, DirtyPages: 100}, 3, "dirty set not shrinking (round 3 wrote 600 pages, round 2 500)", false},
		// Defaults: 5 rounds, 4096 pages (16 MiB): 5000 > 4096, 4096 ≤ 4096.
		{"defaults", []string{"5000", "4096"}, PrecopyPolicy{}, 2, "at most the threshold of 4096", false},
		{"criu fails", []string{"1000", "fail"}, PrecopyPolicy{MaxRounds: 5, DirtyPages: 100}, 1, "pre-dump round 2: criu pre-dump: exit status 1 (criu: (00.01) Error (criu/mem.c:1): fake: round 2 cannot track memory)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, argsFile := fakeCRIU(t, tc.written...)
			work := t.TempDir()
			var sent []string
			rounds, last, why, err := precopyRounds(context.Background(), c, 4242, work, tc.pol, func(dir string) error {
				sent = append(sent, dir)
				return nil
			})
			if tc.failing {
				if err == nil || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("err %v, want %q", err, tc.why)
				}
			} else if err != nil || !strings.Contains(why, tc.why) {
				t.Fatalf("why %q, err %v; want %q", why, err, tc.why)
			}
			if len(rounds) != tc.rounds || len(sent) != tc.rounds {
				t.Fatalf("%d rounds, %d sent (%v), want %d", len(rounds), len(sent), sent, tc.rounds)
			}
			if !tc.failing && last != precopyDir(tc.rounds) {
				t.Fatalf("last %q, want %q", last, precopyDir(tc.rounds))
			}
			b, err := os.ReadFile(argsFile)
			if err != nil {
				t.Fatal(err)
			}
			calls := strings.Split(strings.TrimSpace(string(b)), "\n")
			for k, call := range calls {
				want := fmt.Sprintf("pre-dump --tree 4242 --track-mem --images-dir %s --display-stats --log-file pre-dump.log", filepath.Join(work, precopyDir(k+1)))
				if k > 0 {
					want += " --prev-images-dir ../" + precopyDir(k)
				}
				if call != want {
					t.Errorf("call %d: %q\nwant %q", k+1, call, want)
				}
			}
			for k, r := range rounds {
				if r.PagesScanned != 5000 || fmt.Sprint(r.PagesWritten) != tc.written[k] {
					t.Errorf("round %d: %+v, want %s pages written", k+1, r, tc.written[k])
				}
			}
		})
	}
	t.Run("send fails", func(t *testing.T) {
		c, _ := fakeCRIU(t, "1000", "500")
		_, _, _, err := precopyRounds(context.Background(), c, 1, t.TempDir(), PrecopyPolicy{}, func(string) error { return errors.New("connection reset") })
		if err == nil || !strings.Contains(err.Error(), "pre-dump round 1: connection reset") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestPrecopyStream: the rounds' images and the final dump's, each naming
// the one before as "parent" by a relative link, arrive on the destination
// in one stream with the same layout, so the restore finds every page; a
// round directory outside pre-1 ... pre-100 is refused.
func TestPrecopyStream(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"pre-1/pages-1.img": "round 1", "pre-2/pages-2.img": "round 2", "images/core-1.img": "final",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"pre-2/parent", "../pre-1"}, {"images/parent", "../pre-2"}} {
		if err := os.Symlink(l[1], filepath.Join(src, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	ts := newTarStream(&buf)
	for _, d := range []string{"pre-1", "pre-2"} {
		if err := ts.add(d, filepath.Join(src, d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.add("img", filepath.Join(src, "images")); err != nil {
		t.Fatal(err)
	}
	if err := ts.close(); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	img := filepath.Join(dst, "images")
	if err := os.Mkdir(img, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := readTar(&buf, map[string]string{"img": img}, precopyTrees(dst)); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"images/core-1.img": "final", "images/parent/pages-2.img": "round 2", "images/parent/parent/pages-1.img": "round 1"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	more := precopyTrees(t.TempDir())
	for _, bad := range []string{"pre-0", "pre-101", "pre-01", "pre-x", "pre-", "ct"} {
		if _, ok := more(bad); ok {
			t.Errorf("round directory %q admitted", bad)
		}
	}
	if _, ok := more("pre-100"); !ok {
		t.Error("pre-100 refused")
	}
}
