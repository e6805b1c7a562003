package planstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
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
	// PublishPlan returns the replicated store's revision of the write.
	PublishPlan(ctx context.Context, id string, plan []byte) (uint64, error)
	DeletePlan(ctx context.Context, id string) error
}

// bucketRevs maps a plan's id to the replicated store's revision its
// stored version came from, written in the transaction that stores it: a
// replicated version no newer is not applied (it would undo a later write
// of this replica's that the watch has not echoed yet).
const bucketRevs = "replicated_revisions"

func revsBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	return tx.CreateBucketIfNotExists([]byte(bucketRevs))
}

func putRev(tx *bolt.Tx, n, rev uint64) error {
	b, err := revsBucket(tx)
	if err != nil {
		return err
	}
	return b.Put(key(n), key(rev))
}

func getRev(tx *bolt.Tx, n uint64) uint64 {
	b := tx.Bucket([]byte(bucketRevs))
	if b == nil {
		return 0
	}
	v := b.Get(key(n))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

type publisherBox struct{ p Publisher }

// ErrReadOnly is what a Publisher wraps when this replica may not write
// plans (another is the leader): reads still work, and ListPlans' Expire
// leaves expiring to the leader.
var ErrReadOnly = errors.New("this replica does not write plans")

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
		rev, err := box.p.PublishPlan(ctx, "p"+strconv.FormatUint(n, 10), v)
		if err != nil {
			return fmt.Errorf("replicate plan p%d: %w", n, err)
		}
		if err := putRev(b.Tx(), n, rev); err != nil {
			return err
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

// ApplyReplicated stores a plan written by the leader at revision rev of
// the replicated store (nil data: deleted), unpublished, unless the file
// holds that revision of it or a later one. Later local plans are numbered
// after it.
func (s *Store) ApplyReplicated(ctx context.Context, id string, data []byte, rev uint64) error {
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
		if rev <= getRev(tx, n) {
			return nil
		}
		if err := putRev(tx, n, rev); err != nil {
			return err
		}
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
