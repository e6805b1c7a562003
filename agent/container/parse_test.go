package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
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

// podmanInspectJSON is `podman container inspect` (podman 4.3) of a
// container run with --memory 214m --cpus 1.5 --label ecrae.tag=web,
// cut to what the agent reads and a few neighbours.
const podmanInspectJSON = `[
 {
  "Id": "626c6f73ac805123c42b93f62ca908dc4727b64ede8fae0e9af2c4ecc1f756b4",
  "Created": "2026-12-04T23:27:10.1Z",
  "State": {"OciVersion": "1.0.2-dev", "Status": "running", "Running": true, "Pid": 2098},
  "Image": "19ab6876037b8a431cc373a41502658086dc20ba25d9b9d16ba7cf7bb8dae79c",
  "ImageName": "localhost/ecrae-counter:test",
  "Name": "ctr",
  "Config": {"Hostname": "626c6f73ac80", "Labels": {"ecrae.tag": "web"}},
  "HostConfig": {"CpuShares": 0, "Memory": 224395264, "NanoCpus": 1500000000, "CpuPeriod": 100000, "CpuQuota": 150000}
 },
 {
  "Id": "8e71", "Name": "quota", "State": {"Status": "paused", "Pid": 7},
  "Config": {"Labels": null},
  "HostConfig": {"Memory": 0, "NanoCpus": 0, "CpuPeriod": 100000, "CpuQuota": 250000}
 }
]`

func TestParsePodman(t *testing.T) {
	cs, raw, err := parseInspect([]byte(podmanInspectJSON), "x86_64")
	if err != nil || len(cs) != 2 || len(raw) != 2 {
		t.Fatalf("%+v, %v", cs, err)
	}
	// 224395264 B = 214 MiB; NanoCpus 1.5e9 = 1.5 cores. The second: no
	// memory limit, CpuQuota/CpuPeriod = 250000/100000 = 2.5 cores, paused
	// = FROZEN, no labels = no tag.
	want := []Container{
		{Name: "ctr", ID: "626c6f73ac805123c42b93f62ca908dc4727b64ede8fae0e9af2c4ecc1f756b4", State: "RUNNING", CPULimit: 1.5, MemoryLimitMB: 214, Arch: "x86_64", Tag: "web"},
		{Name: "quota", ID: "8e71", State: "FROZEN", CPULimit: 2.5, Arch: "x86_64"},
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("container %d: %+v\nwant %+v", i, cs[i], want[i])
		}
	}
	if raw[0].State.Pid != 2098 || raw[0].ImageName != "localhost/ecrae-counter:test" {
		t.Errorf("%+v", raw[0])
	}
	if _, _, err := parseInspect([]byte(`[{"Id": "", "Name": "x"}]`), ""); err == nil {
		t.Error("a container without id: no error")
	}
	// podman stats' JSON lines: CPUNano 617357511 ns = 0.617 s; MemUsage
	// 5877760 B = 5.6 MiB -> 6 (rounded up, as LXC's).
	m, err := parseStats(`{"AvgCPU":11.5,"ContainerID":"626c","Name":"ctr","CPUNano":617357511,"MemUsage":5877760,"MemLimit":104857600}` + "\n\n")
	if err != nil || len(m) != 1 {
		t.Fatalf("%v, %v", m, err)
	}
	var c Container
	applyUsage(&c, m["626c"])
	if c.CPUSeconds != 0.617357511 || c.MemoryUsedMB != 6 {
		t.Fatalf("%+v", c)
	}
	if _, err := parseStats("Error: no such container x\n"); err == nil {
		t.Error("a stats line that is not JSON: no error")
	}
}

func FuzzParsePodman(f *testing.F) {
	f.Add([]byte(podmanInspectJSON))
	f.Add([]byte(`[{"Id":"a","Name":"b","HostConfig":{"Memory":-1,"NanoCpus":-5,"CpuQuota":1,"CpuPeriod":-1}}]`))
	f.Add([]byte(`{"ContainerID":"a","CPUNano":1,"MemUsage":18446744073709551615}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if cs, _, err := parseInspect(b, "x86_64"); err == nil {
			for _, c := range cs {
				if c.ID == "" || c.Name == "" || c.MemoryLimitMB < 0 || c.CPULimit < 0 {
					t.Fatalf("%+v from %q", c, b)
				}
			}
		}
		if m, err := parseStats(string(b)); err == nil {
			for id, u := range m {
				var c Container
				applyUsage(&c, u)
				if id == "" || c.MemoryUsedMB < 0 || c.CPUSeconds < 0 {
					t.Fatalf("%+v from %q", c, b)
				}
			}
		}
	})
}

// TestPodmanNames: a name no podman container can have is unknown without
// asking podman (the binary here does not exist): "--all" on podman's
// command line would be a flag, checkpointing every container.
func TestPodmanNames(t *testing.T) {
	p := &Podman{Bin: filepath.Join(t.TempDir(), "no-podman")}
	ctx := context.Background()
	for _, name := range []string{"--all", "-a", "", "a/b", "x y", strings.Repeat("a", 256)} {
		if _, err := p.Get(ctx, name); !errors.Is(err, ErrUnknown) {
			t.Errorf("Get(%q): %v, want ErrUnknown", name, err)
		}
		if has, err := p.Has(ctx, name); has || err != nil {
			t.Errorf("Has(%q): %v, %v", name, has, err)
		}
		if err := p.Dump(ctx, name, t.TempDir(), ""); !errors.Is(err, ErrUnknown) {
			t.Errorf("Dump(%q): %v, want ErrUnknown", name, err)
		}
		if err := p.Destroy(ctx, name); !errors.Is(err, ErrUnknown) {
			t.Errorf("Destroy(%q): %v, want ErrUnknown", name, err)
		}
		if err := p.Recover(ctx, name, "", ""); !errors.Is(err, ErrUnknown) {
			t.Errorf("Recover(%q): %v, want ErrUnknown", name, err)
		}
	}
	// A valid name reaches podman (which is missing here).
	if _, err := p.Get(ctx, "web-1.a_b"); err == nil || errors.Is(err, ErrUnknown) {
		t.Errorf("Get(valid name): %v, want podman's failure to run", err)
	}
	if p.HasImage(ctx, "--all") {
		t.Error("HasImage(--all)")
	}
}
