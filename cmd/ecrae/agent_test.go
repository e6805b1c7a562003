package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/events"
)

// TestAgentOnceJSON runs `ecrae agent --once --json` on a powercap tree
// and a /proc/stat built in a temporary directory (sysfs and procfs cannot
// be faked otherwise): the line printed is a sample the service accepts.
func TestAgentOnceJSON(t *testing.T) {
	dir := t.TempDir()
	zone := filepath.Join(dir, "powercap", "intel-rapl:0")
	if err := os.MkdirAll(zone, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{
		filepath.Join(zone, "name"): "package-0\n", filepath.Join(zone, "energy_uj"): "5000000\n",
		filepath.Join(zone, "max_energy_range_uj"): "262143328850\n",
		filepath.Join(dir, "stat"):                 "cpu 10 0 0 90 0 0 0 0\n",
	} {
		if err := os.WriteFile(f, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"agent", "--once", "--json", "--host", "compute-9",
		"--sources", "rapl,proc", "--rapl-root", filepath.Join(dir, "powercap"),
		"--proc-stat", filepath.Join(dir, "stat"), "--window", "10ms"}, nil, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	ev, err := events.DecodeSample("compute-9", out.Bytes())
	if err != nil {
		t.Fatalf("the service rejects %s: %v", out.Bytes(), err)
	}
	// The counter did not move in 10 ms: 0 W, measured by RAPL.
	if !ev.Power.HasWatts || ev.Power.Watts != 0 || ev.Power.Host != "compute-9" {
		t.Errorf("decoded %+v", ev.Power)
	}
	var s map[string]any
	if err := json.Unmarshal(out.Bytes(), &s); err != nil || s["source"] != "rapl" || s["watts_source"] != "measured" {
		t.Errorf("sample %s", out.Bytes())
	}
}

func TestAgentFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sources", "rapl,snmp"}, `--sources: unknown source "snmp"`},
		{[]string{"--interval", "0s"}, "--interval"},
		{[]string{"--json"}, "--json goes with --once"},
		{[]string{"--bmc", "http://x", "--host", "h"}, "--bmc"},
		{[]string{"--bmc", "ipmi://10.0.0.1", "--host", "h"}, "needs --bmc-credentials"},
		{[]string{"--redfish", "ftp://x", "--host", "h"}, "--redfish"},
		{[]string{"--host", "node 1"}, "--host"},
		{[]string{"--host", "h", "--sources", "redfish"}, "redfish needs --redfish"},
		{[]string{"--host", "node.>"}, "cannot be in a NATS subject"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), append([]string{"agent"}, c.args...), nil, &out, &errb)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}
