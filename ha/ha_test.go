package ha

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/internal/testnet"
	"github.com/ecrae/ecrae/kbstore"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startCluster runs n real embedded NATS servers clustered over real
// routes, JetStream on each, and returns a JetStream handle per member.
func startCluster(t *testing.T, n int) ([]*natsserver.Server, []jetstream.JetStream) {
	t.Helper()
	servers, jss, _ := startMembers(t, n)
	return servers, jss
}

// startMembers is startCluster, with each member's options (its client
// port fixed to the one it took) for restartMember.
func startMembers(t *testing.T, n int) ([]*natsserver.Server, []jetstream.JetStream, []*natsserver.Options) {
	t.Helper()
	var routes []string
	// The route ports must be known before the servers start (each lists
	// all of them), so they are picked together, distinct.
	ports := testnet.FreePorts(t, n)
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var servers []*natsserver.Server
	var jss []jetstream.JetStream
	var opts []*natsserver.Options
	for i := range n {
		o := &natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
		c := Cluster{Name: "test", Node: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes}
		if err := c.Apply(o); err != nil {
			t.Fatal(err)
		}
		if got := c.Size(); got != n {
			t.Fatalf("Size() = %d, want %d", got, n)
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		servers = append(servers, s)
		opts = append(opts, o)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		jss = append(jss, js)
	}
	for i, s := range servers {
		o := opts[i].Clone()
		o.Port = s.Addr().(*net.TCPAddr).Port // its clients reconnect to it
		opts[i] = o
	}
	return servers, jss, opts
}

// restartMember starts a member again, from its store and on its ports,
// after it was shut down.
func restartMember(t *testing.T, o *natsserver.Options) *natsserver.Server {
	t.Helper()
	s, err := natsserver.NewServer(o.Clone())
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("restarted member not ready")
	}
	return s
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKBReplicatedAcrossThreeMembers(t *testing.T) {
	_, jss := startCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var stores []*kbstore.Store
	var kbs []*KB
	for i, js := range jss {
		st, err := kbstore.Open(fmt.Sprintf("%s/kb%d.db", t.TempDir(), i), kbstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.SeedDefault(ctx); err != nil {
			t.Fatal(err)
		}
		stores = append(stores, st)
		k := NewKB(js, 3, st, quietLog())
		kbs = append(kbs, k)
		wg.Add(1)
		go func() { defer wg.Done(); k.Run(ctx) }()
	}
	// All members converge on the bucket's first revision.
	eventually(t, "first revision on all", func() bool {
		r := kbs[0].Revision()
		return r != 0 && kbs[1].Revision() == r && kbs[2].Revision() == r
	})

	// An import on member 0 is served by 1 and 2.
	kb, err := stores[0].Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kb.Hosts = append(kb.Hosts, kbstore.Host{Name: "replicated-host", Architecture: kb.Architectures[0].Name})
	start := time.Now()
	if err := stores[0].Import(ctx, kb, true); err != nil {
		t.Fatalf("import on member 0: %v", err)
	}
	for i := 1; i < 3; i++ {
		eventually(t, fmt.Sprintf("host on member %d", i), func() bool {
			_, err := stores[i].GetHost(ctx, "replicated-host")
			return err == nil
		})
	}
	t.Logf("import on member 0 visible on members 1 and 2 after %s (target < 1s; not asserted)", time.Since(start))
	want, err := stores[0].ReplicatedRevision(ctx) // the revision the import committed as
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "same revision everywhere", func() bool {
		return kbs[0].Revision() == want && kbs[1].Revision() == want && kbs[2].Revision() == want
	})

	// A write from a replica that has not applied the latest revision is
	// refused whole: a stale compare-and-set.
	if _, err := kbs[1].Publish(ctx, kb, "stale write", want-1); !errors.Is(err, kbstore.ErrConflict) {
		t.Fatalf("stale publish: err = %v, want ErrConflict", err)
	}
	// A local write that fails to replicate does not commit locally.
	kbs[2].kv.Store(nil)
	if err := stores[2].DeleteHost(ctx, "replicated-host"); !errors.Is(err, kbstore.ErrUnavailable) {
		t.Fatalf("delete without the bucket: err = %v, want ErrUnavailable", err)
	}
	if _, err := stores[2].GetHost(ctx, "replicated-host"); err != nil {
		t.Fatalf("the refused delete committed locally: %v", err)
	}
}

func TestLeaseOneLeaderAndFencedTakeover(t *testing.T) {
	_, jss := startCluster(t, 3)
	ttl := 1500 * time.Millisecond
	type member struct {
		l      *Lease
		cancel context.CancelFunc
		done   chan struct{}
	}
	var mu sync.Mutex
	leading := map[string]int{} // replica → times it started acting
	var ms []*member
	for i, js := range jss {
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{l: NewLease(js, 3, fmt.Sprintf("r%d", i), ttl, quietLog()), cancel: cancel, done: make(chan struct{})}
		ms = append(ms, m)
		go func() {
			defer close(m.done)
			m.l.Run(ctx, func(lctx context.Context) {
				mu.Lock()
				leading[m.l.Name()]++
				mu.Unlock()
				<-lctx.Done()
			})
		}()
		t.Cleanup(func() { cancel(); <-m.done })
	}
	leaders := func() []*member {
		var out []*member
		for _, m := range ms {
			if m.l.IsLeader() {
				out = append(out, m)
			}
		}
		return out
	}
	eventually(t, "a leader", func() bool { return len(leaders()) == 1 })
	first := leaders()[0]
	if err := first.l.Check(context.Background()); err != nil {
		t.Fatalf("leader's fencing check: %v", err)
	}
	// Overwriting the lease (as a replica that took over after a pause
	// would) fails the old holder's fencing check at once.
	kv := *first.l.kv.Load()
	e, err := kv.Get(context.Background(), LeaseKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(context.Background(), LeaseKey, []byte("intruder"), e.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := first.l.Check(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("fencing after takeover: err = %v, want ErrNotLeader", err)
	}
	eventually(t, "old holder steps down", func() bool { return !first.l.IsLeader() })

	// The leader stops (its key expires after the TTL): another takes over.
	eventually(t, "a leader again", func() bool { return len(leaders()) == 1 })
	second := leaders()[0]
	second.cancel()
	<-second.done
	eventually(t, "takeover", func() bool { l := leaders(); return len(l) == 1 && l[0] != second })
	for _, m := range ms {
		if m.l.IsLeader() && len(leaders()) != 1 {
			t.Fatal("two leaders")
		}
	}
}
