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
)

// CRIU is the CRIU binary the agent uses (4.x: Debian 12's 3.17 cannot run
// on recent kernels).
type CRIU struct {
	Bin string
}

// Features is what `criu check` says this node can do.
type Features struct {
	// Lazy: userfaultfd works and pipes may be large enough: post-copy is
	// possible. NoLazy says why not when it is false.
	Lazy   bool
	NoLazy string
	// DirtyTrack: soft-dirty memory tracking, needed by iterative pre-copy.
	// NoDirty says why not when it is false.
	DirtyTrack bool
	NoDirty    string
}

// Check runs `criu check` and probes the two features migration modes need.
func (c CRIU) Check(ctx context.Context) (Features, error) {
	out, err := exec.CommandContext(ctx, c.Bin, "check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Looks good") {
		return Features{}, fmt.Errorf("criu check (%s): %w: %s", c.Bin, errors.Join(err, errors.New("not \"Looks good\"")), lastLine(out))
	}
	feat := func(name string) bool {
		return exec.CommandContext(ctx, c.Bin, "check", "--feature", name).Run() == nil
	}
	f := Features{Lazy: feat("uffd-noncoop"), DirtyTrack: feat("mem_dirty_track")}
	if !f.Lazy {
		f.NoLazy = "userfaultfd is not available here (criu check --feature uffd-noncoop fails)"
	} else if n := pipeMaxSize(); n < minPipeMax {
		// A lazy dump fails with "page-pipe: tee: 65536: Operation not
		// permitted" below it (tools/criu/README.md).
		f.Lazy, f.NoLazy = false, fmt.Sprintf("fs.pipe-max-size is %d, post-copy needs %d (sysctl -w fs.pipe-max-size=%d)", n, minPipeMax, minPipeMax)
	}
	if !f.DirtyTrack {
		f.NoDirty = noDirtyKernel
	}
	return f, nil
}

const minPipeMax = 4 << 20

const noDirtyKernel = "this kernel has no soft-dirty memory tracking (criu check --feature mem_dirty_track fails)"

func pipeMaxSize() int {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// env is the environment of lxc-checkpoint: this CRIU first on PATH (LXC
// runs "criu" from PATH) and a CRIU config file with the options LXC has
// no flag for.
func (c CRIU) env(configFile string) []string {
	env := os.Environ()
	env = append(env, "PATH="+filepath.Dir(c.Bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return append(env, "CRIU_CONFIG_FILE="+configFile)
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
