package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ecrae/ecrae/events"
	"github.com/ecrae/ecrae/hostview"
	"github.com/nats-io/nats.go"
)

// criuOnce finds CRIU 4.x once per test binary.
var criuOnce = sync.OnceValues(findCRIU)

// findCRIU looks for a CRIU that runs here: $ECRAE_CRIU, ./bin/criu of the
// repository (scripts/criu.sh puts it there), the project's shared tools
// beside the clone, else a build from the archive there into the user's
// cache. The error is the reason to skip.
func findCRIU() (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("CRIU needs root")
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cands := []string{os.Getenv("ECRAE_CRIU"), filepath.Join(root, "bin", "criu"), filepath.Join(root, "..", "shared", "tools", "criu", "criu")}
	cache, _ := os.UserCacheDir()
	cached := filepath.Join(cache, "ecrae", "criu", "criu")
	cands = append(cands, cached)
	var tried []string
	for _, c := range cands {
		if c == "" {
			continue
		}
		if out, err := exec.Command(c, "--version").CombinedOutput(); err == nil && strings.Contains(string(out), "Version: 4") {
			if c, err = filepath.Abs(c); err != nil {
				return "", err
			}
			return c, nil
		}
		tried = append(tried, c)
	}
	build := filepath.Join(root, "..", "shared", "tools", "criu", "build.sh")
	if _, err := os.Stat(build); err == nil {
		if out, err := exec.Command(build, filepath.Dir(cached)).CombinedOutput(); err == nil {
			return cached, nil
		} else {
			return "", fmt.Errorf("building CRIU with %s: %v: %s", build, err, lastLine(out))
		}
	}
	return "", fmt.Errorf("no CRIU 4.x (tried %v; run scripts/criu.sh or set ECRAE_CRIU)", tried)
}

func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("no go.mod above the test")
		}
		d = p
	}
}

// needCRIU skips the test, saying why, when CRIU or LXC cannot run here.
func needCRIU(t testing.TB) (CRIU, Features) {
	t.Helper()
	c, f := needCRIUOnly(t)
	for _, tool := range []string{"lxc-create", "lxc-checkpoint", "lxc-start"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (Debian: lxc busybox-static; scripts/install-test-deps.sh)", tool)
		}
	}
	return c, f
}

// needCRIUOnly skips the test, saying why, when CRIU cannot run here.
func needCRIUOnly(t testing.TB) (CRIU, Features) {
	t.Helper()
	bin, err := criuOnce()
	if err != nil {
		t.Skipf("CRIU cannot run here: %v", err)
	}
	c := CRIU{Bin: bin}
	f, err := c.Check(context.Background())
	if err != nil {
		t.Skipf("CRIU cannot run here: %v", err)
	}
	// CRIU's lazy dump sends pages through pipes bigger than the default
	// limit (tools/criu/README.md).
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n < 4194304 {
			if err := os.WriteFile("/proc/sys/fs/pipe-max-size", []byte("4194304"), 0o644); err != nil {
				t.Logf("fs.pipe-max-size stays %d: %v (post-copy may fail)", n, err)
			}
		}
	}
	return c, f
}

// counterScript is the container's init: it fills a working set of
// ECRAE_WS_MB megabytes in the shell's memory, then counts; every 25 counts
// it writes the working set's length, which reads all of it.
const counterScript = `x=$(head -c ${ECRAE_WS_MB}000000 /dev/zero | tr '\0' a)
i=0
while true; do
  i=$((i+1)); echo $i > /tmp/counter.new; mv /tmp/counter.new /tmp/counter
  if [ $((i % 25)) = 0 ]; then echo ${#x} > /tmp/wslen.new; mv /tmp/wslen.new /tmp/wslen; fi
  usleep 10000
done
`

// newCounterContainer creates and starts a busybox LXC container under
// lxcpath running the counter. The config is what CRIU can checkpoint
// here (tools/criu/README.md): no network, no ttys or console, no AppArmor.
func newCounterContainer(t testing.TB, lxcpath, name string, wsMB int, tag string) {
	t.Helper()
	ctx := context.Background()
	if out, err := exec.CommandContext(ctx, "lxc-create", "-P", lxcpath, "-n", name, "-t", "busybox").CombinedOutput(); err != nil {
		t.Fatalf("lxc-create: %v: %s", err, out)
	}
	dir := filepath.Join(lxcpath, name)
	conf := fmt.Sprintf(`lxc.rootfs.path = dir:%[1]s/rootfs
lxc.uts.name = %[2]s
lxc.net.0.type = empty
lxc.tty.max = 0
lxc.pty.max = 1
lxc.console.path = none
lxc.autodev = 1
lxc.signal.halt = SIGUSR1
lxc.cap.drop = sys_module mac_admin mac_override sys_time
lxc.mount.auto = cgroup:mixed proc:mixed sys:ro
lxc.mount.entry = /lib lib none ro,bind 0 0
lxc.mount.entry = /usr/lib usr/lib none ro,bind 0 0
lxc.mount.entry = /lib64 lib64 none ro,bind 0 0
lxc.mount.entry = /usr/lib64 usr/lib64 none ro,bind 0 0
lxc.environment = ECRAE_WS_MB=%[3]d
lxc.init.cmd = /bin/sh /counter.sh
lxc.cgroup2.memory.max = %[4]dM
lxc.cgroup2.cpu.max = 150000 100000
# ecrae.tag = %[5]s
`, dir, name, wsMB, 3*wsMB+64, tag)
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "counter.sh"), []byte(counterScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "lxc-start", "-P", lxcpath, "-n", name).CombinedOutput(); err != nil {
		t.Fatalf("lxc-start: %v: %s", err, out)
	}
	// The working set is in memory once its length is written.
	waitFor(t, 2*time.Minute, "working set filled", func() bool {
		n, err := readInt(filepath.Join(dir, "rootfs", "tmp", "wslen"))
		return err == nil && n == wsMB*1000000
	})
}

// stopAll stops every container under lxcpath (test cleanup).
func stopAll(lxcpath string) {
	out, _ := exec.Command("lxc-ls", "-P", lxcpath, "-1").Output()
	for _, n := range strings.Fields(string(out)) {
		_ = exec.Command("lxc-stop", "-P", lxcpath, "-n", n, "-k").Run()
	}
}

func readInt(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startNATS(t testing.TB) *nats.Conn {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// node is one agent posing as a node: its own host name, runtime storage
// (lxcpath, or podman root), state directory and NATS connection.
type node struct {
	host    string
	lxcpath string
	lxc     *LXC    // with startNode
	pm      *Podman // with startPodmanNode
	pmRoot  string  // its --root
	m       *Migrator
	rep     *Reporter
}

// startNode runs a Migrator for host on an LXC path of its own until the
// test ends. It reports every 100 ms: the view tests wait for reports.
func startNode(t testing.TB, url string, host string, c CRIU, f Features, arch string) *node {
	t.Helper()
	return startNodeEvery(t, url, host, c, f, arch, 100*time.Millisecond)
}

// startNodeEvery is startNode reporting every interval.
func startNodeEvery(t testing.TB, url string, host string, c CRIU, f Features, arch string, every time.Duration) *node {
	t.Helper()
	base := t.TempDir()
	n := &node{host: host, lxcpath: filepath.Join(base, "lxc")}
	if err := os.MkdirAll(n.lxcpath, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(n.lxcpath) })
	n.lxc = &LXC{Path: n.lxcpath, CRIU: c, Arch: arch}
	runNode(t, n, url, n.lxc, c, f, filepath.Join(base, "state"), every)
	return n
}

// runNode starts n's reporter and migrator on rt until the test ends.
func runNode(t testing.TB, n *node, url string, rt Runtime, c CRIU, f Features, stateDir string, every time.Duration) {
	t.Helper()
	host := n.host
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	n.rep = NewReporter(host, rt, natsPub{nc}, every, nil)
	n.m = &Migrator{Host: host, RT: rt, CRIU: c, NC: nc,
		DataHost: "127.0.0.1", StateDir: stateDir, Features: f, Changed: n.rep.Wake}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	repDone := make(chan struct{})
	go func() {
		defer close(repDone)
		n.rep.Run(ctx)
	}()
	go func() {
		done <- n.m.Serve(ctx)
	}()
	// Serve is ready once its subscription answers: a request with an
	// empty body gets an error reply.
	go func() {
		defer close(ready)
		for ctx.Err() == nil {
			if _, err := nc.Request(MigrateSubject(host), []byte("x"), time.Second); err == nil {
				return
			}
		}
	}()
	<-ready
	t.Cleanup(func() {
		cancel()
		<-repDone
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

type natsPub struct{ nc *nats.Conn }

func (p natsPub) Publish(_ context.Context, subject string, data []byte) error {
	return p.nc.Publish(subject, data)
}

// startView runs the service's host view fed by the events consumer
// (JetStream stream and durable consumer, as ecrae serve does).
func startView(t testing.TB, nc *nats.Conn) *hostview.View {
	t.Helper()
	v := hostview.New(hostview.Options{})
	c, err := events.New(nc, v, events.Config{}, nil, events.NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return v
}

// containerOn reports whether the view has container name on host.
func containerOn(v *hostview.View, host, name string) (hostview.Instance, bool) {
	for _, in := range v.Instances(host) {
		if in.Name == name && in.Kind == hostview.KindContainer {
			return in, true
		}
	}
	return hostview.Instance{}, false
}
