// Package seqlog keeps a bounded log in a bbolt bucket, keyed by sequence
// number: the power history and the audit trail, each also as the copy of
// a replicated log (cluster mode), whose numbers the stream gives.
package seqlog

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// Key is seq as a bucket key: 8 bytes big-endian, so keys sort by number.
func Key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Seq reads a Key.
func Seq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// Last is the highest number in b, 0 when it is empty.
func Last(b *bolt.Bucket) uint64 {
	if k, _ := b.Cursor().Last(); k != nil {
		return Seq(k)
	}
	return 0
}

// LastIn is Last of bucket name in db, read in its own transaction.
func LastIn(db *bolt.DB, name []byte) uint64 {
	var seq uint64
	_ = db.View(func(tx *bolt.Tx) error {
		seq = Last(tx.Bucket(name))
		return nil
	})
	return seq
}

// Trim drops the entries of b numbered at or below last−keep: those
// keep entries back from last. It compares numbers, not counts, so a
// replicated log with gaps (entries dropped upstream before this copy saw
// them) keeps the same window as the log; a local log without gaps keeps
// exactly keep. The walk stops at the first entry kept.
func Trim(b *bolt.Bucket, last uint64, keep int) error {
	if last <= uint64(keep) {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && Seq(k) <= last-uint64(keep); k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// PutNumbered stores v under seq, a replicated log's number, and trims b
// to keep entries back from the highest number it holds; an entry the
// window has already passed (seq+keep ≤ the highest) is not stored.
func PutNumbered(b *bolt.Bucket, seq uint64, v []byte, keep int) error {
	last := max(seq, Last(b))
	if seq+uint64(keep) <= last {
		return nil
	}
	if err := b.Put(Key(seq), v); err != nil {
		return err
	}
	return Trim(b, last, keep)
}
