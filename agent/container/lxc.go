package container

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Container is one container of a node, as the agent reports it.
type Container struct {
	Name string `json:"name"`
	// ID is stable across migrations: LXC's is kept in the container's
	// directory (ecrae.id) and moves with it; podman's container id is
	// kept by checkpoint and restore.
	ID    string `json:"id"`
	State string `json:"state"` // RUNNING, FROZEN (stopped ones are not reported)
	// CPULimit is the CPU quota in cores (cgroup cpu.max), 0 = none.
	CPULimit float64 `json:"cpu_limit,omitempty"`
	// CPUSeconds is the CPU time used since start.
	CPUSeconds float64 `json:"cpu_seconds"`
	// MemoryLimitMB is cgroup memory.max, 0 = none.
	MemoryLimitMB int64 `json:"memory_limit_mb,omitempty"`
	MemoryUsedMB  int64 `json:"memory_used_mb"`
	// Arch is the ISA (uname -m of the node: a container runs the node's).
	Arch string `json:"arch"`
	// Tag is LXC's config comment "# ecrae.tag = T" (LXC refuses unknown
	// keys, so the tag lives in a comment) or podman's label ecrae.tag,
	// "" when none.
	Tag string `json:"tag,omitempty"`
	// Migrating: this agent is moving it out or taking it in (Reporter's
	// Migrating); the service reads it as task state TaskMigrating.
	Migrating bool `json:"migrating,omitempty"`
}

// TaskMigrating is the live view's task state of a container an agent
// reports migrating: Nova's word for a VM in a live migration, so that
// what waits for VMs to settle (the power manager, a plan's takeover)
// waits for containers too.
const TaskMigrating = "migrating"

// ErrUnknown is returned for a container the node does not have.
var ErrUnknown = errors.New("no such container")

// LXC drives the LXC containers under one lxcpath.
type LXC struct {
	// Path is the lxcpath (lxc-* -P), default /var/lib/lxc.
	Path string
	CRIU CRIU
	// Arch is the node's ISA.
	Arch string
}

func (l *LXC) run(ctx context.Context, env []string, args ...string) (string, error) {
	out, err := runGroup(ctx, env, args)
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", args[0], err, lastLine([]byte(out)))
	}
	return out, nil
}

// Dir is the directory of a container (config, rootfs, ecrae.id).
func (l *LXC) Dir(name string) string { return filepath.Join(l.Path, name) }

// names lists the containers defined under Path.
func (l *LXC) names(ctx context.Context) ([]string, error) {
	out, err := l.run(ctx, nil, "lxc-ls", "-P", l.Path, "-1")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// List returns the running (or frozen) containers.
func (l *LXC) List(ctx context.Context) ([]Container, error) {
	names, err := l.names(ctx)
	if err != nil {
		return nil, err
	}
	var out []Container
	for _, n := range names {
		c, err := l.Get(ctx, n)
		if errors.Is(err, ErrUnknown) {
			continue // destroyed meanwhile
		}
		if err != nil {
			return nil, err
		}
		if c.State == "RUNNING" || c.State == "FROZEN" {
			out = append(out, c)
		}
	}
	return out, nil
}

// State is the LXC state of a container (STOPPED, RUNNING, ...).
func (l *LXC) State(ctx context.Context, name string) (string, error) {
	if _, err := os.Stat(filepath.Join(l.Dir(name), "config")); err != nil {
		return "", fmt.Errorf("container %.100q: %w", name, ErrUnknown)
	}
	out, err := l.run(ctx, nil, "lxc-info", "-P", l.Path, "-n", name, "-s", "-H")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// Get describes one container.
func (l *LXC) Get(ctx context.Context, name string) (Container, error) {
	st, err := l.State(ctx, name)
	if err != nil {
		return Container{}, err
	}
	c := Container{Name: name, State: st, Arch: l.Arch}
	if c.ID, err = l.id(name); err != nil {
		return Container{}, err
	}
	if err := l.readConfig(name, &c); err != nil {
		return Container{}, err
	}
	if st == "RUNNING" || st == "FROZEN" {
		out, err := l.run(ctx, nil, "lxc-info", "-P", l.Path, "-n", name, "-H", "-c", "-m")
		if err == nil {
			parseInfo(out, &c)
		}
	}
	return c, nil
}

// parseInfo reads `lxc-info -H -c -m`: "CPU use: NS" and "Memory use: BYTES".
func parseInfo(out string, c *Container) {
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch strings.TrimSpace(k) {
		case "CPU use":
			c.CPUSeconds = n / 1e9
		case "Memory use":
			c.MemoryUsedMB = int64(math.Ceil(n / (1 << 20)))
		}
	}
}

// readConfig takes the limits and the tag from the container's config.
func (l *LXC) readConfig(name string, c *Container) error {
	f, err := os.Open(filepath.Join(l.Dir(name), "config"))
	if err != nil {
		return fmt.Errorf("container %.100q: %w", name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			if k, v, ok := strings.Cut(rest, "="); ok && strings.TrimSpace(k) == "ecrae.tag" {
				c.Tag = strings.TrimSpace(v)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "lxc.cgroup2.memory.max":
			if b, err := parseBytes(v); err == nil {
				c.MemoryLimitMB = b >> 20
			}
		case "lxc.cgroup2.cpu.max":
			// "QUOTA PERIOD" in µs, or "max PERIOD".
			if q, p, ok := strings.Cut(v, " "); ok {
				qf, e1 := strconv.ParseFloat(q, 64)
				pf, e2 := strconv.ParseFloat(strings.TrimSpace(p), 64)
				if e1 == nil && e2 == nil && pf > 0 {
					c.CPULimit = qf / pf
				}
			}
		}
	}
	return sc.Err()
}

// parseBytes reads a cgroup size: bytes, or with a K/M/G suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %.100q", s)
	}
	return n * mult, nil
}

// id reads the container's ecrae.id, creating it the first time.
func (l *LXC) id(name string) (string, error) {
	p := filepath.Join(l.Dir(name), "ecrae.id")
	if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	r[6] = r[6]&0x0f | 0x40
	r[8] = r[8]&0x3f | 0x80
	h := hex.EncodeToString(r[:])
	id := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	// Written whole then renamed: a crash leaves no half id.
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("container %.100q: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", fmt.Errorf("container %.100q: %w", name, err)
	}
	return id, nil
}

// criuConfig writes a CRIU config file for one lxc-checkpoint call.
func criuConfig(dir, name string, lines ...string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// Dump checkpoints a running container into imgDir and stops it. extra are
// CRIU config lines (e.g. lazy-pages). A failed dump leaves it running
// (CRIU thaws the tasks).
func (l *LXC) Dump(ctx context.Context, name, imgDir, confDir string, extra ...string) error {
	conf, err := criuConfig(confDir, "criu-dump.conf", extra...)
	if err != nil {
		return err
	}
	_, err = l.run(ctx, l.CRIU.env(conf), "lxc-checkpoint", "-P", l.Path, "-n", name, "-s", "-D", imgDir)
	if err != nil {
		return fmt.Errorf("dump of container %q: %w%s", name, err, logTail(filepath.Join(imgDir, "dump.log")))
	}
	return nil
}

// Restore starts a container from the images in imgDir.
func (l *LXC) Restore(ctx context.Context, name, imgDir, confDir string, extra ...string) error {
	// mntns-compat-mode: LXC's mounts restore only in CRIU's older mount
	// engine on this kernel (tools/criu/README.md).
	conf, err := criuConfig(confDir, "criu-restore.conf", append([]string{"mntns-compat-mode"}, extra...)...)
	if err != nil {
		return err
	}
	_, err = l.run(ctx, l.CRIU.env(conf), "lxc-checkpoint", "-P", l.Path, "-n", name, "-r", "-D", imgDir)
	if err != nil {
		return fmt.Errorf("restore of container %q: %w%s", name, err, logTail(filepath.Join(imgDir, "restore.log")))
	}
	return nil
}

// Destroy removes a stopped container.
func (l *LXC) Destroy(ctx context.Context, name string) error {
	_, err := l.run(ctx, nil, "lxc-destroy", "-P", l.Path, "-n", name)
	return err
}

// Kind is "lxc".
func (l *LXC) Kind() string { return "lxc" }

// NodeArch is the node's ISA.
func (l *LXC) NodeArch() string { return l.Arch }

// Has reports whether the container's directory exists.
func (l *LXC) Has(_ context.Context, name string) (bool, error) {
	_, err := os.Stat(l.Dir(name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Trees: the container's directory (config, rootfs, ecrae.id) travels
// with the images.
func (l *LXC) Trees(name string) map[string]string { return map[string]string{"ct": l.Dir(name)} }

// Received points the config at the container's new directory.
func (l *LXC) Received(name, sourceDir string) error {
	return rewriteConfig(filepath.Join(l.Dir(name), "config"), sourceDir, l.Dir(name))
}

// Recover restores the container from its own dump.
func (l *LXC) Recover(ctx context.Context, name, img, work string) error {
	return l.Restore(ctx, name, img, work)
}

// Discard removes the directory of a container never restored here.
func (l *LXC) Discard(_ context.Context, name string) { os.RemoveAll(l.Dir(name)) }

// Limits: none, lxc-checkpoint runs CRIU with CRIU_CONFIG_FILE.
func (l *LXC) Limits() (noLazy, noDirty string) { return "", "" }

// InitPID asks lxc-info for the container's init.
func (l *LXC) InitPID(ctx context.Context, name string) (int, error) {
	out, err := l.run(ctx, nil, "lxc-info", "-P", l.Path, "-n", name, "-p", "-H")
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("container %q: lxc-info gave pid %.100q", name, out)
	}
	return pid, nil
}

// logTail quotes the first error line of a CRIU log, "" when none.
func logTail(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	// The first error is the cause; the last is "Dumping FAILED".
	last := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "Error") && !strings.Contains(line, "RLIMIT_NOFILE") {
			last = line
			break
		}
	}
	if last == "" {
		return ""
	}
	if len(last) > 200 {
		last = last[:200]
	}
	return " (criu: " + strings.TrimSpace(last) + ")"
}

// NodeArch is the node's ISA as uname -m says it (x86_64, aarch64, ...).
func NodeArch() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Machine))
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
