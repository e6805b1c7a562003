package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// viewAt builds a view whose clock sits just after the captured scenario,
// so that nothing in it is stale.
func viewAt(t testing.TB, fs []fixture) *hostview.View {
	t.Helper()
	last, _, err := DecodeNotification(fs[len(fs)-1].Message)
	if err != nil || last == nil {
		t.Fatal("last fixture:", err)
	}
	now := last.Timestamp.Add(time.Second)
	return hostview.New(hostview.Options{StaleAfter: time.Hour, Now: func() time.Time { return now }})
}

// TestEveryEventTypeOverNATS replays the scenario captured from a real Nova
// through JetStream, one message at a time, and checks the view after each
// step that matters. Both envelopes are run.
func TestEveryEventTypeOverNATS(t *testing.T) {
	for _, name := range []string{plainFixtures, v2Fixtures} {
		t.Run(name, func(t *testing.T) {
			fs := loadFixtures(t, name)
			nc, js := connect(t, startNATS(t, t.TempDir()))
			v := viewAt(t, fs)
			r := startConsumer(t, nc, v, Config{})

			inst := func(uuid string) hostview.Instance { i, _ := v.Instance(uuid); return i }
			host := func(name string) hostview.Host {
				h, ok := v.Snapshot().Lookup(name, "")
				if !ok {
					return hostview.Host{}
				}
				return *h
			}
			var a, b string // the scenario's two instances
			n := map[string]int{}
			for i, f := range fs {
				typ := f.eventType(t)
				seq := publish(t, js, f.Subject, f.Message)
				waitSeq(t, v, seq)
				k := fmt.Sprintf("%s#%d", typ, n[typ])
				n[typ]++
				uuid := ""
				if ev, _, _ := DecodeNotification(f.Message); ev != nil && ev.Kind == hostview.KindInstance {
					uuid = ev.Instance.Instance.UUID
				}
				check := func(ok bool, format string, args ...any) {
					t.Helper()
					if !ok {
						t.Errorf("after message %d (%s): "+format, append([]any{i, k}, args...)...)
					}
				}
				switch k {
				case "instance.create.end#0":
					a = uuid
					check(inst(a).Host == "host1" && inst(a).Flavor.VCPUs == 1 && inst(a).Tag == "web", "%+v", inst(a))
					check(host("host1").Usage.VCPUs == 1 && host("host1").Instances == 1, "host1 %+v", host("host1").Usage)
				case "instance.live_migration_post_dest.end#0":
					check(inst(a).Host == "host2" && host("host1").Instances == 0 && host("host2").Usage.VCPUs == 1, "%+v", inst(a))
				case "instance.live_migration_post.end#0":
					check(inst(a).Host == "host2", "the source's post.end moved it back: %+v", inst(a))
				case "instance.resize_finish.end#0":
					check(inst(a).Host == "host1" && inst(a).Flavor.VCPUs == 2 && host("host2").Usage.VCPUs == 0, "%+v", inst(a))
				case "instance.resize_confirm.end#0":
					check(inst(a).Host == "host1" && inst(a).State == "active" && host("host1").Usage.VCPUs == 2, "%+v", inst(a))
				case "instance.resize_finish.end#1":
					check(inst(a).Host == "host2" && inst(a).Flavor.VCPUs == 1, "%+v", inst(a))
				case "instance.resize_revert.end#0":
					check(inst(a).Host == "host1" && inst(a).Flavor.VCPUs == 2 && host("host2").Usage.VCPUs == 0, "%+v", inst(a))
				case "instance.power_off.end#0":
					// Still holds its resources, but does no work.
					check(inst(a).State == "stopped" && host("host1").Usage.VCPUs == 2 && len(host("host1").Busy) == 0, "%+v %+v", inst(a), host("host1"))
				case "instance.power_on.end#0":
					check(inst(a).PowerState == "running" && len(host("host1").Busy) == 1, "%+v", host("host1").Busy)
				case "instance.rebuild.end#0":
					check(inst(a).Host == "host1", "%+v", inst(a))
				case "instance.shelve_offload.end#0":
					check(inst(a).Host == "" && inst(a).State == "shelved_offloaded" && host("host1").Instances == 0, "%+v", inst(a))
				case "instance.unshelve.end#0":
					check(inst(a).Host == "host1" && host("host1").Usage.VCPUs == 2, "%+v", inst(a))
				case "instance.create.end#1":
					b = uuid
					check(inst(b).Host == "host1", "%+v", inst(b))
				case "service.update#0":
					check(host("host1").Service == hostview.StateDown, "forced down: %q", host("host1").Service)
				case "instance.evacuate#0":
					check(inst(b).Host == "host1", "evacuate names the source: %+v", inst(b))
				case "instance.rebuild.end#1":
					check(inst(b).Host != "host1" && inst(b).Host != "" && host("host1").Usage.VCPUs == 2, "evacuated to %q", inst(b).Host)
				case "service.update#1":
					check(host("host2").Service == hostview.StateDisabled && host("host2").DisabledReason == "maintenance", "%+v", host("host2"))
				case "service.update#2":
					check(host("host2").Service == hostview.StateUp, "%q", host("host2").Service)
				case "service.create#3": // host1..3 were #0 (conductor) .. ; the 6th is host4
				case "service.delete#0":
					_, ok := v.Snapshot().Lookup("host4", "")
					check(!ok, "host4 still listed")
				case "instance.delete.end#0":
					_, ok := v.Instance(a)
					check(!ok && host("host1").Instances == 0, "a still known")
				case "instance.delete.end#1":
					_, ok := v.Instance(b)
					check(!ok, "b still known")
				case "metrics.update#0":
					check(host("host1").CPU.Value == 0.02 && host("host1").Compute, "%+v", host("host1").CPU)
				}
			}
			for _, typ := range requiredTypes {
				if got := r.count(t, typ, "applied"); got == 0 {
					t.Errorf("%s: none applied", typ)
				}
			}
			// Types the view has no use for are ignored, and counted.
			if got := r.count(t, "scheduler.select_destinations.start", "ignored"); got == 0 {
				t.Error("unknown types not counted as ignored")
			}
			// Services other than nova-compute are not hosts.
			if _, ok := v.Snapshot().Lookup("conductor", ""); ok {
				t.Error("nova-conductor taken for a compute host")
			}
			if got := r.total(t, "malformed") + r.total(t, "duplicate") + r.total(t, "stale"); got != 0 {
				t.Errorf("%v malformed, duplicate or stale in a clean capture", got)
			}
			if diff := cmp.Diff(reference(t, fs, hostview.Options{}).Snapshot().Hosts, v.Snapshot().Hosts); diff != "" {
				t.Errorf("over NATS vs applied directly (-direct,+nats):\n%s", diff)
			}
			// Every message was taken, in order, once.
			r.stop(t)
			if got := v.AppliedSeq(); got != uint64(len(fs)) {
				t.Errorf("applied up to %d of %d", got, len(fs))
			}
			if got := r.total(t, "already_applied"); got != 0 {
				t.Errorf("%v messages delivered twice", got)
			}
		})
	}
}

// TestRestartAppliesWhatItMissedOnce stops the service half way through the
// scenario (NATS included: it is embedded in the service), publishes the
// rest while it is down, and starts it again on the same store.
func TestRestartAppliesWhatItMissedOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		saved bool // the view is checkpointed (false: a crash lost it)
	}{{"with checkpoint", true}, {"view lost, rebuilt from the stream", false}} {
		t.Run(tc.name, func(t *testing.T) {
			fs := loadFixtures(t, plainFixtures)
			half := len(fs) / 2
			dir := t.TempDir()
			cfg := Config{}
			if tc.saved {
				cfg.StateFile = filepath.Join(dir, "hostview.json")
			}

			ns := startNATS(t, filepath.Join(dir, "nats"))
			nc, js := connect(t, ns)
			v1 := viewAt(t, fs)
			r1 := startConsumer(t, nc, v1, cfg)
			for _, f := range fs[:half] {
				waitSeq(t, v1, publish(t, js, f.Subject, f.Message))
			}
			r1.stop(t)
			for _, f := range fs[half:] { // published while the service is down
				publish(t, js, f.Subject, f.Message)
			}
			nc.Close()
			ns.Shutdown()
			ns.WaitForShutdown()

			ns2 := startNATS(t, filepath.Join(dir, "nats"))
			nc2, _ := connect(t, ns2)
			v2 := viewAt(t, fs)
			r2 := startConsumer(t, nc2, v2, cfg)
			waitSeq(t, v2, uint64(len(fs)))
			r2.stop(t)

			// What it missed, once: nothing delivered twice, nothing
			// redelivered from before the stop.
			want := float64(len(fs) - half)
			if !tc.saved {
				want = float64(len(fs)) // the first half replayed into the empty view, once
			}
			if got := r2.total(t, ""); got != want {
				t.Errorf("second run took %v messages, want %v", got, want)
			}
			if got := r2.total(t, "duplicate") + r2.total(t, "already_applied") + r2.total(t, "stale"); got != 0 {
				t.Errorf("%v messages handled twice", got)
			}
			ref := reference(t, fs, hostview.Options{})
			if diff := cmp.Diff(ref.Snapshot().Hosts, v2.Snapshot().Hosts); diff != "" {
				t.Errorf("after the restart (-all at once,+restarted):\n%s", diff)
			}
			if diff := cmp.Diff(ref.Instances(""), v2.Instances(""), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("instances (-all at once,+restarted):\n%s", diff)
			}
		})
	}
}

// TestDuplicatesAndReorderingOverNATS publishes the first instance's life
// out of order, with duplicates (a second publisher, a redelivery).
func TestDuplicatesAndReorderingOverNATS(t *testing.T) {
	fs := loadFixtures(t, plainFixtures)
	pick := func(typ string, n int) fixture {
		for _, f := range fs {
			if f.eventType(t) == typ {
				if n == 0 {
					return f
				}
				n--
			}
		}
		t.Fatalf("no %s", typ)
		return fixture{}
	}
	create := pick("instance.create.end", 0)
	moved := pick("instance.live_migration_post_dest.end", 0)
	resized := pick("instance.resize_finish.end", 0)
	confirmed := pick("instance.resize_confirm.end", 0)
	order := []fixture{moved, create, create, resized, moved, confirmed, resized}

	nc, js := connect(t, startNATS(t, t.TempDir()))
	v := viewAt(t, fs)
	r := startConsumer(t, nc, v, Config{})
	var last uint64
	for _, f := range order {
		last = publish(t, js, f.Subject, f.Message)
	}
	waitSeq(t, v, last)
	waitCounted(t, r.c.m, float64(len(order)))
	ev, _, _ := DecodeNotification(create.Message)
	i, _ := v.Instance(ev.Instance.Instance.UUID)
	// As after the real order: resized onto host1 with the 2-vCPU flavor.
	if i.Host != "host1" || i.Flavor.VCPUs != 2 || i.State != "active" {
		t.Errorf("instance %+v", i)
	}
	h, _ := v.Snapshot().Lookup("host1", "")
	if h.Usage.VCPUs != 2 || h.Instances != 1 {
		t.Errorf("host1 %+v", h.Usage)
	}
	if h, _ := v.Snapshot().Lookup("host2", ""); h.Instances != 0 {
		t.Errorf("host2 still holds %d", h.Instances)
	}
	if got := r.total(t, "duplicate"); got != 3 {
		t.Errorf("%v duplicates, want 3", got)
	}
	// The create arrived after the move: stale, but its flavor was the only
	// one known and was kept.
	if got := r.count(t, "instance.create.end", "stale"); got != 1 {
		t.Errorf("%v stale creates, want 1", got)
	}
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMalformedMessagesNeverStopTheStream(t *testing.T) {
	fs := loadFixtures(t, plainFixtures)
	nc, js := connect(t, startNATS(t, t.TempDir()))
	v := viewAt(t, fs)
	var logs syncBuffer
	c, err := New(nc, v, Config{}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-c.Ready()

	create := fs[0]
	for _, f := range fs {
		if f.eventType(t) == "instance.create.end" {
			create = f
			break
		}
	}
	bad := []struct{ subject, data string }{
		{"nova.versioned_notifications.info.instance.create.end", "not json at all"},
		{"nova.versioned_notifications.info.instance.create.end", `{"event_type": "instance.create.end", "timestamp": "when?"}`},
		{"nova.versioned_notifications.error.compute.exception", `{"oslo.version": "2.0", "oslo.message": "{broken"}`},
		{"ecrae.metrics.node7", `{"timestamp": "2026-05-01T10:00:00Z", "watts": -5}`},
		{"ecrae.metrics.node7", `{"watts": 5}`},
	}
	publish(t, js, create.Subject, []byte(bad[0].data))
	for _, b := range bad[1:] {
		publish(t, js, b.subject, []byte(b.data))
	}
	publish(t, js, create.Subject, create.Message)
	last := publish(t, js, "ecrae.metrics.node7", []byte(`{"timestamp": "2026-05-01T10:00:00Z", "watts": 321.5, "cpu_utilization": 0.5}`))
	waitSeq(t, v, last)
	waitCounted(t, c.m, float64(len(bad)+2))

	ev, _, _ := DecodeNotification(create.Message)
	if _, ok := v.Instance(ev.Instance.Instance.UUID); !ok {
		t.Error("the good message after the bad ones was not applied")
	}
	// A sample alone does not make a host.
	if h, ok := v.Snapshot().Lookup("node7", ""); ok {
		t.Errorf("node7 created by a sample: %+v", h)
	}
	reg := c.m.events
	if got := counterValue(t, reg.WithLabelValues("instance.create.end", "malformed")); got != 2 {
		t.Errorf("malformed creates %v, want 2", got)
	}
	// An unreadable body is counted under the type its subject names.
	if got := counterValue(t, reg.WithLabelValues("compute.exception", "malformed")); got != 1 {
		t.Errorf("malformed compute.exception %v, want 1", got)
	}
	if got := counterValue(t, reg.WithLabelValues(TypeSample, "malformed")); got != 1 {
		t.Errorf("malformed samples %v, want 1 (no timestamp)", got)
	}
	// Negative watts, and the good sample for a host the view does not know.
	if got := counterValue(t, reg.WithLabelValues(TypeSample, "rejected")); got != 2 {
		t.Errorf("refused samples %v, want 2", got)
	}
	for _, r := range []string{ReasonSampleRange, ReasonUnknownHost} {
		if got := counterValue(t, c.m.rejected.WithLabelValues(r)); got != 1 {
			t.Errorf("rejected{reason=%s} %v, want 1", r, got)
		}
	}
	out := logs.String()
	for _, b := range bad {
		if !strings.Contains(out, "subject="+b.subject) {
			t.Errorf("no log line names subject %s:\n%s", b.subject, out)
		}
	}
}

func TestNewRejectsWildcardPrefixes(t *testing.T) {
	nc, _ := connect(t, startNATS(t, t.TempDir()))
	for _, p := range []string{"nova.>", "a b", ".nova", "nova."} {
		if _, err := New(nc, hostview.New(hostview.Options{}), Config{SubjectPrefix: p}, nil, nil); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	c, err := New(nc, hostview.New(hostview.Options{}), Config{SubjectPrefix: "region1.nova"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"region1.nova.versioned_notifications.>", "ecrae.metrics.>", "ecrae.containers.>"}, c.Subjects()); diff != "" {
		t.Error(diff)
	}
	// Updating the stream to a new prefix, and back, is idempotent.
	for range 2 {
		if _, err := c.EnsureStream(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(c.Subjects())
	if !strings.Contains(string(raw), "region1") {
		t.Fatal(string(raw))
	}
}
