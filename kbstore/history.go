package kbstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The KB's history: every committed write gives the KB a new persisted
// revision and keeps the KB as it was before, so a replace that wiped
// something can be undone (Rollback). The history bucket is additive: a
// file without it gains it on Open, and an older binary ignores it.
const (
	bucketHistory = "history"
	keyRevision   = "revision"
	// HistoryKeep is how many earlier revisions are kept.
	HistoryKeep = 100
)

// ErrNoRevision says a revision is not (or no longer) in the history.
var ErrNoRevision = errors.New("no such revision in the history")

// Revisioned is one earlier revision of the KB.
type Revisioned struct {
	Revision uint64 `json:"revision"`
	// Until is when the write that replaced it committed, Change what
	// that write was ("import --replace", "update host lab-1", ...).
	Until  time.Time `json:"until"`
	Change string    `json:"change"`
	// Entity counts of the revision, for listing.
	Architectures, Tags, Flavors, Hosts int
	KB                                  *KB `json:"kb,omitempty"`
}

func ensureHistory(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists([]byte(bucketHistory))
	return err
}

// persistedRevision reads meta/revision: 1 for a KB never written since
// history began.
func persistedRevision(tx *bolt.Tx) (uint64, error) {
	raw := tx.Bucket([]byte(bucketMeta)).Get([]byte(keyRevision))
	if raw == nil {
		return 1, nil
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("meta/%s is %q, not a revision; the file is damaged", keyRevision, raw)
	}
	return v, nil
}

// recordHistory keeps before as the current revision and advances it; it
// runs in the write transaction, after the change, so both commit or
// neither does.
func recordHistory(tx *bolt.Tx, before *KB, change string, now time.Time) error {
	rev, err := persistedRevision(tx)
	if err != nil {
		return err
	}
	e := Revisioned{Revision: rev, Until: now.UTC(), Change: change, KB: before,
		Architectures: len(before.Architectures), Tags: len(before.Tags), Flavors: len(before.Flavors), Hosts: len(before.Hosts)}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	h := tx.Bucket([]byte(bucketHistory))
	if err := h.Put(revKey(rev), v); err != nil {
		return err
	}
	c := h.Cursor()
	for k, _ := c.First(); k != nil && rev-binary.BigEndian.Uint64(k) >= HistoryKeep; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return tx.Bucket([]byte(bucketMeta)).Put([]byte(keyRevision), []byte(strconv.FormatUint(rev+1, 10)))
}

func revKey(rev uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], rev)
	return k[:]
}

// History lists the kept earlier revisions, oldest first (without their
// KB), and the current revision.
func (s *Store) History(ctx context.Context) ([]Revisioned, uint64, error) {
	var out []Revisioned
	var cur uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		if cur, err = persistedRevision(tx); err != nil {
			return err
		}
		return tx.Bucket([]byte(bucketHistory)).ForEach(func(_, v []byte) error {
			var e Revisioned
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("history: %w", err)
			}
			e.KB = nil
			out = append(out, e)
			return nil
		})
	})
	return out, cur, err
}

// AtRevision returns the KB as it was at rev (the current KB for the
// current revision).
func (s *Store) AtRevision(ctx context.Context, rev uint64) (*KB, error) {
	var kb *KB
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		kb, err = atRevision(tx, rev)
		return err
	})
	return kb, err
}

func atRevision(tx *bolt.Tx, rev uint64) (*KB, error) {
	cur, err := persistedRevision(tx)
	if err != nil {
		return nil, err
	}
	if rev == cur {
		return readKB(tx)
	}
	v := tx.Bucket([]byte(bucketHistory)).Get(revKey(rev))
	if v == nil {
		return nil, fmt.Errorf("revision %d: %w (current %d; %d earlier revisions are kept)", rev, ErrNoRevision, cur, HistoryKeep)
	}
	var e Revisioned
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("history: revision %d: %w", rev, err)
	}
	return e.KB, nil
}

// Rollback makes the KB what it was at rev, as one more write (so the KB
// it replaces is kept in the history too). The old KB must still
// validate.
func (s *Store) Rollback(ctx context.Context, rev uint64) error {
	return s.update(ctx, fmt.Sprintf("rollback to revision %d", rev), func(tx *bolt.Tx) error {
		old, err := atRevision(tx, rev)
		if err != nil {
			return err
		}
		if err := Validate(old); err != nil {
			return fmt.Errorf("revision %d no longer validates: %w", rev, err)
		}
		return replaceAll(s, tx, old)
	})
}
