package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every command and subcommand answers -h and --help with its usage on
// stdout and exit status 0, without contacting a service.
func TestHelpEveryCommand(t *testing.T) {
	cmds := [][]string{
		{}, {"serve"}, {"agent"}, {"kb"}, {"kb", "show"}, {"kb", "export"}, {"kb", "import"}, {"kb", "validate"},
		{"kb", "history"}, {"kb", "diff"}, {"kb", "rollback"}, {"kb", "host"}, {"kb", "host", "set"},
		{"kb", "host", "delete"}, {"kb", "calibrate"}, {"kb", "flavors"}, {"kb", "flavors", "sync"}, {"score"}, {"place"}, {"hosts"}, {"pack"}, {"sim"},
		{"rebalance"}, {"rebalance", "plan"}, {"rebalance", "execute"}, {"rebalance", "show"}, {"rebalance", "list"},
		{"rebalance", "cancel"}, {"rebalance", "abort"}, {"tosca"}, {"tosca", "resolve"}, {"tosca", "hot"},
		{"tosca", "deploy"}, {"audit"}, {"power"}, {"power", "status"}, {"power", "on"}, {"power", "off"}, {"power", "history"},
		{"migrate"}, {"cluster"}, {"cluster", "status"}, {"version"},
	}
	for _, c := range cmds {
		for _, h := range []string{"-h", "--help"} {
			args := append(append([]string{}, c...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				err := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
				if code := exitCode(err); code != exitOK {
					t.Fatalf("exit %d (%v), want 0", code, err)
				}
				if stderr.Len() != 0 {
					t.Errorf("stderr not empty: %q", stderr.String())
				}
				// A flag set's usage ("Usage of ...") or a command's own text ("ecrae power status|on|...").
				if !strings.Contains(strings.ToLower(stdout.String()), "usage") && !strings.HasPrefix(stdout.String(), "ecrae ") {
					t.Errorf("stdout has no usage: %q", stdout.String())
				}
			})
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("boom"), 1},
		{errUsage, 2},
		{errPartial, 3},
		{errors.Join(errors.New("plan p1"), errPartial), 3},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), args, nil, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.HasPrefix(stdout.String(), "ecrae ") || !strings.Contains(stdout.String(), "  go        go1.") {
			t.Errorf("%v: %q", args, stdout.String())
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-12-04T21:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "ecrae v1.2.3\n  revision  abc123\n  time      2026-12-04T21:00:00Z\n  modified  true\n  go        go1.26.8\n"
	if got := versionText(bi); got != want {
		t.Errorf("versionText:\n%s\nwant\n%s", got, want)
	}
}

// A service's InvalidArgument names the flag the user typed, not the
// request field; the server comes from ECRAE_SERVER without --server.
func TestErrorsNameFlags(t *testing.T) {
	noCloud(t)
	c, _ := startServe(t, t.TempDir())
	t.Setenv("ECRAE_SERVER", c.grpcAddr)
	_, err := cli(t, "score", "--flavor", "m1.smal")
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), `--flavor: unknown flavor "m1.smal"`) {
		t.Errorf("score --flavor: %v", err)
	}
	_, err = cli(t, "score", "--vcpus", "2", "--ram-mb", "0")
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--ram-mb must be positive") {
		t.Errorf("score --ram-mb 0: %v", err)
	}
	_, err = cli(t, "score", "--vcpus", "2", "--ram-mb", "512", "--tag", "nope")
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), `--tag: unknown tag "nope"`) {
		t.Errorf("score --tag: %v", err)
	}
	for _, e := range []error{
		flagError(status.Error(codes.InvalidArgument, "instances[0].flavor.memory_mb: must be positive, got 0"), instanceFlags()),
		flagError(status.Error(codes.InvalidArgument, "instance.flavor.memory_mb: must be positive, got 0"), instanceFlags()),
	} {
		if e.Error() != "usage: --ram-mb: must be positive, got 0" {
			t.Errorf("flagError: %v", e)
		}
	}
	if e := flagError(status.Error(codes.InvalidArgument, "max_per_host: must not be negative, got -1"), planFlags()); e.Error() != "usage: --max-per-host: must not be negative, got -1" {
		t.Errorf("flagError: %v", e)
	}
	// Checked before any call: one line naming the flag.
	for _, v := range []string{"1.5", "-0.1", "NaN"} {
		_, err := cli(t, "rebalance", "plan", "--relieve", v, "--server", "127.0.0.1:1")
		if exitCode(err) != exitUsage || !strings.HasPrefix(err.Error(), "usage: --relieve "+v+": ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("rebalance plan --relieve %s: %v", v, err)
		}
	}
	// Fields named in passing become flags too; ordinary words stay.
	e := flagError(status.Error(codes.InvalidArgument, `instance.flavor.name: unknown flavor "x" (give vcpus and memory_mb, or a flavor of the knowledge base)`), instanceFlags())
	if want := `usage: --flavor: unknown flavor "x" (give --vcpus and --ram-mb, or a flavor of the knowledge base)`; e.Error() != want {
		t.Errorf("flagError: %v, want %s", e, want)
	}
	if _, err := cli(t, "score", "--flavor", "nope"); !strings.Contains(fmt.Sprint(err), "give --vcpus and --ram-mb") {
		t.Errorf("score --flavor nope: %v", err)
	}
}

// TestUsageNamesEverySubcommand: the top-level usage lists each kb
// subcommand and both container runtimes, so `ecrae -h` leads to them.
func TestUsageNamesEverySubcommand(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, nil, &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"history", "diff", "rollback", "host", "flavors", "calibrate", "--containers lxc|podman"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("ecrae --help does not name %q:\n%s", want, stdout.String())
		}
	}
}

// TestTimeoutMustBePositive: --timeout 0 or negative is a usage error naming
// the flag, not a DeadlineExceeded from every call.
func TestTimeoutMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		_, _, err := runCLI(t, "hosts", "--timeout", v, "--server", "127.0.0.1:1")
		if exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "--timeout "+v) {
			t.Errorf("--timeout %s: %v", v, err)
		}
	}
}
