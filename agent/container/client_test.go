package container

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
)

// TestClientSettle: Settle answers from a report newer than the one the
// view held when it began, that does not mark the container migrating;
// until then (the report it began with, a migrating one) it waits, and
// says where the container was last seen when its context ends.
func TestClientSettle(t *testing.T) {
	view := hostview.New(hostview.Options{StaleAfter: time.Hour})
	t0 := time.Now()
	report := func(host string, at time.Time, task string) {
		rep := hostview.ContainerReport{Host: host, At: at, Arch: "x86_64"}
		if task != "-" {
			rep.Instances = []hostview.Instance{{UUID: "c1", Name: "c1", Kind: hostview.KindContainer, State: "active",
				PowerState: "running", TaskState: task, Flavor: hostview.Flavor{VCPUs: 1, MemoryMB: 64}}}
		}
		view.Apply(0, &hostview.Event{Kind: hostview.KindContainers, Type: "ecrae.containers", Timestamp: at, Containers: rep})
	}
	c := &Client{View: view}
	report("h1", t0, "") // seen before the takeover: not evidence of what happened since

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Settle(short, "c1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Settle on the report it began with: %v, want to wait", err)
	}

	done := make(chan string, 1)
	go func() {
		h, err := c.Settle(context.Background(), "c1")
		if err != nil {
			h = err.Error()
		}
		done <- h
	}()
	report("h1", t0.Add(time.Second), TaskMigrating) // the agent is moving it
	report("h1", t0.Add(2*time.Second), "-")         // dumped: on no host
	select {
	case h := <-done:
		t.Fatalf("settled at %q while the container was in flight", h)
	case <-time.After(200 * time.Millisecond):
	}
	report("h2", t0.Add(3*time.Second), "") // restored on h2
	select {
	case h := <-done:
		if h != "h2" {
			t.Errorf("settled on %q, want h2", h)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("not settled after the destination's report")
	}
}
