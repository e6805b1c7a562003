package planstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Cluster mode (issue 14): plans and their step states live in a
// replicated key-value store (a JetStream KV bucket, package ha), one
// value per plan; this file is the replica's copy. Every write publishes
// the plan it wrote from inside its transaction and commits only if that
// succeeded; the publisher refuses when this replica is not the leader
// (the fencing check), so a deposed leader records nothing. Plans written
// by the leader reach the other replicas through ApplyReplicated, so a new
// leader finds the running plan with the state of each step.

// Publisher stores a plan (JSON) under its id in the replicated store, or
// deletes it; an error aborts the write.
type Publisher interface {
	PublishPlan(ctx context.Context, id string, plan []byte) error
	DeletePlan(ctx context.Context, id string) error
}

type publisherBox struct{ p Publisher }

// SetPublisher makes every later write publish through p before it
// commits (nil: local only).
func (s *Store) SetPublisher(p Publisher) {
	if p == nil {
		s.pub.Store(nil)
		return
	}
	s.pub.Store(&publisherBox{p: p})
}

// put writes plan n, publishing it first in cluster mode.
func (s *Store) put(ctx context.Context, b *bolt.Bucket, n uint64, v []byte) error {
	if box := s.pub.Load(); box != nil {
		if err := box.p.PublishPlan(ctx, "p"+strconv.FormatUint(n, 10), v); err != nil {
			return fmt.Errorf("replicate plan p%d: %w", n, err)
		}
	}
	return b.Put(key(n), v)
}

func (s *Store) publishDelete(ctx context.Context, n uint64) error {
	if box := s.pub.Load(); box != nil {
		if err := box.p.DeletePlan(ctx, "p"+strconv.FormatUint(n, 10)); err != nil {
			return fmt.Errorf("replicate the deletion of plan p%d: %w", n, err)
		}
	}
	return nil
}

// ApplyReplicated stores a plan written by the leader (nil data: deleted),
// unpublished. Later local plans are numbered after it.
func (s *Store) ApplyReplicated(ctx context.Context, id string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := parseID(id)
	if err != nil {
		return err
	}
	if data != nil {
		var p Plan
		if err := json.Unmarshal(data, &p); err != nil || p.ID != id {
			return fmt.Errorf("replicated plan %s does not decode as that plan (err %v)", id, err)
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		if data == nil {
			return b.Delete(key(n))
		}
		if n > b.Sequence() {
			if err := b.SetSequence(n); err != nil {
				return err
			}
		}
		return b.Put(key(n), data)
	})
}
