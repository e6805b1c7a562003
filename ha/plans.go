package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/planstore"
	"github.com/nats-io/nats.go/jetstream"
)

// PlansBucket holds one value per plan (key: its id), with its step states.
const PlansBucket = "ecrae-plans"

// Plans replicates a replica's plan file through the bucket: the leader's
// writes are published before they commit (it is the store's Publisher,
// fenced by the lease), and every replica applies the others' (Run).
type Plans struct {
	js       jetstream.JetStream
	replicas int
	store    *planstore.Store
	lease    *Lease
	log      *slog.Logger

	kv       atomic.Pointer[jetstream.KeyValue]
	seen     atomic.Uint64 // last bucket revision the watch handled
	stopping atomic.Pointer[context.Context]
}

// StopWith makes the plans read-only once ctx ends: a replica that stops
// (SIGTERM) records no "interrupted" for the plan it was executing, so the
// next leader takes it over instead of finding it ended.
func (p *Plans) StopWith(ctx context.Context) { p.stopping.Store(&ctx) }

// NewPlans makes store publish through the bucket from now on.
func NewPlans(js jetstream.JetStream, replicas int, store *planstore.Store, lease *Lease, log *slog.Logger) *Plans {
	p := &Plans{js: js, replicas: replicas, store: store, lease: lease, log: log}
	store.SetPublisher(p)
	return p
}

// PublishPlan implements planstore.Publisher: only the leader, at its
// current fencing revision, writes plans.
func (p *Plans) PublishPlan(ctx context.Context, id string, plan []byte) (uint64, error) {
	kv, err := p.writable(ctx)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Put(ctx, id, plan)
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", PlansBucket, err)
	}
	return rev, nil
}

// DeletePlan implements planstore.Publisher.
func (p *Plans) DeletePlan(ctx context.Context, id string) error {
	kv, err := p.writable(ctx)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("bucket %s: %w", PlansBucket, err)
	}
	return nil
}

func (p *Plans) writable(ctx context.Context) (jetstream.KeyValue, error) {
	if sp := p.stopping.Load(); sp != nil && (*sp).Err() != nil {
		return nil, fmt.Errorf("this replica is stopping; the next leader takes its plans over: %w", planstore.ErrReadOnly)
	}
	if err := p.lease.Check(ctx); err != nil {
		return nil, fmt.Errorf("plans are written by the leader (%q): %w: %w", p.lease.Leader(), planstore.ErrReadOnly, err)
	}
	kvp := p.kv.Load()
	if kvp == nil {
		return nil, fmt.Errorf("bucket %s not reachable yet", PlansBucket)
	}
	return *kvp, nil
}

// Run opens the bucket (retrying until JetStream answers) and applies
// every plan written by another replica, in order, until ctx ends.
func (p *Plans) Run(ctx context.Context) error {
	return runUntilDone(ctx, p.log, "replicated plans", p.watch)
}

func (p *Plans) watch(ctx context.Context) error {
	if p.kv.Load() == nil {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := p.js.CreateOrUpdateKeyValue(octx, jetstream.KeyValueConfig{
			Bucket: PlansBucket, Description: "ECRAE rebalance plans and their step states",
			History: 1, Storage: jetstream.FileStorage, Replicas: p.replicas, MaxValueSize: 16 << 20,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("bucket %s (replicas %d): %w", PlansBucket, p.replicas, err)
		}
		p.kv.Store(&kv)
	}
	w, err := (*p.kv.Load()).WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", PlansBucket, err)
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
			if e == nil {
				continue
			}
			p.apply(ctx, e)
			if e.Revision() > p.seen.Load() {
				p.seen.Store(e.Revision())
			}
		}
	}
}

// apply stores one plan revision; the plan file skips a revision no newer
// than the one it holds (this replica's own writes come back here).
func (p *Plans) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	var data []byte
	if e.Operation() == jetstream.KeyValuePut {
		data = e.Value()
	}
	if err := p.store.ApplyReplicated(ctx, e.Key(), data, e.Revision()); err != nil {
		p.log.Error("replicated plans: not applied", "plan", e.Key(), "revision", e.Revision(), "err", err)
	}
}

// CaughtUp waits until the watch has handled everything the bucket held
// when it was called: a new leader resumes from the plans as they are.
func (p *Plans) CaughtUp(ctx context.Context) error {
	if err := pollUntil(ctx, 50*time.Millisecond, func() bool { return p.kv.Load() != nil }); err != nil {
		return err
	}
	return awaitApplied(ctx, p.js, "KV_"+PlansBucket, &p.seen)
}

// Lead, run while this replica leads (ctx: the leadership), takes over
// the plans left executing at once and again every interval: an execution
// this replica ran in an earlier term and lost the lease in the middle of
// can record nothing, and is resumed here once it has ended.
func (p *Plans) Lead(ctx context.Context, every time.Duration, resume func(ctx context.Context, id string) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := p.Takeover(ctx, resume); err != nil && ctx.Err() == nil {
			p.log.Error("takeover of running plans", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Takeover waits for the plans the previous leader wrote and resumes each
// one left executing (Resume of a plan this replica runs is a no-op).
func (p *Plans) Takeover(ctx context.Context, resume func(ctx context.Context, id string) error) error {
	if err := p.CaughtUp(ctx); err != nil {
		return fmt.Errorf("replicated plans not caught up; running plans left alone: %w", err)
	}
	ps, err := p.store.Plans(ctx, 0)
	if err != nil {
		return err
	}
	var errs []error
	for _, pl := range ps {
		if pl.Status != planstore.StatusExecuting {
			continue
		}
		if err := resume(ctx, pl.ID); err != nil {
			errs = append(errs, fmt.Errorf("plan %s: %w", pl.ID, err))
		}
	}
	return errors.Join(errs...)
}
