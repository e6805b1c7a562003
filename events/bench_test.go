package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/optimizer"
	"github.com/nats-io/nats.go/jetstream"
)

// benchStream builds n messages from the captured scenario: the first
// instance's life (create, live migration, resizes, power off/on, rebuild,
// shelve/unshelve, delete: real Nova payloads of ~3 KB) played by fresh
// instances over 64 hosts, with a node power sample every fourth message.
func benchStream(b *testing.B, n int) (subjects []string, bodies [][]byte) {
	b.Helper()
	fs := loadFixtures(b, plainFixtures)
	var first string
	var life []fixture
	for _, f := range fs {
		ev, _, err := DecodeNotification(f.Message)
		if err != nil || ev == nil || ev.Kind != hostview.KindInstance {
			continue
		}
		if first == "" {
			first = ev.Instance.Instance.UUID
		}
		if ev.Instance.Instance.UUID == first {
			life = append(life, f)
		}
	}
	ids := make([][]byte, len(life))
	for i, f := range life {
		var m message
		if err := json.Unmarshal(f.Message, &m); err != nil {
			b.Fatal(err)
		}
		ids[i] = []byte(m.MessageID)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for k := 0; len(bodies) < n; k++ {
		uuid := []byte(fmt.Sprintf("%08x-0000-4000-8000-%012x", k, k))
		hostA, hostB := fmt.Sprintf("n%03d", k%64), fmt.Sprintf("n%03d", (k+1)%64)
		for i, f := range life {
			if len(bodies) == n {
				break
			}
			if len(bodies)%4 == 3 {
				subjects = append(subjects, "ecrae.metrics."+hostA)
				bodies = append(bodies, fmt.Appendf(nil, `{"host": %q, "timestamp": %q, "watts": %d.5, "cpu_utilization": 0.%02d}`,
					hostA, t0.Add(time.Duration(len(bodies))*time.Millisecond).Format(time.RFC3339Nano), 100+k%200, k%100))
				continue
			}
			d := bytes.ReplaceAll(f.Message, []byte(first), uuid)
			d = bytes.ReplaceAll(d, ids[i], fmt.Appendf(nil, "m-%d-%d", k, i))
			d = bytes.ReplaceAll(d, []byte("host1"), []byte(hostA))
			d = bytes.ReplaceAll(d, []byte("host2"), []byte(hostB))
			subjects = append(subjects, f.Subject)
			bodies = append(bodies, d)
		}
	}
	return subjects, bodies
}

// BenchmarkIngest measures events applied per second from JetStream into
// the view (decode, apply, ack) while scoring runs flat out on other
// goroutines, each scoring pass reading a fresh snapshot. The stream is
// filled before the timer starts: this is the rate of draining a backlog,
// the worst case (a restart after an outage).
//
//	go test ./events -run '^$' -bench Ingest -benchtime 100000x
func BenchmarkIngest(b *testing.B) {
	for _, sc := range []struct {
		name string
		rate int // scoring passes per second, 0 = as fast as one goroutine can
	}{{"scoring=1000/s", 1000}, {"scoring=flat-out", 0}} {
		b.Run(sc.name, func(b *testing.B) { benchIngest(b, sc.rate) })
	}
}

func benchIngest(b *testing.B, rate int) {
	subjects, bodies := benchStream(b, b.N)
	nc, js := connect(b, startNATS(b, b.TempDir()))
	ensureStream(b, nc, Config{})
	var futures []jetstream.PubAckFuture
	for i := range bodies {
		f, err := js.PublishAsync(subjects[i], bodies[i])
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) >= 4000 {
			<-js.PublishAsyncComplete()
			futures = futures[:0]
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing did not complete")
	}

	now := time.Date(2026, 5, 1, 11, 0, 0, 0, time.UTC)
	v := hostview.New(hostview.Options{Now: func() time.Time { return now }})
	model := &optimizer.Model{Name: "bench", ISA: "x86_64", Cores: 64, MemoryMB: 262144,
		Curve: optimizer.PowerCurve{200, 250, 290, 330, 370, 410, 450, 490, 530, 570, 610}}
	req := optimizer.Request{VCPUs: 2, MemoryMB: 4096, DiskGB: 20}
	prof := optimizer.Profile{Tag: "web", Candidates: []optimizer.Candidate{{ISA: "x86_64", PerformanceFactor: 1}}}
	load := func(string) float64 { return 0.5 }

	var scores atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var hosts []optimizer.Host
		var tick <-chan time.Time
		if rate > 0 {
			t := time.NewTicker(time.Second / time.Duration(rate))
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			if tick != nil {
				select {
				case <-stop:
					return
				case <-tick:
				}
			}
			s := v.Snapshot()
			now := v.Now()
			hosts = hosts[:0]
			for i := range s.Hosts {
				h := &s.Hosts[i]
				oh := hostview.Base(h, model)
				hostview.Enrich(&oh, h, v.Freshness(h, now), load)
				hosts = append(hosts, oh)
			}
			optimizer.WeighHosts(req, prof, hosts, nil)
			scores.Add(1)
		}
	}()

	b.ResetTimer()
	start := time.Now()
	r := startConsumer(b, nc, v, Config{})
	waitSeq(b, v, uint64(len(bodies)))
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	r.stop(b)
	if got := r.total(b, "applied"); got < float64(len(bodies))*0.99 {
		b.Fatalf("only %v of %d applied", got, len(bodies))
	}
	b.ReportMetric(float64(len(bodies))/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(scores.Load())/elapsed.Seconds(), "scores/s")
	b.ReportMetric(float64(len(v.Snapshot().Hosts)), "hosts")
}

// BenchmarkDecode decodes the captured notifications, plain.
func BenchmarkDecode(b *testing.B) {
	fs := loadFixtures(b, plainFixtures)
	size := 0
	for _, f := range fs {
		size += len(f.Message)
	}
	b.SetBytes(int64(size / len(fs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := DecodeNotification(fs[i%len(fs)].Message); err != nil {
			b.Fatal(err)
		}
	}
}
