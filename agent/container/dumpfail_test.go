package container

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMigrateUndumpable: a container CRIU cannot dump (its init is being
// traced by another process, as under a debugger: CRIU cannot seize it)
// gets an error naming it and the reason, and keeps running on the source.
func TestMigrateUndumpable(t *testing.T) {
	c, f := needCRIU(t)
	nc := startNATS(t)
	a := startNode(t, nc.ConnectedUrl(), "node-a", c, f, NodeArch())
	startNode(t, nc.ConnectedUrl(), "node-b", c, f, NodeArch())
	newCounterContainer(t, a.lxcpath, "ctr", 1, "")
	out, err := a.lxc.run(context.Background(), nil, "lxc-info", "-P", a.lxcpath, "-n", "ctr", "-p", "-H")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("lxc-info pid %q", out)
	}
	// The tracer is this goroutine's thread (ptrace binds to a thread). It
	// resumes the tracee at every stop, as strace would, until detach.
	attached := make(chan error)
	detach := make(chan struct{})
	detached := make(chan struct{})
	go func() {
		defer close(detached)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := syscall.PtraceAttach(pid); err != nil {
			attached <- err
			return
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WALL, nil)
		_ = syscall.PtraceCont(pid, 0)
		attached <- nil
		for {
			select {
			case <-detach:
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				for {
					if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil || ws.Stopped() {
						break
					}
				}
				_ = syscall.PtraceDetach(pid)
				_ = syscall.Kill(pid, syscall.SIGCONT)
				return
			default:
			}
			wpid, err := syscall.Wait4(pid, &ws, syscall.WALL|syscall.WNOHANG, nil)
			if err != nil {
				return
			}
			if wpid == pid && ws.Stopped() {
				sig := ws.StopSignal()
				if sig == syscall.SIGSTOP || sig == syscall.SIGTRAP {
					sig = 0
				}
				_ = syscall.PtraceCont(pid, int(sig))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if err := <-attached; err != nil {
		t.Skipf("cannot ptrace the container's init: %v", err)
	}
	defer func() { close(detach); <-detached }()
	srcCounter := filepath.Join(a.lxcpath, "ctr", "rootfs", "tmp", "counter")
	rep := ask(t, nc, "node-a", MigrateRequest{Container: "ctr", To: "node-b", Mode: ModeStopcopy})
	if rep.OK != "" || !strings.Contains(rep.Error, `dump of container "ctr"`) || !strings.Contains(rep.Error, "keeps running on node-a") {
		t.Fatalf("reply %+v: want the dump's failure and the container on node-a", rep)
	}
	t.Log(rep.Error)
	if st, err := a.lxc.State(context.Background(), "ctr"); err != nil || st != "RUNNING" {
		t.Fatalf("source: %s, %v", st, err)
	}
	last, _ := readInt(srcCounter)
	waitFor(t, time.Minute, "counter going on on the source", func() bool {
		n, err := readInt(srcCounter)
		return err == nil && n > last+5
	})
}
