package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/kbstore"
	"github.com/nats-io/nats.go/jetstream"
)

// KB bucket and key: each value is a whole KB (JSON; a KB is small), each
// KV revision a KB revision.
const (
	KBBucket = "ecrae-kb"
	KBKey    = "kb"
)

// KB keeps a replica's bbolt KB in step with the replicated bucket: local
// writes are published before they commit (it is the store's Publisher),
// and every revision in the bucket is applied in order (Run).
type KB struct {
	js       jetstream.JetStream
	replicas int
	store    *kbstore.Store
	log      *slog.Logger

	kv      atomic.Pointer[jetstream.KeyValue] // nil until the bucket answered
	applied atomic.Uint64                      // bucket revision the store holds
	// OnApplied, when set before Run, is told of every revision applied
	// from another replica (tests measure propagation with it).
	OnApplied func(rev uint64)
}

// NewKB makes store publish through the bucket from now on: until the
// bucket answers (Run opens it), writes are refused with
// kbstore.ErrUnavailable, so none commits on one replica only.
func NewKB(js jetstream.JetStream, replicas int, store *kbstore.Store, log *slog.Logger) *KB {
	k := &KB{js: js, replicas: replicas, store: store, log: log}
	store.SetPublisher(k)
	return k
}

// Revision is the bucket revision the local KB holds (0: not synced yet).
func (k *KB) Revision() uint64 { return k.applied.Load() }

// Publish implements kbstore.Publisher: a compare-and-set on prev.
func (k *KB) Publish(ctx context.Context, kb *kbstore.KB, change string, prev uint64) (uint64, error) {
	kvp := k.kv.Load()
	if kvp == nil {
		return 0, fmt.Errorf("bucket %s not reachable yet: %w", KBBucket, kbstore.ErrUnavailable)
	}
	b, err := json.Marshal(kb)
	if err != nil {
		return 0, err
	}
	var rev uint64
	if prev == 0 {
		rev, err = (*kvp).Create(ctx, KBKey, b)
	} else {
		rev, err = (*kvp).Update(ctx, KBKey, b, prev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return 0, fmt.Errorf("%s: %w", change, kbstore.ErrConflict)
	case err != nil:
		return 0, fmt.Errorf("%s: %w (%v)", change, kbstore.ErrUnavailable, err)
	}
	k.log.Info("knowledge base write replicated", "change", change, "revision", rev)
	return rev, nil
}

// Run opens the bucket (retrying until JetStream answers: a cluster
// elects its leaders after its members meet), brings the local KB to the
// bucket's latest revision (or seeds an empty bucket with the local KB),
// then applies every later revision in order until ctx ends.
func (k *KB) Run(ctx context.Context) error {
	return runUntilDone(ctx, k.log, "replicated knowledge base", k.sync)
}

func (k *KB) sync(ctx context.Context) error {
	if err := k.open(ctx); err != nil {
		return err
	}
	kv := *k.kv.Load()
	if err := k.seed(ctx, kv); err != nil {
		return err
	}
	w, err := kv.Watch(ctx, KBKey)
	if err != nil {
		return fmt.Errorf("watch %s/%s: %w", KBBucket, KBKey, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // nil ends the initial values; deletes are not writes of ours
			}
			k.apply(ctx, e)
		}
	}
}

func (k *KB) open(ctx context.Context) error {
	if k.kv.Load() != nil {
		return nil
	}
	octx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kv, err := k.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
		Bucket:       KBBucket,
		Description:  "ECRAE knowledge base: one whole KB per revision",
		History:      64,
		Storage:      jetstream.FileStorage,
		Replicas:     k.replicas,
		MaxValueSize: 8 << 20,
	})
	if err != nil {
		return fmt.Errorf("bucket %s (replicas %d): %w", KBBucket, k.replicas, err)
	}
	k.kv.Store(&kv)
	return nil
}

// seed applies the bucket's latest revision, or, for an empty bucket,
// publishes the local KB as its first revision.
func (k *KB) seed(ctx context.Context, kv jetstream.KeyValue) error {
	rev, err := k.store.ReplicatedRevision(ctx)
	if err != nil {
		return err
	}
	k.applied.Store(rev)
	e, err := kv.Get(ctx, KBKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		snap, err := k.store.Snapshot(ctx)
		if err != nil {
			return err
		}
		// Through Import, so the local file records the revision in the
		// same transaction; a replica that lost the race applies the
		// winner's KB from the watch.
		err = k.store.Import(ctx, snap, true)
		if err != nil && !errors.Is(err, kbstore.ErrConflict) {
			return fmt.Errorf("seed bucket %s: %w", KBBucket, err)
		}
		if err == nil {
			rev, _ := k.store.ReplicatedRevision(ctx)
			k.applied.Store(rev)
			k.log.Info("replicated knowledge base seeded from this replica", "revision", rev)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s/%s: %w", KBBucket, KBKey, err)
	}
	k.apply(ctx, e)
	return nil
}

// apply writes one bucket revision into the bbolt file, unless it holds it.
// A value that does not decode or validate is logged and skipped: the file
// keeps its KB and the next good revision replaces it.
func (k *KB) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	var kb kbstore.KB
	if err := json.Unmarshal(e.Value(), &kb); err != nil {
		k.log.Error("replicated knowledge base: revision does not decode, skipped", "revision", e.Revision(), "err", err)
		return
	}
	applied, err := k.store.ApplyReplicated(ctx, &kb, e.Revision())
	if err != nil {
		k.log.Error("replicated knowledge base: revision not applied", "revision", e.Revision(), "err", err)
		return
	}
	if rev := e.Revision(); rev > k.applied.Load() {
		k.applied.Store(rev)
	}
	if applied {
		k.log.Info("knowledge base revision applied from the cluster", "revision", e.Revision())
		if k.OnApplied != nil {
			k.OnApplied(e.Revision())
		}
	}
}
