package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Lease bucket and key: the value names the leader (leaseValue); the
// bucket's MaxAge is the lease's TTL, so a leader that stops renewing
// loses its key and another replica can create it.
const (
	LeaseBucket = "ecrae-leader"
	LeaseKey    = "leader"
)

// ErrNotLeader says this replica does not hold the lease (or no longer
// holds the revision it acted under): the action was not taken.
var ErrNotLeader = errors.New("this replica does not hold the leader lease")

// leaseValue is the lease key's value: the holder's name, and the gRPC
// address the other replicas forward leader-only calls to.
type leaseValue struct {
	Name string `json:"name"`
	GRPC string `json:"grpc,omitempty"`
}

// decodeLease reads a lease value; a value that is not a JSON object is a
// bare name (no address to forward to).
func decodeLease(b []byte) leaseValue {
	var v leaseValue
	if len(b) > 0 && b[0] == '{' && json.Unmarshal(b, &v) == nil && v.Name != "" {
		return v
	}
	return leaseValue{Name: string(b)}
}

// Lease elects one replica to act (rebalance execution, periodic
// planning, power actions). The revision of the key a replica wrote last
// is its fencing token: Check compares it with the bucket's before every
// action, so a replica that was paused past its TTL and replaced acts no
// more.
type Lease struct {
	js       jetstream.JetStream
	replicas int
	name     string
	ttl      time.Duration
	log      *slog.Logger
	value    []byte // what this replica writes when it holds the lease

	kv   atomic.Pointer[jetstream.KeyValue]
	held atomic.Uint64 // revision of our key; 0: not leader

	mu     sync.Mutex
	leader leaseValue // last leader seen (for status and forwarding)
}

// NewLease prepares a lease for replica name; Run campaigns.
func NewLease(js jetstream.JetStream, replicas int, name string, ttl time.Duration, log *slog.Logger) *Lease {
	l := &Lease{js: js, replicas: replicas, name: name, ttl: ttl, log: log}
	l.Advertise("")
	return l
}

// Advertise sets the gRPC address (HOST:PORT) the other replicas reach
// this one at while it leads; call it before Run.
func (l *Lease) Advertise(grpcAddr string) {
	l.value, _ = json.Marshal(leaseValue{Name: l.name, GRPC: grpcAddr})
}

// Name is this replica's name.
func (l *Lease) Name() string { return l.name }

// IsLeader reports whether this replica believes it holds the lease (Check
// confirms it with the bucket).
func (l *Lease) IsLeader() bool { return l.held.Load() != 0 }

// Leader is the last leader this replica saw ("" when none).
func (l *Lease) Leader() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader.Name
}

// LeaderEndpoint is the last leader this replica saw and the gRPC address
// it advertised ("" when none, or when it advertised none).
func (l *Lease) LeaderEndpoint() (name, grpcAddr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader.Name, l.leader.GRPC
}

func (l *Lease) setLeader(v leaseValue) {
	l.mu.Lock()
	l.leader = v
	l.mu.Unlock()
}

func (l *Lease) setSelf() { l.setLeader(decodeLease(l.value)) }

// Check returns nil if the bucket's current lease is still the one this
// replica wrote last; the fencing check before every action. The lease is
// read from the bucket stream's leader (current), not from any replica:
// a key-value Get may be served by a replica behind the leader, and a
// fence that reads a lease already taken as still ours fences nothing.
func (l *Lease) Check(ctx context.Context) error {
	held := l.held.Load()
	if held == 0 || l.kv.Load() == nil {
		return fmt.Errorf("%w (leader: %q)", ErrNotLeader, l.Leader())
	}
	v, rev, err := l.current(ctx)
	if err != nil {
		return fmt.Errorf("%w: lease unreadable: %v", ErrNotLeader, err)
	}
	// Our name at a newer revision: our own renewal, stored there and not
	// yet recorded here (names are unique). Wait for it to be recorded.
	for v.Name == l.name && rev > held {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: lease renewal in progress: %w", ErrNotLeader, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
		if held = l.held.Load(); held == 0 {
			return fmt.Errorf("%w (leader: %q)", ErrNotLeader, l.Leader())
		}
	}
	if rev != held || v.Name != l.name {
		return fmt.Errorf("%w: lease at revision %d held by %q, ours was %d", ErrNotLeader, rev, v.Name, held)
	}
	return nil
}

// current reads the lease key's last value and revision from the bucket
// stream's leader (JetStream's STREAM.MSG.GET; the bucket allows direct
// gets, which any replica answers). A deleted, purged or absent key is a
// lease nobody holds: an empty name.
func (l *Lease) current(ctx context.Context) (leaseValue, uint64, error) {
	prefix := l.js.Options().APIPrefix
	if prefix == "" {
		prefix = jetstream.DefaultAPIPrefix
	}
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + LeaseBucket + "." + LeaseKey})
	msg, err := l.js.Conn().RequestWithContext(ctx, prefix+"STREAM.MSG.GET.KV_"+LeaseBucket, req)
	if err != nil {
		return leaseValue{}, 0, err
	}
	var resp struct {
		Error *struct {
			ErrCode     jetstream.ErrorCode `json:"err_code"`
			Description string              `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq  uint64 `json:"seq"`
			Hdrs []byte `json:"hdrs"`
			Data []byte `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return leaseValue{}, 0, fmt.Errorf("lease read: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == jetstream.JSErrCodeMessageNotFound:
		return leaseValue{}, 0, nil
	case resp.Error != nil:
		return leaseValue{}, 0, fmt.Errorf("lease read: %s (%d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return leaseValue{}, 0, errors.New("lease read: empty answer")
	}
	if len(resp.Message.Hdrs) > 0 {
		if h, err := nats.DecodeHeadersMsg(resp.Message.Hdrs); err == nil && h.Get("KV-Operation") != "" {
			return leaseValue{}, resp.Message.Seq, nil // a delete or purge marker
		}
	}
	return decodeLease(resp.Message.Data), resp.Message.Seq, nil
}

// Run campaigns for the lease until ctx ends, renewing it every TTL/3
// while held. lead runs, under a context cancelled when the lease is lost,
// each time this replica becomes the leader; Run owns its goroutine.
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context)) error {
	every := l.ttl / 3
	var (
		stop    context.CancelFunc
		done    chan struct{}
		renewed time.Time
	)
	stepDown := func(why string, err error) {
		if stop == nil {
			return
		}
		l.held.Store(0)
		// Nor does it know who leads now: a call it forwards meanwhile
		// must not come back to itself.
		l.setLeader(leaseValue{})
		stop()
		<-done
		stop, done = nil, nil
		l.log.Warn("leader lease lost: stopped acting", "why", why, "err", err)
	}
	defer stepDown("stopping", nil)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := l.round(ctx); err != nil {
			l.log.Debug("leader lease", "err", err)
		}
		now := time.Now()
		switch held := l.held.Load(); {
		case held != 0 && stop == nil:
			renewed = now
			var lctx context.Context
			lctx, stop = context.WithCancel(ctx)
			done = make(chan struct{})
			l.log.Info("leader lease acquired: this replica acts", "revision", held, "ttl", l.ttl)
			go func(d chan struct{}) { defer close(d); lead(lctx) }(done)
		case held != 0:
			renewed = now
		case stop != nil:
			stepDown("renewal failed", nil)
		}
		// A renewal that keeps failing must stop acting before the TTL
		// lets another replica take over.
		if stop != nil && now.Sub(renewed) > 2*every {
			l.held.Store(0)
			stepDown("not renewed for "+now.Sub(renewed).String(), nil)
		}
		select {
		case <-ctx.Done():
			held := l.held.Load()
			stepDown("stopping", nil)
			l.release(held)
			return nil
		case <-t.C:
		}
	}
}

// round renews the lease if held, or tries to take it.
func (l *Lease) round(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, l.ttl/3)
	defer cancel()
	if l.kv.Load() == nil {
		kv, err := l.js.CreateOrUpdateKeyValue(rctx, jetstream.KeyValueConfig{
			Bucket: LeaseBucket, Description: "ECRAE leader lease", History: 1,
			TTL: l.ttl, Storage: jetstream.FileStorage, Replicas: l.replicas,
		})
		if err != nil {
			return fmt.Errorf("bucket %s: %w", LeaseBucket, err)
		}
		l.kv.Store(&kv)
	}
	kv := *l.kv.Load()
	if held := l.held.Load(); held != 0 {
		rev, err := kv.Update(rctx, LeaseKey, l.value, held)
		if err != nil {
			l.held.Store(0)
			return fmt.Errorf("renew: %w", err)
		}
		l.held.Store(rev)
		l.setSelf()
		return nil
	}
	rev, err := kv.Create(rctx, LeaseKey, l.value)
	if err == nil {
		l.held.Store(rev)
		l.setSelf()
		return nil
	}
	// Read from the bucket's leader: a replica behind it could show a
	// lease of ours that was taken since.
	if v, rev, gerr := l.current(rctx); gerr == nil {
		if v.Name == l.name {
			// Ours: a renewal that timed out here but was stored there.
			// Names are unique, so nobody else wrote it; its revision is
			// current, so fencing holds.
			l.held.Store(rev)
			l.setSelf()
			return nil
		}
		l.setLeader(v)
	}
	return err
}

// release deletes the lease at revision held, if still there (a clean stop),
// so that another replica need not wait for the TTL.
func (l *Lease) release(held uint64) {
	kvp := l.kv.Load()
	if held == 0 || kvp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := (*kvp).Delete(ctx, LeaseKey, jetstream.LastRevision(held)); err == nil {
		l.log.Info("leader lease released")
	}
}
