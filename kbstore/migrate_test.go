package kbstore

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

// rawDB builds a bbolt file by hand, as an older or newer binary would
// have left it.
func rawDB(t *testing.T, fill func(tx *bolt.Tx) error) string {
	t.Helper()
	path := tempDB(t)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func readSchema(t *testing.T, s *Store) string {
	t.Helper()
	var v string
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchemaVersion)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrateV0KeepsData(t *testing.T) {
	// A v0 DB: entity buckets but no meta, and not even all buckets.
	arch := testKB().Architectures[0]
	path := rawDB(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(bucketArchitectures))
		if err != nil {
			return err
		}
		data, err := json.Marshal(arch)
		if err != nil {
			return err
		}
		return b.Put([]byte(arch.Name), data)
	})
	s := openStore(t, path)
	if got := readSchema(t, s); got != "1" {
		t.Errorf("schema_version after Open = %q, want 1", got)
	}
	want := &KB{SchemaVersion: CurrentSchemaVersion, Architectures: []Architecture{arch}}
	if diff := cmp.Diff(want, snapshot(t, s)); diff != "" {
		t.Errorf("migrated KB (-want +got):\n%s", diff)
	}
	// The migrated DB takes writes in every bucket.
	if err := s.CreateHost(context.Background(), Host{Name: "h", Architecture: arch.Name}); err != nil {
		t.Errorf("CreateHost after migration: %v", err)
	}
}

func TestNewFileIsStampedCurrent(t *testing.T) {
	s := openStore(t, tempDB(t))
	if got := readSchema(t, s); got != "1" {
		t.Errorf("schema_version of a new file = %q, want 1", got)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	path := rawDB(t, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(bucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte(keySchemaVersion), []byte("99"))
	})
	_, err := Open(path, Options{})
	want := "knowledge base " + path + " has schema version 99, newer than this binary supports (1); use a newer ecrae or another file"
	if err == nil || err.Error() != want {
		t.Fatalf("Open(v99) = %v, want %q", err, want)
	}
	// The failed Open released the lock and left the stamp alone.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("file still locked after a refused Open: %v", err)
	}
	defer db.Close()
	checkIntegrity(t, db)
	if err := db.View(func(tx *bolt.Tx) error {
		if got := string(tx.Bucket([]byte(bucketMeta)).Get([]byte(keySchemaVersion))); got != "99" {
			t.Errorf("refused Open rewrote schema_version to %q", got)
		}
		if tx.Bucket([]byte(bucketTags)) != nil {
			t.Error("refused Open created buckets")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseDamagedMeta(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(tx *bolt.Tx) error
		want string
	}{
		{"meta without version", func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte(bucketMeta))
			return err
		}, "meta bucket has no schema_version; the file is damaged"},
		{"version not a number", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(bucketMeta))
			if err != nil {
				return err
			}
			return b.Put([]byte(keySchemaVersion), []byte("one"))
		}, `meta/schema_version is "one", not a version number; the file is damaged`},
		{"v1 without entity buckets", func(tx *bolt.Tx) error {
			b, err := tx.CreateBucket([]byte(bucketMeta))
			if err != nil {
				return err
			}
			return b.Put([]byte(keySchemaVersion), []byte("1"))
		}, `schema version 1 but bucket "architectures" is missing; the file is damaged`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := rawDB(t, tc.fill)
			_, err := Open(path, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want an error naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := tempDB(t)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open(garbage) = %v, want an error naming the file", err)
	}
}
