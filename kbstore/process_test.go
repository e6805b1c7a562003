//go:build unix

package kbstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests run this test binary again as a second process
// (TestHelperProcess), because file locks and crashes are per process.
const (
	envHelper = "KBSTORE_TEST_HELPER"
	envDB     = "KBSTORE_TEST_DB"
)

// TestHelperProcess is not a test: it is the child's entry point.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("helper process for the multi-process tests")
	}
	if err := helperMain(mode, os.Getenv(envDB)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperMain(mode, path string) error {
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	def, err := Default()
	if err != nil {
		return err
	}
	switch mode {
	case "hold":
		// Hold the lock until the parent closes our stdin.
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	case "crash-mid-import":
		// Die by SIGKILL, with no chance to clean up, once half of the
		// new KB is written inside the import's transaction.
		total := len(def.Architectures) + len(def.Tags) + len(def.Flavors) + len(def.Hosts)
		s.afterPut = func(written int) {
			if written == total/2 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
		if err := s.Import(ctx, def, true); err != nil {
			return err
		}
		return errors.New("import committed; the crash hook never fired")
	case "import-loop":
		// Flip between two KBs until killed from outside.
		kbs := []*KB{testKB(), def}
		for i := 0; ; i++ {
			if err := s.Import(ctx, kbs[i%2], true); err != nil {
				return err
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// startHelper runs the child in mode on path; it returns once the child
// printed "ready" (if wantReady), with a pipe to its stdin.
func startHelper(t *testing.T, mode, path string, wantReady bool) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), envHelper+"="+mode, envDB+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Never leave our own child behind if a check fails early.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if wantReady {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && sc.Text() != "ready" {
		}
		if sc.Err() != nil || sc.Text() != "ready" {
			t.Fatalf("helper %s never got ready: %v", mode, sc.Err())
		}
	} else {
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
	}
	return cmd, stdin
}

// killedBySignal reports whether err is a child's death by SIGKILL.
func killedBySignal(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

func TestSecondProcessGetsLockError(t *testing.T) {
	path := tempDB(t)
	cmd, stdin := startHelper(t, "hold", path, true)

	start := time.Now()
	_, err := Open(path, Options{Timeout: 200 * time.Millisecond})
	waited := time.Since(start)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while another process holds the file = %v, want ErrLocked", err)
	}
	want := "knowledge base " + path + " is locked by another process (waited 200ms)"
	if err.Error() != want {
		t.Errorf("lock error\n got: %s\nwant: %s", err, want)
	}
	if waited < 200*time.Millisecond {
		t.Errorf("Open gave up after %v, before its 200ms timeout", waited)
	}

	// Once the holder exits, the file opens.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	openStore(t, path)
}

func TestCrashMidImportKeepsOldKB(t *testing.T) {
	path := tempDB(t)
	old := testKB()
	func() {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Import(context.Background(), old, true); err != nil {
			t.Fatal(err)
		}
	}()

	cmd, _ := startHelper(t, "crash-mid-import", path, false)
	if err := cmd.Wait(); !killedBySignal(err) {
		t.Fatalf("child ended with %v, want death by SIGKILL mid-import", err)
	}

	s := openStore(t, path) // its cleanup runs tx.Check
	if diff := cmp.Diff(sortedCopy(old), snapshot(t, s)); diff != "" {
		t.Errorf("after a crash mid-import the KB changed (-old +now):\n%s", diff)
	}
	checkIntegrity(t, s.db)
}

func TestKillAtRandomMomentLeavesOneWholeKB(t *testing.T) {
	// SIGKILL a process that commits imports back to back, at random
	// moments, so some kills land inside bbolt's commit. The file must
	// then hold one of the two KBs, whole. (A process crash, not a power
	// cut: the kernel still writes out what the process wrote.)
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	a, b := sortedCopy(testKB()), sortedCopy(def)
	path := tempDB(t)
	for round := range 6 {
		cmd, _ := startHelper(t, "import-loop", path, true)
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); !killedBySignal(err) {
			t.Fatalf("round %d: child ended with %v, want SIGKILL", round, err)
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		checkIntegrity(t, s.db)
		got := snapshot(t, s)
		if !cmp.Equal(a, got) && !cmp.Equal(b, got) {
			t.Errorf("round %d: KB is neither import (-testKB +got):\n%s", round, cmp.Diff(a, got))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
