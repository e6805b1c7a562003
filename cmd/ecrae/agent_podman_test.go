package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ecrae/ecrae/agent/container"
)

// processNames reports whether a process has s in its command line.
func processNames(s string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

// TestAgentContainersPodman runs `ecrae agent --containers podman` on a
// podman storage of its own with a real container (busybox-static
// imported: no registry here): the agent reports it on
// ecrae.containers.<host> with runtime podman, its label's tag and limits,
// and refuses post-copy with podman's reason. The migrations themselves
// are tested in agent/container.
func TestAgentContainersPodman(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("podman with CRIU needs root")
	}
	for _, tool := range []string{"podman", "runc", "conmon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (scripts/install-test-deps.sh)", tool)
		}
	}
	criu := os.Getenv("ECRAE_CRIU")
	for _, c := range []string{filepath.Join("..", "..", "bin", "criu"), filepath.Join("..", "..", "..", "shared", "tools", "criu", "criu")} {
		if criu == "" {
			if _, err := os.Stat(c); err == nil {
				criu, _ = filepath.Abs(c)
			}
		}
	}
	if criu == "" {
		t.Skip("no CRIU 4.x (scripts/criu.sh or ECRAE_CRIU)")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("no /bin/busybox (busybox-static)")
	}
	base, err := os.MkdirTemp("", "ecrae-pm-") // short: conmon's socket paths
	if err != nil {
		t.Fatal(err)
	}
	// conmon runs `podman container cleanup` after `podman rm` returned:
	// the storage goes once no process names it.
	t.Cleanup(func() {
		end := time.Now().Add(time.Minute)
		for time.Now().Before(end) && processNames(base) {
			time.Sleep(20 * time.Millisecond)
		}
		os.RemoveAll(base)
	})
	flags := []string{"--root", filepath.Join(base, "root"), "--runroot", filepath.Join(base, "run"), "--tmpdir", filepath.Join(base, "tmp"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	podman := func(args ...string) {
		t.Helper()
		cmd := exec.Command("podman", append(append(append([]string{}, flags...), "--runtime", "runc"), args...)...)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(criu)+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("podman %s: %v: %s", args[0], err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("podman", append(append([]string{}, flags...), "rm", "--all", "--force", "--time", "0")...).Run()
	})
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	_, _ = tw.Write(bb)
	_ = tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	_ = tw.WriteHeader(&tar.Header{Name: "bin/sleep", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(base, "rootfs.tar")
	if err := os.WriteFile(tarball, rootfs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	podman("import", tarball, "localhost/ecrae-sleep:test")
	podman("run", "--detach", "--name", "sleeper", "--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
		"--memory", "64m", "--cpus", "0.5", "--label", "ecrae.tag=batch", "localhost/ecrae-sleep:test", "/bin/sleep", "1000")

	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reports, err := nc.SubscribeSync(container.ReportSubject("node-p"))
	if err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(base, "stat")
	if err := os.WriteFile(stat, []byte("cpu 10 0 0 90 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"agent", "--host", "node-p", "--nats", s.ClientURL(), "--sources", "proc", "--proc-stat", stat,
			"--interval", "100ms", "--containers", "podman", "--podman-flags", strings.Join(flags, " "), "--criu", criu,
			"--state-dir", filepath.Join(base, "state")}, nil, &bytes.Buffer{}, &errb)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Error(err)
		}
	}()
	// --cpus 0.5, --memory 64m, the label's tag.
	want := container.Container{Name: "sleeper", State: "RUNNING", CPULimit: 0.5, MemoryLimitMB: 64, Arch: container.NodeArch(), Tag: "batch"}
	end := time.Now().Add(2 * time.Minute)
	for {
		msg, err := reports.NextMsg(time.Until(end))
		if err != nil {
			t.Fatalf("no report with the container: %v\n%s", err, errb.String())
		}
		var r container.Report
		if err := json.Unmarshal(msg.Data, &r); err != nil {
			t.Fatalf("report %q: %v", msg.Data, err)
		}
		if r.Runtime != "podman" || len(r.Containers) != 1 {
			continue
		}
		got := r.Containers[0]
		if len(got.ID) != 64 || got.MemoryUsedMB <= 0 {
			t.Fatalf("container %+v: want podman's 64-hex id and some memory in use", got)
		}
		got.ID, got.CPUSeconds, got.MemoryUsedMB = "", 0, 0
		if got != want {
			t.Fatalf("reported %+v\nwant %+v", got, want)
		}
		break
	}
	b, _ := json.Marshal(container.MigrateRequest{Container: "sleeper", To: "node-q", Mode: container.ModePostcopy})
	msg, err := nc.Request(container.MigrateSubject("node-p"), b, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var rep container.MigrateReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || !strings.Contains(rep.Error, "podman cannot dump with lazy pages") {
		t.Fatalf("reply %s (%v): want post-copy refused with podman's reason", msg.Data, err)
	}
}
