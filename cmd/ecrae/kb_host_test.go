package main

import (
	"fmt"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// announceCompute publishes Nova's service.create for host on the real
// embedded NATS, so the live view knows it.
func announceCompute(t *testing.T, natsAddr, host string) {
	t.Helper()
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	svc := fmt.Sprintf(`{"event_type": "service.create", "message_id": "m-%s", "priority": "INFO", "publisher_id": "nova-compute:%s",
		"timestamp": %q, "payload": {"nova_object.name": "ServiceStatusPayload", "nova_object.namespace": "nova", "nova_object.version": "1.1",
		"nova_object.data": {"binary": "nova-compute", "host": %q, "disabled": false, "forced_down": false, "topic": "compute", "uuid": "9b0c8f1e-0000-4000-8000-000000000001", "version": 64}}}`,
		host, host, time.Now().Add(-time.Minute).UTC().Format("2006-01-02 15:04:05.000000"), host)
	if err := nc.Publish("nova.versioned_notifications.info.service.create", []byte(svc)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// kb host set changes only the flags given, refuses an architecture of
// another ISA than the live view's unless --force, and warns about a host
// the view does not know.
func TestKBHostSetForgives(t *testing.T) {
	noCloud(t)
	c, _ := startServe(t, t.TempDir())
	srv := "--server=" + c.grpcAddr
	announceCompute(t, c.natsAddr, "node-1")
	listHosts(t, srv, func(r *ecraev1.ListLiveHostsResponse) bool { return hostNamed(r, "node-1") != nil })

	// Nova reported no cpu_info: the view learns the ISA from the model set here.
	out, err := cli(t, "kb", "host", "set", "node-1", "--arch", "ibm-x3550-m3-x5670", "--rack", "r7", "--power-cap", "300", srv)
	if err != nil || strings.Contains(out, "warning") {
		t.Fatalf("set: %v\n%s", err, out)
	}
	listHosts(t, srv, func(r *ecraev1.ListLiveHostsResponse) bool { return hostNamed(r, "node-1").GetIsa() == "x86_64" })
	// Only --power-cap: the rack and the architecture stay.
	if out, err = cli(t, "kb", "host", "set", "node-1", "--power-cap", "250", srv); err != nil ||
		!strings.Contains(out, "host node-1 → ibm-x3550-m3-x5670 (rack r7, power cap 250 W)") {
		t.Fatalf("set --power-cap: %v\n%s", err, out)
	}
	// An aarch64 model for an x86_64 host: refused, naming the flag; --force sets it.
	out, err = cli(t, "kb", "host", "set", "node-1", "--arch", "falinux-700ec-nm-altra-q80", srv)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--arch falinux-700ec-nm-altra-q80 is aarch64, but host node-1 is x86_64") {
		t.Fatalf("ISA mismatch: %v\n%s", err, out)
	}
	if out, err = cli(t, "kb", "host", "set", "node-1", "--arch", "falinux-700ec-nm-altra-q80", "--force", srv); err != nil ||
		!strings.Contains(out, "warning: --force") || !strings.Contains(out, "(rack r7, power cap 250 W)") {
		t.Fatalf("--force: %v\n%s", err, out)
	}
	// A typo in the architecture: did you mean.
	if _, err = cli(t, "kb", "host", "set", "node-1", "--arch", "ibm-x3550-m3-x567", srv); exitCode(err) != exitUsage ||
		!strings.Contains(err.Error(), `did you mean "ibm-x3550-m3-x5670"?`) {
		t.Fatalf("unknown arch: %v", err)
	}
	// A host nobody knows: set, with a warning that suggests the known one.
	if out, err = cli(t, "kb", "host", "set", "node-l", "--arch", "ibm-x3550-m3-x5670", srv); err != nil ||
		!strings.Contains(out, `warning: the live view does not know host "node-l" (did you mean "node-1"?)`) {
		t.Fatalf("unknown host: %v\n%s", err, out)
	}
	// A name the KB refuses: a usage error naming the argument, not the proto field.
	if _, err = cli(t, "kb", "host", "set", "bad name!", "--arch", "ibm-x3550-m3-x5670", srv); exitCode(err) != exitUsage ||
		!strings.Contains(err.Error(), `NAME: "bad name!" may only contain`) || strings.Contains(err.Error(), "host.name") {
		t.Fatalf("bad name: %v", err)
	}
	// A new host needs --arch.
	if _, err = cli(t, "kb", "host", "set", "node-9", "--rack", "r1", srv); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--arch is required") {
		t.Fatalf("new host without --arch: %v", err)
	}
}
