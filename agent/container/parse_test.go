package container

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	l := &LXC{Path: dir}
	if err := os.MkdirAll(filepath.Join(dir, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := "lxc.uts.name = c\nlxc.cgroup2.memory.max = 512M\nlxc.cgroup2.cpu.max = 250000 100000\n# ecrae.tag = web-frontend\n#lxc.cgroup2.memory.max = 1G\n"
	if err := os.WriteFile(filepath.Join(dir, "c", "config"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var c Container
	if err := l.readConfig("c", &c); err != nil {
		t.Fatal(err)
	}
	// 512M = 512 MB; 250000/100000 µs = 2.5 cores; the commented-out limit
	// is not read.
	if c.MemoryLimitMB != 512 || c.CPULimit != 2.5 || c.Tag != "web-frontend" {
		t.Fatalf("%+v", c)
	}
	var i Container
	// lxc-info -H: CPU in ns, memory in bytes: 1.5 s, ceil(10 MiB + 1) = 11 MB.
	parseInfo("CPU use: 1500000000\nMemory use: 10485761\nBlkIO use: x\n", &i)
	if i.CPUSeconds != 1.5 || i.MemoryUsedMB != 11 {
		t.Fatalf("%+v", i)
	}
}

func FuzzReadConfig(f *testing.F) {
	f.Add("lxc.cgroup2.memory.max = 512M\nlxc.cgroup2.cpu.max = max 100000\n# ecrae.tag = x\n")
	f.Add("lxc.cgroup2.cpu.max = 1 0\nlxc.cgroup2.memory.max = -5\n")
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "c"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, conf string) {
		p := filepath.Join(dir, "c", "config")
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var c Container
		if err := (&LXC{Path: dir}).readConfig("c", &c); err != nil {
			return
		}
		if c.MemoryLimitMB < 0 || c.CPULimit < 0 && !strings.Contains(conf, "-") {
			t.Fatalf("%+v from %q", c, conf)
		}
		parseInfo(conf, &c)
	})
}

// FuzzReadTar: whatever a peer sends, nothing is written outside the
// migration's directories.
func FuzzReadTar(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "ct/a", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.WriteHeader(&tar.Header{Name: "img/../../evil", Mode: 0o644, Typeflag: tar.TypeReg})
	_ = tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		ct, img := filepath.Join(root, "in", "ct"), filepath.Join(root, "in", "img")
		for _, d := range []string{ct, img} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// Pre-copy's rounds: "pre-1" is admitted beside them.
		more := func(prefix string) (string, bool) {
			d := filepath.Join(root, "in", prefix)
			return d, prefix == "pre-1" && os.Mkdir(d, 0o755) == nil
		}
		_ = readTar(bytes.NewReader(b), map[string]string{"ct": ct, "img": img}, more)
		entries, err := os.ReadDir(root)
		if err != nil || len(entries) != 1 || entries[0].Name() != "in" {
			t.Fatalf("written outside: %v %v", entries, err)
		}
		entries, _ = os.ReadDir(filepath.Join(root, "in"))
		for _, e := range entries {
			if n := e.Name(); n != "ct" && n != "img" && n != "pre-1" {
				t.Fatalf("written outside ct/, img/ and pre-1/: %v", entries)
			}
		}
	})
}

// TestReadTarSymlinkEscape: a symlink the stream makes cannot carry a later
// entry out of the directory.
func TestReadTarSymlinkEscape(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	ct := filepath.Join(root, "ct")
	for _, d := range []string{outside, ct} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "ct/l", Linkname: outside, Typeflag: tar.TypeSymlink})
	_ = tw.WriteHeader(&tar.Header{Name: "ct/l/evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("x"))
	_ = tw.Close()
	err := readTar(&buf, map[string]string{"ct": ct}, nil)
	if _, serr := os.Stat(filepath.Join(outside, "evil")); serr == nil || err == nil {
		t.Fatalf("escaped through a symlink (err %v)", err)
	}
}

// TestChooseMode: what each request resolves to on a node with and
// without post-copy and soft-dirty tracking.
func TestChooseMode(t *testing.T) {
	lazy := Features{Lazy: true, NoDirty: noDirtyKernel}
	none := Features{NoLazy: "fs.pipe-max-size is 1048576", NoDirty: noDirtyKernel}
	dirty := Features{NoLazy: "fs.pipe-max-size is 1048576", DirtyTrack: true}
	for _, tc := range []struct {
		req  string
		f    Features
		want string // mode, or "error: substring"
	}{
		{"", lazy, ModePostcopy},
		{ModeAuto, none, ModeStopcopy},
		{ModePostcopy, none, "error: fs.pipe-max-size"},
		{ModePrecopy, lazy, "error: no soft-dirty memory tracking"},
		{ModePrecopy, dirty, ModePrecopy},
		{ModeAuto, dirty, ModePrecopy},
		{ModeAuto, Features{Lazy: true, DirtyTrack: true}, ModePostcopy},
		{ModeStopcopy, none, ModeStopcopy},
		{"teleport", lazy, `error: mode "teleport"`},
	} {
		mode, _, err := ChooseMode(tc.req, tc.f)
		got := mode
		if err != nil {
			got = "error: " + err.Error()
		}
		if !strings.HasPrefix(tc.want, "error: ") && got != tc.want || strings.HasPrefix(tc.want, "error: ") && !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
			t.Errorf("ChooseMode(%q, %+v) = %q, want %q", tc.req, tc.f, got, tc.want)
		}
	}
}
