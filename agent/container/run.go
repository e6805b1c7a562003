package container

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// runGroup runs argv in its own process group with env and returns its
// combined output. The output goes to a file, not a pipe: lxc-checkpoint -r
// leaves the container's monitor behind and a podman restore leaves conmon,
// each holding the command's stdout, so a pipe would never reach EOF.
// Cancelling ctx kills the whole group: the tools run CRIU as a child, and
// a lazy dump would otherwise wait for its page client for ever.
func runGroup(ctx context.Context, env, argv []string) (string, error) {
	f, err := os.CreateTemp("", "ecrae-run-*.out")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	out, rerr := os.ReadFile(f.Name())
	if err == nil && rerr != nil {
		err = rerr
	}
	return string(out), err
}
