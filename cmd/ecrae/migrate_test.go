package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/agent/container"
)

// TestMigrateUsage: bad flags are one line naming the flag (exit 2); what
// the service refuses is one line naming what (exit 1), and nothing is
// moved. (The migrations themselves are proven with real containers in
// agent/container, the rules in server's TestMigrateContainer.)
func TestMigrateUsage(t *testing.T) {
	addr := migrateService(t, map[string]container.MigrateReply{"ctr": {OK: "migrated"}})
	cases := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"migrate", "--to", "b"}, true, "one container name"},
		{[]string{"migrate", "ctr"}, true, "--to: no destination"},
		{[]string{"migrate", "ctr", "--to", "b", "--mode", "teleport"}, true, `--mode "teleport"`},
		{[]string{"migrate", "ctr", "--to", "b", "--migrate-timeout", "0s"}, true, "--migrate-timeout"},
		{[]string{"migrate", "ctr", "--to", "b", "--nats", "nats://x"}, true, "-nats"},
		{[]string{"migrate", "nope", "--to", "node-b", "--server", addr}, false, `container "nope": not in the live view`},
		{[]string{"migrate", "ctr", "--to", "node-b", "--from", "node-b", "--server", addr}, false, "from: container ctr runs on node-a"},
		{[]string{"migrate", "ctr", "--to", "node-c", "--server", addr}, false, `to: host "node-c" is not in the live view`},
	}
	for _, tc := range cases {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
			t.Errorf("%v: err %v, want %q (usage %v)", tc.args, err, tc.want, tc.usage)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error of more than one line: %q", tc.args, err)
		}
	}
}

// TestAgentContainerFlags: --containers and its flags are checked before
// the agent starts.
func TestAgentContainerFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent", "--containers", "docker"}, `--containers "docker": want lxc or podman`},
		{[]string{"agent", "--containers", "podman", "--precopy-rounds", "0"}, `--precopy-rounds 0`},
		{[]string{"agent", "--containers", "lxc", "--precopy-dirty-mb", "-1"}, `--precopy-dirty-mb -1`},
		{[]string{"agent", "--containers", "lxc", "--migrate-addr", "somewhere"}, `--migrate-addr "somewhere"`},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
