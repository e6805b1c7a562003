package kbstore

import (
	"fmt"
	"strconv"

	"github.com/ecrae/ecrae/internal/quote"
	bolt "go.etcd.io/bbolt"
)

// migration upgrades a DB from schema version `from` to from+1, inside the
// Open transaction.
type migration struct {
	from  int
	what  string
	apply func(tx *bolt.Tx) error
}

// migrations lists every step, in order; migrations()[i].from == i. A
// function, not a variable, so the table cannot be changed at run time.
func migrations() []migration {
	return []migration{
		{from: 0, what: "create the entity buckets and stamp the schema version", apply: migrateV0},
	}
}

// migrateV0 upgrades a DB without a meta bucket: a new, empty file, or one
// written before the schema was versioned (same JSON values).
func migrateV0(tx *bolt.Tx) error {
	for _, b := range append([]string{bucketMeta}, entityBuckets()...) {
		if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
			return err
		}
	}
	return nil
}

// migrate brings the DB to CurrentSchemaVersion, refusing a DB written by a
// newer binary: its layout may mean something this code does not know.
func migrate(tx *bolt.Tx, path string) error {
	v, err := schemaVersion(tx)
	if err != nil {
		return fmt.Errorf("knowledge base %s: %w", path, err)
	}
	if v > CurrentSchemaVersion {
		return fmt.Errorf("knowledge base %s has schema version %d, newer than this binary supports (%d); use a newer ecrae or another file", path, v, CurrentSchemaVersion)
	}
	steps := migrations()
	for v < CurrentSchemaVersion {
		m := steps[v]
		if err := m.apply(tx); err != nil {
			return fmt.Errorf("knowledge base %s: migrate schema %d to %d (%s): %w", path, m.from, m.from+1, m.what, err)
		}
		v++
		if err := tx.Bucket([]byte(bucketMeta)).Put([]byte(keySchemaVersion), []byte(strconv.Itoa(v))); err != nil {
			return fmt.Errorf("knowledge base %s: stamp schema version %d: %w", path, v, err)
		}
	}
	for _, b := range entityBuckets() {
		if tx.Bucket([]byte(b)) == nil {
			return fmt.Errorf("knowledge base %s: schema version %d but bucket %s is missing; the file is damaged", path, v, quote.Value(b))
		}
	}
	return nil
}

// schemaVersion reads meta/schema_version; no meta bucket means version 0.
func schemaVersion(tx *bolt.Tx) (int, error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		return 0, nil
	}
	raw := meta.Get([]byte(keySchemaVersion))
	if raw == nil {
		return 0, fmt.Errorf("meta bucket has no %s; the file is damaged", keySchemaVersion)
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil || v < 0 {
		return 0, fmt.Errorf("meta/%s is %s, not a version number; the file is damaged", keySchemaVersion, quote.Bytes(raw))
	}
	return v, nil
}
