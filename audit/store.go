// Package audit keeps the audit trail: one record per call that can change
// state (KB writes, plan execution and cancellation, power actions), with
// who made it, when, what it acted on and how it ended. Records live in
// their own bbolt file (audit.db beside the knowledge base), bounded: past
// the capacity the oldest are dropped in the same transaction that adds
// the newest.
package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultCapacity is how many records are kept unless told otherwise.
const DefaultCapacity = 100000

var bucket = []byte("records")

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
}

// Store is the audit file.
type Store struct {
	db       *bolt.DB
	capacity int
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
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
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
// records past the capacity.
func (s *Store) Append(ctx context.Context, r Record) error {
	if err := ctx.Err(); err != nil {
		return err
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
		if err := b.Put(key(seq), v); err != nil {
			return err
		}
		// Keys run without gaps from the oldest kept to seq (only the
		// oldest are ever deleted), so their count is a subtraction.
		c := b.Cursor()
		for k, _ := c.First(); k != nil && seq-binary.BigEndian.Uint64(k)+1 > uint64(s.capacity); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns the records at or after since (zero: all), oldest first;
// limit > 0 keeps only the newest limit of them.
func (s *Store) List(ctx context.Context, since time.Time, limit int) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !since.IsZero() && r.Time.Before(since) {
				break
			}
			out = append(out, r)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit: read: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
