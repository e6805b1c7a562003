// Package audit keeps the audit trail: one record per call that can change
// state (KB writes, plan execution and cancellation, power actions), with
// who made it, when, what it acted on and how it ended. Records live in
// their own bbolt file (audit.db beside the knowledge base), bounded: past
// the capacity the oldest are dropped in the same transaction that adds
// the newest.
//
// In cluster mode (SetPublisher) the trail is the cluster's: each record is
// kept first in this file's outbox, then published to a replicated log
// (package ha) and stored, like every other replica's records, under the
// log's number. A record made while the log cannot take it (no quorum)
// stays in the outbox, listed as pending, until Flush publishes it: nothing
// is lost, and a replica that is lost takes none of the trail with it
// (beyond its pending records).
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/internal/seqlog"
	bolt "go.etcd.io/bbolt"
)

// DefaultCapacity is how many records are kept unless told otherwise.
const DefaultCapacity = 100000

var (
	bucket           = []byte("records")    // one replica's trail, numbered here
	bucketReplicated = []byte("replicated") // cluster mode: the cluster's trail, by the log's numbers
	bucketOutbox     = []byte("outbox")     // cluster mode: records not yet in the log, by local number
)

// ErrMalformedRecord: a replicated record that is not a Record's JSON.
var ErrMalformedRecord = errors.New("malformed audit record")

// Record is one audited call.
type Record struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`
	Role    string    `json:"role,omitempty"`
	Method  string    `json:"method"`
	Target  string    `json:"target,omitempty"`
	Code    string    `json:"code"`
	Message string    `json:"message,omitempty"`
	// Cluster mode: the replica that ran (or refused) the call, the
	// record's unique ID (the replicated log drops a second publication of
	// it), and whether it still waits in this replica's outbox (its Seq is
	// then 0).
	Replica string `json:"replica,omitempty"`
	ID      string `json:"id,omitempty"`
	Pending bool   `json:"pending,omitempty"`
}

// Publisher appends a record (JSON) with its unique ID to the cluster's
// replicated audit log and returns its number there (package ha).
type Publisher interface {
	PublishRecord(ctx context.Context, id string, record []byte) (seq uint64, err error)
}

type publisherBox struct {
	p       Publisher
	replica string
}

// Store is the audit file.
type Store struct {
	db       *bolt.DB
	capacity int
	pub      atomic.Pointer[publisherBox]
	// appending makes one replicated Append publish before the next one
	// looks at the outbox: records made together reach the log in order,
	// and none waits for a flush while the log answers.
	appending sync.Mutex
}

// SetPublisher makes the trail the cluster's, as seen from replica: every
// later Append goes through the outbox to p, and List shows the replicated
// log (and this replica's pending records). The records this file held
// before, numbered by this replica alone, are no longer listed.
func (s *Store) SetPublisher(p Publisher, replica string) {
	s.pub.Store(&publisherBox{p: p, replica: replica})
}

// Open opens (or creates) the audit file; capacity ≤ 0 means DefaultCapacity.
func Open(path string, capacity int) (*Store, error) {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucket, bucketReplicated, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	return &Store{db: db, capacity: capacity}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Capacity is how many records are kept at most.
func (s *Store) Capacity() int { return s.capacity }

// Append stores r with the next sequence number, dropping the oldest
// records past the capacity. In cluster mode it keeps r in the outbox and
// publishes it; if that fails r stays there, pending, for Flush (Append
// still succeeds: the record is kept).
func (s *Store) Append(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if box := s.pub.Load(); box != nil {
		return s.appendReplicated(ctx, box, r)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.Seq = seq
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(seqlog.Key(seq), v); err != nil {
			return err
		}
		return seqlog.Trim(b, seq, s.capacity)
	})
}

func (s *Store) appendReplicated(ctx context.Context, box *publisherBox, r Record) error {
	s.appending.Lock()
	defer s.appending.Unlock()
	var id [12]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand's contract since Go 1.24)
	r.Seq, r.Pending, r.Replica, r.ID = 0, false, box.replica, hex.EncodeToString(id[:])
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var local uint64
	alone := false // no older record waits: publishing now keeps the order
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if local, err = b.NextSequence(); err != nil {
			return err
		}
		if err := b.Put(seqlog.Key(local), v); err != nil {
			return err
		}
		// Past the capacity the oldest pending records go, as in the log.
		// (Counted with a cursor: Stats does not see this write's keys.)
		n := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		for k, _ := c.First(); k != nil && n > s.capacity; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		alone = n == 1
		return nil
	}); err != nil {
		return err
	}
	if alone {
		_ = s.publish(ctx, box.p, local, r.ID, v) // on failure it waits, pending, for Flush
	}
	return nil
}

// publish sends the outbox record under local to the log and stores it
// under the log's number, taking it out of the outbox in the same write.
func (s *Store) publish(ctx context.Context, p Publisher, local uint64, id string, v []byte) error {
	seq, err := p.PublishRecord(ctx, id, v)
	if err != nil {
		return fmt.Errorf("audit: replicate record %s: %w", id, err)
	}
	return s.apply(seq, v, local)
}

// Flush publishes the pending records, oldest first, and stops at the
// first the log does not take. Run it once this replica has applied the
// whole log (a record published just before a crash is then out of the
// outbox already, and not published twice).
func (s *Store) Flush(ctx context.Context) error {
	box := s.pub.Load()
	if box == nil {
		return nil
	}
	type pending struct {
		local uint64
		id    string
		v     []byte
	}
	var todo []pending
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("outbox record %d: %w", seqlog.Seq(k), err)
			}
			todo = append(todo, pending{seqlog.Seq(k), r.ID, append([]byte(nil), v...)})
			return nil
		})
	}); err != nil {
		return fmt.Errorf("audit: read outbox: %w", err)
	}
	for _, p := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.publish(ctx, box.p, p.local, p.id, p.v); err != nil {
			return err
		}
	}
	return nil
}

// Pending is the number of records in the outbox (0 outside cluster mode).
func (s *Store) Pending() int {
	n := 0
	_ = s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketOutbox).Stats().KeyN
		return nil
	})
	return n
}

// ApplyReplicated stores record (JSON, as Append publishes it) under seq,
// the replicated log's number, dropping the records past the capacity and
// the outbox's copy of it (this replica's own record) in one write; a
// record the capacity already dropped is skipped.
func (s *Store) ApplyReplicated(seq uint64, record []byte) error {
	return s.apply(seq, record, 0)
}

// apply is ApplyReplicated; local (when not 0) is the outbox key of the
// record, known when this replica published it.
func (s *Store) apply(seq uint64, record []byte, local uint64) error {
	var r Record
	if err := json.Unmarshal(record, &r); err != nil {
		return fmt.Errorf("audit: record %d: %w: %w", seq, ErrMalformedRecord, err)
	}
	r.Seq, r.Pending = seq, false
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := dropFromOutbox(tx.Bucket(bucketOutbox), local, r.ID); err != nil {
			return err
		}
		return seqlog.PutNumbered(tx.Bucket(bucketReplicated), seq, v, s.capacity)
	})
}

// dropFromOutbox deletes the outbox's copy of a record now in the log: by
// its key when known, else (a record this replica published before it
// stopped, applied from the log) by its ID. The outbox holds only the
// records of an outage, so the walk is short.
func dropFromOutbox(b *bolt.Bucket, local uint64, id string) error {
	if local != 0 {
		return b.Delete(seqlog.Key(local))
	}
	if id == "" {
		return nil
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		var r Record
		if json.Unmarshal(v, &r) == nil && r.ID == id {
			return c.Delete()
		}
	}
	return nil
}

// ReplicatedSeq is the highest number of the replicated log stored (0:
// none): a replica follows the log from the next one.
func (s *Store) ReplicatedSeq() uint64 { return seqlog.LastIn(s.db, bucketReplicated) }

// List returns the records at or after since (zero: all), oldest first;
// limit > 0 keeps only the newest limit of them. In cluster mode they are
// the replicated log's, in its order, then this replica's pending ones.
func (s *Store) List(ctx context.Context, since time.Time, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cluster := s.pub.Load() != nil
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		sources := [][]byte{bucket}
		if cluster {
			sources = [][]byte{bucketOutbox, bucketReplicated} // newest first
		}
		for _, name := range sources {
			c := tx.Bucket(name).Cursor()
			for k, v := c.Last(); k != nil; k, v = c.Prev() {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("record %d: %w", seqlog.Seq(k), err)
				}
				r.Pending = string(name) == string(bucketOutbox)
				if !since.IsZero() && r.Time.Before(since) {
					if !cluster {
						return nil // one replica's records are in time order
					}
					// Several replicas' clocks, and records published late
					// from an outbox: the log is not in time order.
					continue
				}
				out = append(out, r)
				if limit > 0 && len(out) == limit {
					return nil
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}
