package seqlog

import (
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestPutNumberedKeepsTheWindow: entries keep the window of the log's
// numbers, gaps included; one the window has passed is not stored.
func TestPutNumberedKeepsTheWindow(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := []byte("log")
	keys := func() string {
		var out string
		_ = db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(name).ForEach(func(k, _ []byte) error {
				out += fmt.Sprintf("%d ", Seq(k))
				return nil
			})
		})
		return out
	}
	for _, seq := range []uint64{1, 2, 5, 6, 3, 9} {
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			return PutNumbered(b, seq, []byte("x"), 4)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Keep 4 back from the highest: after 6, numbers ≤ 2 go (1, 2); 3
	// arrives late but 3 + 4 > 6, so it stays; after 9, numbers ≤ 5 go.
	if got, want := keys(), "6 9 "; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
	if got := LastIn(db, name); got != 9 {
		t.Errorf("LastIn = %d, want 9", got)
	}
	// A local log without gaps keeps exactly keep entries.
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		for seq := uint64(10); seq <= 20; seq++ {
			if err := b.Put(Key(seq), []byte("y")); err != nil {
				return err
			}
			if err := Trim(b, seq, 4); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(), "17 18 19 20 "; got != want {
		t.Errorf("kept %q, want %q", got, want)
	}
}
