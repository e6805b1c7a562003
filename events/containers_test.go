package events

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
)

func TestDecodeContainers(t *testing.T) {
	ev, err := DecodeContainers("node-a", []byte(`{"timestamp":"2026-12-04T10:00:00Z","arch":"x86_64","runtime":"lxc","containers":[
		{"name":"web1","id":"id-1","state":"RUNNING","cpu_limit":1.5,"memory_limit_mb":512,"memory_used_mb":80,"arch":"x86_64","tag":"web-frontend"},
		{"name":"batch","id":"id-2","state":"FROZEN","memory_used_mb":0,"migrating":true}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r := ev.Containers
	if ev.Kind != hostview.KindContainers || r.Host != "node-a" || r.Arch != "x86_64" || len(r.Instances) != 2 {
		t.Fatalf("%+v", ev)
	}
	// web1: ceil(1.5 cores) = 2 vCPUs, its memory limit; batch: no quota
	// = 1 vCPU, no limit and 0 MB used = 1 MB, frozen = paused.
	w, b := r.Instances[0], r.Instances[1]
	if w.Flavor.VCPUs != 2 || w.Flavor.MemoryMB != 512 || w.Tag != "web-frontend" || w.Kind != "container" || w.PowerState != "running" || w.TaskState != "" {
		t.Errorf("web1 %+v", w)
	}
	// batch is being migrated by its agent: task state migrating.
	if b.Flavor.VCPUs != 1 || b.Flavor.MemoryMB != 1 || b.PowerState != "paused" || b.TaskState != "migrating" {
		t.Errorf("batch %+v", b)
	}

	bad := []struct{ body, want string }{
		{`[]`, "not a JSON object"},
		{`{"host":"node-b","timestamp":"2026-12-04T10:00:00Z"}`, "on the subject of"},
		{`{"timestamp":"2099-12-04T10:00:00Z"}`, "later than now"},
		{`{"containers":[]}`, "timestamp"},
		{`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"name":"a"}]}`, "containers[0].id"},
		{`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"name":"a","id":"x"},{"name":"b","id":"x"}]}`, "twice"},
		{`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"id":"x"}]}`, "containers[0].name"},
		{`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"name":"a","id":"x","cpu_limit":-1}]}`, "cpu_limit"},
		{`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"name":"a","id":"x","memory_used_mb":-5}]}`, "memory_used_mb"},
	}
	for _, tc := range bad {
		if _, err := DecodeContainers("node-a", []byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.body, err, tc.want)
		}
	}
}

func FuzzDecodeContainers(f *testing.F) {
	f.Add([]byte(`{"timestamp":"2026-12-04T10:00:00Z","containers":[{"name":"a","id":"x","cpu_limit":2}]}`))
	f.Add([]byte(`{"host":"h","timestamp":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeContainers("h", b)
		if err != nil {
			return
		}
		for _, in := range ev.Containers.Instances {
			if in.UUID == "" || in.Flavor.VCPUs < 1 || in.Flavor.MemoryMB < 1 || in.Kind != hostview.KindContainer {
				t.Fatalf("accepted %+v", in)
			}
		}
	})
}

// TestContainerReportsThroughTheStream: reports reach the view through the
// stream and the durable consumer; a malformed one is counted under
// ecrae.containers and the next good one still applies.
func TestContainerReportsThroughTheStream(t *testing.T) {
	nc, js := connect(t, startNATS(t, t.TempDir()))
	v := hostview.New(hostview.Options{})
	c, err := New(nc, v, Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-c.Ready()
	now := time.Now().UTC()
	publish(t, js, "ecrae.containers.node-a", []byte(`{"timestamp": "`+now.Format(time.RFC3339Nano)+`", "containers": [{"name": "x"}]}`))
	last := publish(t, js, "ecrae.containers.node-a", []byte(`{"timestamp": "`+now.Add(time.Second).Format(time.RFC3339Nano)+`", "arch": "x86_64",
		"containers": [{"name": "web1", "id": "id-1", "state": "RUNNING", "memory_limit_mb": 256, "tag": "web-frontend"}]}`))
	waitSeq(t, v, last)
	waitCounted(t, c.m, 2)
	ins := v.Instances("node-a")
	if len(ins) != 1 || ins[0].Kind != hostview.KindContainer || ins[0].Name != "web1" {
		t.Fatalf("view: %+v", ins)
	}
	if got := counterValue(t, c.m.events.WithLabelValues(TypeContainers, "malformed")); got != 1 {
		t.Errorf("malformed reports %v, want 1", got)
	}
	if got := counterValue(t, c.m.events.WithLabelValues(TypeContainers, "applied")); got != 1 {
		t.Errorf("applied reports %v, want 1", got)
	}
}
