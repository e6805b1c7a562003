package events

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/google/go-cmp/cmp"
)

// requiredTypes are the event types issue 4 names; the captured fixtures
// must hold each, and each must decode to an event the view applies.
var requiredTypes = []string{
	"instance.create.end", "instance.delete.end",
	"instance.live_migration_post_dest.end", "instance.live_migration_post.end",
	"instance.resize_finish.end", "instance.resize_confirm.end", "instance.resize_revert.end",
	"instance.evacuate", "instance.rebuild.end", "instance.shelve_offload.end", "instance.unshelve.end",
	"instance.power_off.end", "instance.power_on.end",
	"service.create", "service.update", "service.delete", "metrics.update",
}

func TestDecodeCapturedFixtures(t *testing.T) {
	plain, v2 := loadFixtures(t, plainFixtures), loadFixtures(t, v2Fixtures)
	if len(plain) != len(v2) {
		t.Fatalf("%d plain fixtures, %d messagingv2", len(plain), len(v2))
	}
	seen := map[string]int{}
	for i := range plain {
		ev, typ, err := DecodeNotification(plain[i].Message)
		if err != nil {
			t.Fatalf("fixture %d (%s): %v", i, plain[i].Subject, err)
		}
		if want := plain[i].Subject[len("nova.versioned_notifications.info."):]; typ != want {
			t.Errorf("fixture %d: type %q, subject says %q", i, typ, want)
		}
		// The oslo messagingv2 envelope decodes to the same event.
		ev2, typ2, err := DecodeNotification(v2[i].Message)
		if err != nil || typ2 != typ {
			t.Fatalf("fixture %d in the messagingv2 envelope: %q %v", i, typ2, err)
		}
		if diff := cmp.Diff(ev, ev2); diff != "" {
			t.Errorf("fixture %d: plain vs envelope (-plain,+v2):\n%s", i, diff)
		}
		if Handled(typ) != (ev != nil) {
			t.Errorf("fixture %d (%s): handled %v but event %v", i, typ, Handled(typ), ev)
		}
		if ev != nil {
			seen[typ]++
			if ev.MessageID == "" || ev.Timestamp.IsZero() || ev.Type != typ {
				t.Errorf("fixture %d: %+v", i, ev)
			}
		}
	}
	for _, typ := range requiredTypes {
		if seen[typ] == 0 {
			t.Errorf("no captured %s decoded", typ)
		}
	}
}

// findFixture returns the n-th (from 0) captured message of a type.
func findFixture(t *testing.T, typ string, n int) []byte {
	t.Helper()
	for _, f := range loadFixtures(t, plainFixtures) {
		if f.eventType(t) == typ {
			if n == 0 {
				return f.Message
			}
			n--
		}
	}
	t.Fatalf("no fixture %s #%d", typ, n)
	return nil
}

func TestDecodeSemantics(t *testing.T) {
	decode := func(typ string, n int) *hostview.Event {
		ev, _, err := DecodeNotification(findFixture(t, typ, n))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ev := decode("instance.create.end", 0)
	in := ev.Instance.Instance
	if ev.Kind != hostview.KindInstance || ev.Instance.Op != hostview.OpUpsert || in.Host != "host1" || in.Tag != "web" ||
		in.Flavor.VCPUs != 1 || in.Flavor.MemoryMB != 1024 || in.State != "active" || in.PowerState != "running" || ev.Publisher != "host1" {
		t.Errorf("create.end: %+v", ev)
	}
	if ev.Timestamp.Location() != time.UTC || ev.Timestamp.Nanosecond() == 0 {
		t.Errorf("timestamp %v: want UTC with microseconds", ev.Timestamp)
	}
	if ev := decode("instance.shelve_offload.end", 0); ev.Instance.Instance.Host != "" || ev.Instance.Instance.State != "shelved_offloaded" {
		t.Errorf("shelve_offload.end: %+v", ev.Instance.Instance)
	}
	// After an evacuation the payload still names the source; the
	// destination compute published it.
	if ev := decode("instance.rebuild.end", 1); ev.Instance.Instance.Host != ev.Publisher || ev.Publisher == "" {
		t.Errorf("evacuation rebuild.end: host %q publisher %q", ev.Instance.Instance.Host, ev.Publisher)
	}
	if ev := decode("instance.live_migration_post.end", 0); ev.Kind != hostview.KindNone {
		t.Errorf("live_migration_post.end: kind %v", ev.Kind)
	}
	if ev := decode("instance.delete.end", 0); ev.Instance.Op != hostview.OpDelete {
		t.Errorf("delete.end: %+v", ev.Instance)
	}
	if ev := decode("service.update", 0); ev.Kind != hostview.KindService || !ev.Service.ForcedDown || ev.Publisher != "" {
		t.Errorf("forced-down service.update: %+v", ev)
	}
	if ev := decode("service.delete", 0); !ev.Service.Deleted || ev.Service.Binary != "nova-compute" {
		t.Errorf("service.delete: %+v", ev.Service)
	}
	// The fake driver's cpu.percent is 2.
	if ev := decode("metrics.update", 0); ev.Kind != hostview.KindMetrics || !ev.Metrics.HasCPU || ev.Metrics.CPU != 0.02 || ev.Metrics.At.IsZero() {
		t.Errorf("metrics.update: %+v", ev.Metrics)
	}
	if ev, typ, err := DecodeNotification(findFixture(t, "flavor.create", 0)); ev != nil || typ != "flavor.create" || err != nil {
		t.Errorf("flavor.create: %v %q %v", ev, typ, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	create := string(findFixture(t, "instance.create.end", 0))
	wrap := func(inner string) string {
		b, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": inner})
		return string(b)
	}
	for _, tc := range []struct{ name, data string }{
		{"not JSON", "hello"},
		{"JSON array", "[1,2]"},
		{"no event_type", `{"message_id": "x", "timestamp": "2026-01-01 00:00:00.0"}`},
		{"bad timestamp", `{"event_type": "instance.create.end", "timestamp": "yesterday", "payload": {}}`},
		{"no timestamp", `{"event_type": "service.update", "payload": {}}`},
		{"instance without uuid", `{"event_type": "instance.create.end", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"host": "h"}}}`},
		{"payload not an object", `{"event_type": "instance.create.end", "timestamp": "2026-01-01 00:00:00.0", "payload": "x"}`},
		{"negative flavor", `{"event_type": "instance.create.end", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"uuid": "u", "flavor": {"nova_object.data": {"vcpus": -1}}}}}`},
		{"service without host", `{"event_type": "service.update", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"binary": "nova-compute"}}}`},
		{"metrics without host", `{"event_type": "metrics.update", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {}}}`},
		{"oslo.message not JSON", wrap("{")},
		{"oslo envelope v1", `{"oslo.version": "1.0", "oslo.message": "{}"}`},
		{"nested envelope", wrap(wrap(create))},
	} {
		if _, _, err := DecodeNotification([]byte(tc.data)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", tc.name, err)
		}
	}
	if _, _, err := DecodeNotification([]byte(wrap(create))); err != nil {
		t.Errorf("well-formed envelope: %v", err)
	}
}

func TestDecodeSample(t *testing.T) {
	ev, err := DecodeSample("n1", []byte(`{"timestamp": "2026-05-01T10:00:00.5Z", "watts": 210.5, "cpu_utilization": 0.42}`))
	if err != nil {
		t.Fatal(err)
	}
	want := hostview.PowerSample{Host: "n1", At: time.Date(2026, 5, 1, 10, 0, 0, 5e8, time.UTC), Watts: 210.5, HasWatts: true, Utilization: 0.42, HasUtil: true}
	if diff := cmp.Diff(want, ev.Power); diff != "" || ev.Kind != hostview.KindPower || ev.Type != TypeSample {
		t.Errorf("sample (-want,+got):\n%s", diff)
	}
	// cpu_demand: the CPU asked for, past 1 when the host is short.
	if ev, err := DecodeSample("h", []byte(`{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": 1.75}`)); err != nil || !ev.Power.HasDemand || ev.Power.Demand != 1.75 || ev.Power.Utilization != 1 {
		t.Errorf("demand: %+v %v", ev, err)
	}
	if ev, err := DecodeSample("subject-host", []byte(`{"host": "body-host", "timestamp": "2026-05-01T12:00:00+02:00", "watts": 0}`)); err != nil || ev.Power.Host != "body-host" || ev.Power.HasUtil || !ev.Power.At.Equal(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("watts only: %+v %v", ev, err)
	}
	for _, bad := range []string{
		`nope`, `{"watts": 1}`, `{"timestamp": "2026-05-01 10:00:00", "watts": 1}`, `{"timestamp": "2026-05-01T10:00:00Z"}`,
		`{"timestamp": "2026-05-01T10:00:00Z", "watts": -1}`, `{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 42}`,
		`{"timestamp": "2026-05-01T10:00:00Z", "watts": "100"}`, `{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": -0.5}`,
		`{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": "2"}`,
	} {
		if _, err := DecodeSample("h", []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", bad, err)
		}
	}
	if _, err := DecodeSample("", []byte(`{"timestamp": "2026-05-01T10:00:00Z", "watts": 1}`)); !errors.Is(err, ErrMalformed) {
		t.Error("a sample naming no host was accepted")
	}
	// watts_source: measured watts are used; "model" watts never are.
	if ev, err := DecodeSample("h", []byte(`{"timestamp": "2026-05-01T10:00:00Z", "watts": 150, "source": "ipmi", "watts_source": "measured"}`)); err != nil || !ev.Power.HasWatts || ev.Power.Watts != 150 || ev.Power.Source != "ipmi" {
		t.Errorf("measured: %+v %v", ev, err)
	}
	if ev, err := DecodeSample("h", []byte(`{"timestamp": "2026-05-01T10:00:00Z", "watts": 150, "cpu_utilization": 0.5, "source": "proc", "watts_source": "model"}`)); err != nil || ev.Power.HasWatts || !ev.Power.HasUtil {
		t.Errorf("model watts taken as measured: %+v %v", ev, err)
	}
	for _, bad := range []string{
		`{"timestamp": "2026-05-01T10:00:00Z", "watts": 150, "watts_source": "model"}`, // nothing measured
		`{"timestamp": "2026-05-01T10:00:00Z", "watts": 150, "watts_source": "guessed"}`,
	} {
		if _, err := DecodeSample("h", []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", bad, err)
		}
	}
}

// FuzzDecode: the decoders never panic, and what they accept is sane.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{plainFixtures, v2Fixtures} {
		for i, fx := range loadFixtures(f, name) {
			if i%4 == 0 { // a spread of types, without making the corpus huge
				f.Add(string(fx.Message), "")
			}
		}
	}
	f.Add(`{"event_type": "instance.create.end", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"uuid": "u", "host": null, "flavor": null}}}`, "")
	f.Add(`{"oslo.version": "2.0", "oslo.message": "{\"event_type\": \"service.delete\"}"}`, "")
	f.Add(`{"host": "h", "timestamp": "2026-05-01T10:00:00Z", "watts": 1e308, "cpu_utilization": 1}`, "h")
	f.Add(`{"host": "h", "timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": 1.5}`, "h")
	f.Add(`{"event_type": "instance.create.end", "timestamp": "9999-12-31 23:59:59.0", "payload": {"nova_object.data": {"uuid": "u"}}}`, "")
	f.Add(`{"event_type": "instance.create.end", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"uuid": "0123abcd-0000-4000-8000-0123456789abc"}}}`, "")
	f.Add(`{"event_type": "service.update", "timestamp": "2026-01-01 00:00:00.0", "payload": {"nova_object.data": {"host": "`+strings.Repeat("h", 300)+`"}}}`, "")
	f.Add(`{"timestamp": "2026-05-01T10:00:00Z", "watts": 1}`, strings.Repeat("s", 256))
	// The fuzzer's clock: fixed, so that a finding replays.
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	dec := Decoder{Now: func() time.Time { return now }}
	reasons := map[string]bool{ReasonTooLarge: true, ReasonFieldTooLong: true, ReasonFutureTimestamp: true, ReasonSampleRange: true}
	f.Fuzz(func(t *testing.T, data, sampleHost string) {
		check := func(ev *hostview.Event, err error) {
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				if rej := (*RejectedError)(nil); errors.As(err, &rej) && !reasons[rej.Reason] {
					t.Fatalf("unknown reason %q", rej.Reason)
				}
				if ev != nil {
					t.Fatal("an event with an error")
				}
				return
			}
			if ev == nil {
				return
			}
			if ev.Timestamp.IsZero() {
				t.Fatalf("accepted without a timestamp: %+v", ev)
			}
			if len(data) > MaxMessageBytes || ev.Timestamp.After(now.Add(DefaultClockSkew)) ||
				ev.Metrics.At.After(now.Add(DefaultClockSkew)) || ev.Power.At.After(now.Add(DefaultClockSkew)) {
				t.Fatalf("accepted past a limit: %+v", ev)
			}
			for _, s := range []string{ev.Publisher, ev.Instance.Instance.Host, ev.Instance.Instance.Name, ev.Instance.Instance.Node,
				ev.Instance.Instance.Flavor.Name, ev.Instance.Instance.Tag, ev.Service.Host, ev.Service.DisabledReason,
				ev.Metrics.Host, ev.Metrics.Nodename, ev.Power.Host, ev.MessageID} {
				if len(s) > MaxNameBytes {
					t.Fatalf("accepted a %d-byte string", len(s))
				}
			}
			if len(ev.Instance.Instance.UUID) > MaxUUIDBytes {
				t.Fatalf("accepted a %d-byte uuid", len(ev.Instance.Instance.UUID))
			}
			switch ev.Kind {
			case hostview.KindInstance:
				if ev.Instance.Instance.UUID == "" || ev.Instance.Instance.Flavor.VCPUs < 0 {
					t.Fatalf("instance %+v", ev.Instance)
				}
			case hostview.KindService:
				if ev.Service.Host == "" {
					t.Fatal("service without host")
				}
			case hostview.KindMetrics:
				if ev.Metrics.Host == "" || ev.Metrics.CPU < 0 || ev.Metrics.CPU > 1 {
					t.Fatalf("metrics %+v", ev.Metrics)
				}
			case hostview.KindPower:
				p := ev.Power
				if p.Host == "" || p.Watts < 0 || math.IsInf(p.Watts, 0) || p.Utilization < 0 || p.Utilization > 1 ||
					p.Demand < 0 || p.Demand > MaxCPUDemand {
					t.Fatalf("sample %+v", p)
				}
			}
			// Whatever decodes must apply without harm.
			hostview.New(hostview.Options{}).Apply(1, ev)
		}
		ev, _, err := dec.Notification([]byte(data))
		check(ev, err)
		ev, err = dec.Sample(sampleHost, []byte(data))
		check(ev, err)
	})
}

// TestDecodeLimits: every limit refuses just past it, accepts at it, and
// says which with a reason and at most 100 bytes of the value.
func TestDecodeLimits(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	dec := Decoder{Now: func() time.Time { return now }, ClockSkew: 5 * time.Minute}
	inst := func(ts, uuid, host, name string) string {
		b, _ := json.Marshal(map[string]any{"event_type": "instance.create.end", "timestamp": ts,
			"payload": map[string]any{"nova_object.data": map[string]any{"uuid": uuid, "host": host, "display_name": name}}})
		return string(b)
	}
	sample := func(ts string, watts float64) string {
		b, _ := json.Marshal(map[string]any{"timestamp": ts, "watts": watts})
		return string(b)
	}
	const ok = "2026-05-01 10:04:59.0" // now + 4m59s: within the skew
	uuid36 := "0123abcd-0000-4000-8000-0123456789ab"
	big := strings.Repeat("x", MaxMessageBytes)
	for _, c := range []struct {
		name, data string
		sample     bool
		reason     string // "" = accepted
	}{
		{"at every limit", inst(ok, uuid36, strings.Repeat("h", 255), strings.Repeat("n", 255)), false, ""},
		{"a 7 MB uuid", inst(ok, strings.Repeat("u", 7<<20), "h", "n"), false, ReasonTooLarge},
		{"1 MiB + the envelope", inst(ok, "u", "h", big), false, ReasonTooLarge},
		{"37-byte uuid", inst(ok, uuid36+"0", "h", "n"), false, ReasonFieldTooLong},
		{"256-byte host", inst(ok, uuid36, strings.Repeat("h", 256), "n"), false, ReasonFieldTooLong},
		{"100,000-character name", inst(ok, uuid36, "h", strings.Repeat("é", 50000)), false, ReasonFieldTooLong},
		{"year 9999", inst("9999-12-31 23:59:59.0", uuid36, "h", "n"), false, ReasonFutureTimestamp},
		{"now + 5m1s", inst("2026-05-01 10:05:01.0", uuid36, "h", "n"), false, ReasonFutureTimestamp},
		{"metrics timestamp in the future", `{"event_type": "metrics.update", "timestamp": "2026-05-01 10:00:00.0", "payload": {"nova_object.data": {"host": "h", "metrics": [{"nova_object.data": {"name": "cpu.percent", "value": 5, "timestamp": "2030-01-01T00:00:00Z"}}]}}}`, false, ReasonFutureTimestamp},
		{"sample at the skew", sample("2026-05-01T10:05:00Z", 1), true, ""},
		{"sample from the future", sample("2026-05-01T10:05:01Z", 1), true, ReasonFutureTimestamp},
		{"sample with negative watts", sample("2026-05-01T10:00:00Z", -1), true, ReasonSampleRange},
		{"sample utilisation 1.5", `{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1.5}`, true, ReasonSampleRange},
		{"sample demand at the limit", `{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": 64}`, true, ""},
		{"sample demand 65", `{"timestamp": "2026-05-01T10:00:00Z", "cpu_utilization": 1, "cpu_demand": 65}`, true, ReasonSampleRange},
		{"sample 256-byte host", `{"host": "` + strings.Repeat("h", 256) + `", "timestamp": "2026-05-01T10:00:00Z", "watts": 1}`, true, ReasonFieldTooLong},
		{"sample over 1 MiB", `{"timestamp": "2026-05-01T10:00:00Z", "watts": 1, "pad": "` + big + `"}`, true, ReasonTooLarge},
	} {
		var err error
		if c.sample {
			_, err = dec.Sample("h", []byte(c.data))
		} else {
			_, _, err = dec.Notification([]byte(c.data))
		}
		var rej *RejectedError
		switch {
		case c.reason == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.reason == "":
		case !errors.As(err, &rej) || rej.Reason != c.reason || !errors.Is(err, ErrMalformed):
			t.Errorf("%s: %v, want reason %s", c.name, err, c.reason)
		case len(err.Error()) > 300:
			t.Errorf("%s: a %d-byte error quotes too much of the value", c.name, len(err.Error()))
		}
	}
}
