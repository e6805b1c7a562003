package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CRIU is the CRIU binary the agent uses (4.x: Debian 12's 3.17 cannot run
// on recent kernels).
type CRIU struct {
	Bin string
}

// Features is what `criu check` says this node can do.
type Features struct {
	// Lazy: userfaultfd works, post-copy is possible.
	Lazy bool
	// DirtyTrack: soft-dirty memory tracking, needed by iterative pre-copy.
	DirtyTrack bool
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
	return Features{Lazy: feat("uffd-noncoop"), DirtyTrack: feat("mem_dirty_track")}, nil
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
