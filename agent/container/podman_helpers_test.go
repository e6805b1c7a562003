package container

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testImage is the image the podman tests run: a busybox-static root file
// system with the counter, imported (no registry is reachable here).
const testImage = "localhost/ecrae-counter:test"

// needPodman skips the test, saying why, when podman, runc or CRIU cannot
// run here.
func needPodman(t testing.TB) (CRIU, Features) {
	t.Helper()
	c, f := needCRIUOnly(t)
	for _, tool := range []string{"podman", "runc", "conmon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (Debian: podman runc; scripts/install-test-deps.sh)", tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox for the test image (Debian: busybox-static)")
	}
	return c, f
}

// rootfsTar writes a root file system tarball: busybox-static, its applets
// the counter uses, and the counter script.
func rootfsTar(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(h *tar.Header, body []byte) {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "tmp/", "proc/", "sys/", "dev/", "etc/"} {
		add(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))}, bb)
	for _, a := range []string{"sh", "head", "tr", "echo", "mv", "usleep", "cat"} {
		add(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil)
	}
	add(&tar.Header{Name: "counter.sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(counterScript))}, []byte(counterScript))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// startPodmanNode runs a Migrator for host on a podman storage of its own
// (vfs: a container's files are a plain directory the tests and the
// benchmark read without podman; cgroupfs and events to a file, what
// podman picks here without systemd, set so containers.conf cannot change
// them). With image set, the test image is imported there.
// It reports every 100 ms: the view tests wait for reports.
func startPodmanNode(t testing.TB, url, host string, c CRIU, f Features, image string) *node {
	t.Helper()
	return startPodmanNodeEvery(t, url, host, c, f, image, 100*time.Millisecond)
}

// startPodmanNodeEvery is startPodmanNode reporting every interval.
func startPodmanNodeEvery(t testing.TB, url, host string, c CRIU, f Features, image string, every time.Duration) *node {
	t.Helper()
	// A short base: conmon's sockets live under the run root and a Unix
	// socket path has at most 108 bytes.
	base, err := os.MkdirTemp("", "ecrae-pm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeWhenIdle(base) })
	n := &node{host: host, pmRoot: filepath.Join(base, "root")}
	n.pm = &Podman{Flags: []string{"--root", filepath.Join(base, "root"), "--runroot", filepath.Join(base, "run"),
		"--tmpdir", filepath.Join(base, "tmp"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"},
		CRIU: c, Arch: NodeArch()}
	// Removing every container unmounts their /dev/shm before the
	// directory goes.
	t.Cleanup(func() { _, _ = n.pm.run(context.Background(), "rm", "--all", "--force", "--time", "0") })
	if image != "" {
		if out, err := n.pm.run(context.Background(), "import", image, testImage); err != nil {
			t.Fatalf("podman import: %v: %s", err, out)
		}
	}
	runNode(t, n, url, n.pm, c, f, filepath.Join(base, "state"), every)
	return n
}

// removeWhenIdle removes dir once no process names it on its command
// line: conmon runs `podman container cleanup` when a removed container
// has exited, after `podman rm` returned, and that recreates podman's lock
// files in the storage.
func removeWhenIdle(dir string) {
	end := time.Now().Add(time.Minute)
	for time.Now().Before(end) && processNames(dir) {
		time.Sleep(20 * time.Millisecond)
	}
	os.RemoveAll(dir)
}

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

// newPodmanCounter runs the counter in a podman container with a working
// set of wsMB, limits and the ecrae.tag label, and waits until the working
// set is in memory. Explicit ulimits: runc cannot raise them here.
func newPodmanCounter(t testing.TB, n *node, name string, wsMB int, tag string) {
	t.Helper()
	args := []string{"run", "--detach", "--name", name, "--network", "none",
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
		"--env", fmt.Sprintf("ECRAE_WS_MB=%d", wsMB), "--memory", fmt.Sprintf("%dm", 3*wsMB+64), "--cpus", "1.5"}
	if tag != "" {
		args = append(args, "--label", "ecrae.tag="+tag)
	}
	args = append(args, testImage, "/bin/sh", "/counter.sh")
	if out, err := n.pm.run(context.Background(), args...); err != nil {
		t.Fatalf("podman run: %v: %s", err, out)
	}
	waitFor(t, 2*time.Minute, "working set filled", func() bool {
		v, err := podmanReadInt(n, name, "wslen")
		return err == nil && v == wsMB*1000000
	})
}

// podmanRootfs is the container's root file system on this node (vfs: a
// plain directory while the container exists).
func podmanRootfs(n *node, name string) (string, error) {
	out, err := n.pm.run(context.Background(), "mount", name)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", fmt.Errorf("podman mount %s: no path", name)
	}
	return f[len(f)-1], nil
}

// podmanReadInt reads /tmp/<file> of the container from its root file
// system (not podman exec: the test must not add processes to the tree
// CRIU dumps).
func podmanReadInt(n *node, name, file string) (int, error) {
	root, err := podmanRootfs(n, name)
	if err != nil {
		return 0, err
	}
	return readInt(filepath.Join(root, "tmp", file))
}
