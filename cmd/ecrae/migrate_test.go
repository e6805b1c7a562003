package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// TestMigrateUsage: bad flags are one line naming the flag; a source host
// without an agent is named. (The migrations themselves are proven with
// real containers in agent/container.)
func TestMigrateUsage(t *testing.T) {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	cases := []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"migrate", "--to", "b"}, true, "one container name"},
		{[]string{"migrate", "ctr"}, true, "--to: no destination"},
		{[]string{"migrate", "ctr", "--to", "b", "--mode", "teleport"}, true, `--mode "teleport"`},
		{[]string{"migrate", "ctr", "--to", "b", "--migrate-timeout", "0s"}, true, "--migrate-timeout"},
		{[]string{"migrate", "ctr", "--to", "b", "--from", "node-a", "--nats", s.ClientURL()}, false, `no agent with --containers answers for host "node-a"`},
	}
	for _, tc := range cases {
		_, _, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
			t.Errorf("%v: err %v, want %q (usage %v)", tc.args, err, tc.want, tc.usage)
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
