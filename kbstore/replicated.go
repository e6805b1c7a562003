package kbstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Cluster mode (issue 14): the source of truth is a replicated key-value
// store (a JetStream KV bucket, package ha) holding the whole KB as one
// value per revision; this bbolt file is the replica's materialised copy.
// A local write is published from inside its bbolt transaction, with a
// compare-and-set on the last replicated revision this file holds, and
// commits only if the publish succeeded: all-or-nothing cluster-wide (a
// crash between the two is repaired at start, when the replicated value
// is applied again). Revisions written by other replicas arrive through
// ApplyReplicated, in order.

// keyReplicated is meta/replicated_revision: the replicated store's
// revision this file holds (absent: none yet).
const keyReplicated = "replicated_revision"

// ErrConflict says another replica wrote the KB after the last revision
// this one had applied: nothing was written; retry.
var ErrConflict = errors.New("the knowledge base was changed on another replica first; nothing was written, retry")

// ErrUnavailable says the replicated store could not be reached: nothing
// was written.
var ErrUnavailable = errors.New("the replicated knowledge base is unavailable; nothing was written")

// Publisher writes a KB to the replicated store if its current revision is
// still prev (0: the key must not exist yet), returning the new revision;
// a stale prev is ErrConflict.
type Publisher interface {
	Publish(ctx context.Context, kb *KB, change string, prev uint64) (uint64, error)
}

type publisherBox struct{ p Publisher }

// SetPublisher makes every later write publish through p before it
// commits (nil: local only, as with one replica).
func (s *Store) SetPublisher(p Publisher) {
	if p == nil {
		s.pub.Store(nil)
		return
	}
	s.pub.Store(&publisherBox{p: p})
}

func publishInTx(ctx context.Context, tx *bolt.Tx, p Publisher, change string) error {
	prev, err := replicatedRevision(tx)
	if err != nil {
		return err
	}
	after, err := readKB(tx)
	if err != nil {
		return err
	}
	rev, err := p.Publish(ctx, after, change, prev)
	if err != nil {
		return fmt.Errorf("replicate the knowledge base: %w", err)
	}
	return putReplicatedRevision(tx, rev)
}

func replicatedRevision(tx *bolt.Tx) (uint64, error) {
	raw := tx.Bucket([]byte(bucketMeta)).Get([]byte(keyReplicated))
	if raw == nil {
		return 0, nil
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta/%s is %q, not a revision; the file is damaged", keyReplicated, raw)
	}
	return v, nil
}

func putReplicatedRevision(tx *bolt.Tx, rev uint64) error {
	return tx.Bucket([]byte(bucketMeta)).Put([]byte(keyReplicated), []byte(strconv.FormatUint(rev, 10)))
}

// ReplicatedRevision is the replicated store's revision this file holds
// (0: none yet).
func (s *Store) ReplicatedRevision(ctx context.Context) (uint64, error) {
	var rev uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		rev, err = replicatedRevision(tx)
		return err
	})
	return rev, err
}

// ApplyReplicated makes kb, the replicated store's revision rev, the whole
// KB, unless this file holds rev or a later one already (applied reports
// which). It is not published back. kb must validate: a value another
// replica wrote that does not is refused, and the file keeps its KB.
func (s *Store) ApplyReplicated(ctx context.Context, kb *KB, rev uint64) (applied bool, err error) {
	if err := Validate(kb); err != nil {
		return false, fmt.Errorf("replicated revision %d: %w", rev, err)
	}
	err = s.updateTx(ctx, fmt.Sprintf("replicated revision %d", rev), false, func(tx *bolt.Tx) error {
		have, err := replicatedRevision(tx)
		if err != nil {
			return err
		}
		if have >= rev {
			return errUnchanged
		}
		if err := replaceAll(s, tx, kb); err != nil {
			return err
		}
		return putReplicatedRevision(tx, rev)
	})
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	return err == nil, err
}
