package container

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMigratePodman moves a real podman container (runc, CRIU 4.2) running
// a counter from one agent to another (two agents on this machine posing
// as two nodes, each with its own podman storage), as TestMigrate does for
// LXC: the container is in the view with its label's tag and limits, the
// counter goes on from where it was, the working set is intact, the same
// id runs on the destination and the source no longer has it. "no image
// there": the destination lacks the image and the source sends it;
// "executor": the rebalance executor's path (mode auto, which is
// stop-and-copy for podman).
func TestMigratePodman(t *testing.T) {
	c, f := needPodman(t)
	tarball := rootfsTar(t)
	for _, name := range []string{"stopcopy", "no image there", "executor"} {
		t.Run(name, func(t *testing.T) {
			nc := startNATS(t)
			view := startView(t, nc)
			a := startPodmanNode(t, nc.ConnectedUrl(), "node-a", c, f, tarball)
			destImage := tarball
			if name == "no image there" {
				destImage = ""
			}
			b := startPodmanNode(t, nc.ConnectedUrl(), "node-b", c, f, destImage)
			ws := wsMB()
			newPodmanCounter(t, a, "ctr", ws, "web-frontend")
			waitFor(t, time.Minute, "container in the view on node-a", func() bool {
				in, ok := containerOn(view, "node-a", "ctr")
				// --cpus 1.5 -> 2 vCPUs; --memory 3*ws+64 MB.
				return ok && in.Tag == "web-frontend" && in.Flavor.VCPUs == 2 && in.Flavor.MemoryMB == int64(3*ws+64)
			})
			before, err := a.pm.Get(context.Background(), "ctr")
			if err != nil {
				t.Fatal(err)
			}
			// The working set is ws×10^6 bytes; use is in MiB.
			if before.MemoryUsedMB<<20 < int64(ws)*1000000 || before.CPUSeconds <= 0 {
				t.Fatalf("usage %+v: want at least the %d MB working set and some CPU time", before, ws)
			}
			var last int
			waitFor(t, time.Minute, "counter past 10", func() bool {
				last, err = podmanReadInt(a, "ctr", "counter")
				return err == nil && last > 10
			})
			if name == "executor" {
				cl := &Client{NC: nc, View: view}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				if err := cl.LiveMigrate(ctx, before.ID, "node-b"); err != nil {
					t.Fatal(err)
				}
			} else {
				rep := ask(t, nc, "node-a", MigrateRequest{Container: "ctr", To: "node-b", Mode: ModeStopcopy})
				if rep.Error != "" || rep.OK == "" || rep.Mode != ModeStopcopy || rep.BytesSent < int64(ws)*1000000 {
					t.Fatalf("reply %+v: want stopcopy with at least the %d MB working set sent", rep, ws)
				}
				t.Logf("%s: %+v", name, rep)
			}
			if has, err := a.pm.Has(context.Background(), "ctr"); err != nil || has {
				t.Fatalf("the source still has the container (%v)", err)
			}
			after, err := b.pm.Get(context.Background(), "ctr")
			if err != nil || after.State != "RUNNING" || after.ID != before.ID || after.Tag != "web-frontend" {
				t.Fatalf("destination: %+v, %v; want RUNNING with id %s", after, err, before.ID)
			}
			// A restarted shell would count from 1 again.
			atMove, err := podmanReadInt(b, "ctr", "counter")
			if err != nil || atMove < last {
				t.Fatalf("counter on the destination %d (%v), was %d before the move", atMove, err, last)
			}
			waitFor(t, time.Minute, "counter to go on on the destination", func() bool {
				n, err := podmanReadInt(b, "ctr", "counter")
				return err == nil && n > atMove+5
			})
			waitFor(t, time.Minute, "container in the view on node-b only", func() bool {
				in, ok := containerOn(view, "node-b", "ctr")
				_, still := containerOn(view, "node-a", "ctr")
				return ok && !still && in.UUID == before.ID
			})
			root, err := podmanRootfs(b, "ctr")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(root, "tmp", "wslen")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Minute, "working set length rewritten", func() bool {
				n, err := readInt(filepath.Join(root, "tmp", "wslen"))
				return err == nil && n == ws*1000000
			})
		})
	}
}

// TestMigratePodmanRefused: what podman cannot do is refused with the
// reason, and so are bad destinations; the container keeps running.
func TestMigratePodmanRefused(t *testing.T) {
	c, f := needPodman(t)
	tarball := rootfsTar(t)
	nc := startNATS(t)
	a := startPodmanNode(t, nc.ConnectedUrl(), "node-a", c, f, tarball)
	startPodmanNode(t, nc.ConnectedUrl(), "node-b", c, f, tarball)
	// An LXC agent: it does not take podman containers.
	startNode(t, nc.ConnectedUrl(), "node-lxc", c, f, NodeArch())
	newPodmanCounter(t, a, "ctr", 1, "")
	for _, tc := range []struct {
		name string
		req  MigrateRequest
		want string
	}{
		{"postcopy", MigrateRequest{Container: "ctr", To: "node-b", Mode: ModePostcopy}, "podman cannot dump with lazy pages"},
		{"precopy", MigrateRequest{Container: "ctr", To: "node-b", Mode: ModePrecopy}, "podman cannot give CRIU the previous round's images"},
		{"unknown container", MigrateRequest{Container: "nope", To: "node-b"}, `node-a: container "nope": no such container`},
		{"a flag as the name", MigrateRequest{Container: "--all", To: "node-b"}, `node-a: container "--all": no such container`},
		{"destination down", MigrateRequest{Container: "ctr", To: "node-gone"}, `destination "node-gone" is down`},
		{"other runtime", MigrateRequest{Container: "ctr", To: "node-lxc"}, "node-lxc runs lxc containers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := ask(t, nc, "node-a", tc.req)
			if rep.OK != "" || !strings.Contains(rep.Error, tc.want) {
				t.Fatalf("reply %+v: want an error with %q", rep, tc.want)
			}
			if st, err := a.pm.State(context.Background(), "ctr"); err != nil || st != "RUNNING" {
				t.Fatalf("container after a refused migration: %s, %v", st, err)
			}
		})
	}
}

// TestMigratePodmanDestinationFull: the destination's state directory is a
// real 8 MB tmpfs, too small for the 20 MB checkpoint: the transfer fails
// there, and the source restores the container from the checkpoint podman
// kept with it; the counter goes on from its value (same memory).
func TestMigratePodmanDestinationFull(t *testing.T) {
	c, f := needPodman(t)
	tarball := rootfsTar(t)
	nc := startNATS(t)
	a := startPodmanNode(t, nc.ConnectedUrl(), "node-a", c, f, tarball)
	b := startPodmanNode(t, nc.ConnectedUrl(), "node-b", c, f, tarball)
	if err := os.MkdirAll(b.m.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", b.m.StateDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", b.m.StateDir).Run() })
	newPodmanCounter(t, a, "ctr", 20, "")
	var last int
	waitFor(t, time.Minute, "counter past 10", func() bool {
		var err error
		last, err = podmanReadInt(a, "ctr", "counter")
		return err == nil && last > 10
	})
	rep := ask(t, nc, "node-a", MigrateRequest{Container: "ctr", To: "node-b", Mode: ModeStopcopy})
	if rep.OK != "" || !strings.Contains(rep.Error, "no space left on device") || !strings.Contains(rep.Error, "restored and runs on node-a") {
		t.Fatalf("reply %+v: want the destination's ENOSPC and the container restored on node-a", rep)
	}
	t.Log(rep.Error)
	if st, err := a.pm.State(context.Background(), "ctr"); err != nil || st != "RUNNING" {
		t.Fatalf("source: %s, %v", st, err)
	}
	if has, err := b.pm.Has(context.Background(), "ctr"); err != nil || has {
		t.Fatalf("the destination kept a container (%v)", err)
	}
	// A restarted shell would count from 1 again.
	if n, err := podmanReadInt(a, "ctr", "counter"); err != nil || n < last {
		t.Fatalf("counter on the source after the failure %d (%v), was %d", n, err, last)
	}
	waitFor(t, time.Minute, "counter going on on the source from its value", func() bool {
		n, err := podmanReadInt(a, "ctr", "counter")
		return err == nil && n > last+5
	})
}
