package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ecrae/ecrae/agent"
	"github.com/ecrae/ecrae/agent/container"
)

// containerFlags are `ecrae agent`'s container flags: report the node's
// containers and migrate them with CRIU.
type containerFlags struct {
	runtime, lxcpath, criu, migrateAddr, stateDir string
	podman, podmanFlags, podmanRuntime            string
	precopyRounds                                 int
	precopyDirtyMB                                float64
}

func (f *containerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.runtime, "containers", "", "report this node's containers and migrate them with CRIU: lxc or podman (off when empty)")
	fs.StringVar(&f.lxcpath, "lxcpath", "/var/lib/lxc", "with --containers lxc: the LXC containers' path")
	fs.StringVar(&f.podman, "podman", "podman", "with --containers podman: the podman binary")
	fs.StringVar(&f.podmanFlags, "podman-flags", "", "with --containers podman: podman's global flags on every call, space-separated (e.g. \"--root /srv/ctr --storage-driver vfs --cgroup-manager cgroupfs\")")
	fs.StringVar(&f.podmanRuntime, "podman-runtime", "runc", "with --containers podman: the OCI runtime podman checkpoints with (runc; Debian's crun cannot checkpoint)")
	fs.IntVar(&f.precopyRounds, "precopy-rounds", 5, "with --containers: pre-copy's most pre-dump rounds before the final dump")
	fs.Float64Var(&f.precopyDirtyMB, "precopy-dirty-mb", 16, "with --containers: pre-copy stops its rounds once one wrote at most this many MB of pages (the final dump copies about that much while frozen)")
	fs.StringVar(&f.criu, "criu", "criu", "with --containers: the CRIU 4.x binary (scripts/criu.sh puts one in ./bin/criu)")
	fs.StringVar(&f.migrateAddr, "migrate-addr", "127.0.0.1", "with --containers: the address other agents reach this one at for images and pages (a port per migration)")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/ecrae-agent", "with --containers: where images are kept during a migration")
}

// check validates the flags before anything starts.
func (f *containerFlags) check() error {
	switch f.runtime {
	case "", "lxc", "podman":
	default:
		return fmt.Errorf("%w: --containers %q: want lxc or podman", errUsage, truncateArg(f.runtime))
	}
	if f.precopyRounds < 1 || f.precopyRounds > 100 {
		return fmt.Errorf("%w: --precopy-rounds %d: want 1 to 100", errUsage, f.precopyRounds)
	}
	if !(f.precopyDirtyMB > 0) || f.precopyDirtyMB > 1<<20 {
		return fmt.Errorf("%w: --precopy-dirty-mb %v: want more than 0 (MB)", errUsage, f.precopyDirtyMB)
	}
	if f.runtime != "" && net.ParseIP(f.migrateAddr) == nil {
		return fmt.Errorf("%w: --migrate-addr %q: want an IP address", errUsage, truncateArg(f.migrateAddr))
	}
	return nil
}

// start runs the container reporter and the migrator until ctx ends; wait
// returns once both have stopped.
func (f *containerFlags) start(ctx context.Context, nc *nats.Conn, host string, interval time.Duration, log *slog.Logger) (wait func(), err error) {
	if f.runtime == "" {
		return func() {}, nil
	}
	bin, err := lookCRIU(f.criu)
	if err != nil {
		return nil, err
	}
	c := container.CRIU{Bin: bin}
	feat, err := c.Check(ctx)
	if err != nil {
		return nil, fmt.Errorf("--criu: %w", err)
	}
	var rt container.Runtime = &container.LXC{Path: f.lxcpath, CRIU: c, Arch: container.NodeArch()}
	where := f.lxcpath
	if f.runtime == "podman" {
		rt = &container.Podman{Bin: f.podman, Flags: strings.Fields(f.podmanFlags), OCIRuntime: f.podmanRuntime, CRIU: c, Arch: container.NodeArch()}
		where = f.podmanFlags
	}
	rep := container.NewReporter(host, rt, &agent.NATSPublisher{NC: nc}, interval, log)
	pol := container.PrecopyPolicy{MaxRounds: f.precopyRounds, DirtyPages: int64(f.precopyDirtyMB * (1 << 20) / 4096)}
	m := &container.Migrator{Host: host, RT: rt, CRIU: c, NC: nc, DataHost: f.migrateAddr, StateDir: f.stateDir, Features: feat, Precopy: pol, Log: log, Changed: rep.Wake}
	rep.Migrating = m.Migrating
	log.Info("containers", "runtime", f.runtime, "storage", where, "criu", bin, "postcopy", feat.Lazy, "no_postcopy_because", feat.NoLazy, "precopy", feat.DirtyTrack, "no_precopy_because", feat.NoDirty,
		"report_subject", container.ReportSubject(host), "migrate_subject", container.MigrateSubject(host))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rep.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := m.Serve(ctx); err != nil {
			log.Error("migrator", "err", err)
		}
	}()
	return wg.Wait, nil
}

// lookCRIU resolves --criu (a path, or a name on PATH) to an absolute path.
func lookCRIU(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("--criu %q: %w", truncateArg(name), err)
	}
	return filepath.Abs(p)
}
