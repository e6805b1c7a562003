package events

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestLimitsOverNATS (issue 11 point 5): what was observed accepted is
// refused, counted by reason, and changes nothing; the real messages
// around it still apply.
func TestLimitsOverNATS(t *testing.T) {
	// ecrae serve's embedded NATS takes messages up to 8 MiB, so a 7 MB one
	// reaches the decoder.
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, js := connect(t, ns)
	v := hostview.New(hostview.Options{})
	// n1 is a 140 W machine for the knowledge base.
	maxWatts := func(_ context.Context, h *hostview.Host) (float64, bool) { return 140, h.Name == "n1" }
	r := startConsumer(t, nc, v, Config{MaxWatts: maxWatts})

	now := time.Now().UTC()
	nova := func(et string, ts time.Time, uuid, host string) []byte {
		b, _ := json.Marshal(map[string]any{"event_type": et, "message_id": et + ts.String() + host[:min(len(host), 8)],
			"timestamp": ts.Format("2006-01-02 15:04:05.000000"),
			"payload": map[string]any{"nova_object.data": map[string]any{"uuid": uuid, "host": host, "state": "active",
				"flavor": map[string]any{"nova_object.data": map[string]any{"name": "m1", "vcpus": 2, "memory_mb": 2048}}}}})
		return b
	}
	const uuid = "0123abcd-0000-4000-8000-0123456789ab"
	subj := func(et string) string { return "nova.versioned_notifications.info." + et }
	publish(t, js, subj("instance.create.end"), nova("instance.create.end", now.Add(-time.Minute), uuid, "n1"))
	publish(t, js, subj("instance.create.end"), nova("instance.create.end", now.Add(-time.Minute), strings.Repeat("u", 7<<20), "n1"))
	publish(t, js, subj("instance.create.end"), nova("instance.create.end", now.Add(-time.Minute), "u2", strings.Repeat("h", 100000)))
	publish(t, js, subj("instance.power_off.end"), nova("instance.power_off.end", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), uuid, "n1"))
	publish(t, js, "ecrae.metrics.n1", []byte(`{"timestamp": "`+now.Format(time.RFC3339)+`", "watts": 5000}`))
	publish(t, js, "ecrae.metrics.n1", []byte(`{"timestamp": "`+now.Format(time.RFC3339)+`", "watts": 250}`))
	publish(t, js, "ecrae.metrics.ghost", []byte(`{"timestamp": "`+now.Format(time.RFC3339)+`", "watts": 100}`))
	// The real delete after the year-9999 update still deletes.
	waitSeq(t, v, publish(t, js, subj("instance.delete.end"), nova("instance.delete.end", now, uuid, "n1")))
	waitCounted(t, r.c.m, 8)

	for reason, want := range map[string]float64{ReasonTooLarge: 1, ReasonFieldTooLong: 1, ReasonFutureTimestamp: 1, ReasonSampleRange: 1, ReasonUnknownHost: 1} {
		if got := counterValue(t, r.c.m.rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%s} %v, want %v", reason, got, want)
		}
	}
	if got := r.total(t, "rejected"); got != 5 {
		t.Errorf("%v messages counted rejected, want 5", got)
	}
	if got := r.count(t, "instance.delete.end", "applied"); got != 1 {
		t.Errorf("the delete after the year-9999 update: applied %v times", got)
	}
	if _, ok := v.Instance(uuid); ok {
		t.Error("the instance outlived its delete")
	}
	hosts := v.Snapshot().Hosts
	if len(hosts) != 1 || hosts[0].Name != "n1" || hosts[0].Watts.Value != 250 || hosts[0].Instances != 0 {
		t.Errorf("hosts %+v, want n1 alone, at 250 W (the 5,000 W sample refused), empty", hosts)
	}
	if _, err := json.Marshal(v.Snapshot().Hosts); err != nil {
		t.Error(err)
	}
}

// TestLostCountsOnlyWhatTheStreamNoLongerHolds: messages that left the
// stream before the view reached them (the oldest purged, one deleted) are
// counted lost; the others are applied; nothing before them is counted.
func TestLostCountsOnlyWhatTheStreamNoLongerHolds(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{StateFile: dir + "/hostview.json"}
	nc, js := connect(t, startNATS(t, dir+"/nats"))
	sample := func(host string) []byte {
		return []byte(`{"host": "` + host + `", "timestamp": "2026-05-01T10:00:00Z", "watts": 1}`)
	}
	v1 := hostview.New(hostview.Options{})
	r1 := startConsumer(t, nc, v1, cfg)
	for range 3 {
		waitSeq(t, v1, publish(t, js, "ecrae.metrics.h", sample("h")))
	}
	r1.stop(t)
	for range 6 { // seq 4..9, while the service is down
		publish(t, js, "ecrae.metrics.h", sample("h"))
	}
	stream, err := js.Stream(context.Background(), "ECRAE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(context.Background(), jetstream.WithPurgeSequence(6)); err != nil { // drops 4 and 5
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(context.Background(), 8); err != nil {
		t.Fatal(err)
	}
	v2 := hostview.New(hostview.Options{})
	r2 := startConsumer(t, nc, v2, cfg)
	waitSeq(t, v2, 9)
	r2.stop(t)
	if got := counterValue(t, r2.c.m.lost); got != 3 {
		t.Errorf("lost %v, want 3 (4 and 5 purged, 8 deleted)", got)
	}
	if got := r2.total(t, ""); got != 3 {
		t.Errorf("second run took %v messages, want 3 (6, 7, 9)", got)
	}
}

// TestStreamYoungerThanTheSavedView: the NATS store was wiped, so the
// stream's sequences restart below the saved view's; the view follows the
// new stream from its first message instead of skipping it.
func TestStreamYoungerThanTheSavedView(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{StateFile: dir + "/hostview.json"}
	nc, js := connect(t, startNATS(t, dir+"/nats"))
	sample := []byte(`{"host": "h", "timestamp": "2026-05-01T10:00:00Z", "watts": 1}`)
	v1 := hostview.New(hostview.Options{})
	r1 := startConsumer(t, nc, v1, cfg)
	for range 5 {
		waitSeq(t, v1, publish(t, js, "ecrae.metrics.h", sample))
	}
	r1.stop(t)
	if err := js.DeleteStream(context.Background(), "ECRAE_EVENTS"); err != nil {
		t.Fatal(err)
	}
	ensureStream(t, nc, cfg)
	for range 2 { // seq 1 and 2 of the new stream
		publish(t, js, "ecrae.metrics.h", sample)
	}
	v2 := hostview.New(hostview.Options{})
	r2 := startConsumer(t, nc, v2, cfg)
	waitSeq(t, v2, 2) // returns at once if the saved 5 were kept: checked below
	r2.stop(t)
	if got := r2.total(t, ""); got != 2 || v2.AppliedSeq() != 2 {
		t.Errorf("took %v messages, at sequence %d; want the new stream's 2", got, v2.AppliedSeq())
	}
}
