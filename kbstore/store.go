package kbstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names. Each entity bucket maps name → JSON of the entity.
const (
	bucketMeta          = "meta"
	bucketArchitectures = "architectures"
	bucketTags          = "tags"
	bucketFlavors       = "flavors"
	bucketHosts         = "hosts"

	keySchemaVersion = "schema_version"
)

// flockRetryPad is bbolt's lock retry interval (flockRetryTimeout).
const flockRetryPad = 50 * time.Millisecond

func entityBuckets() []string {
	return []string{bucketArchitectures, bucketTags, bucketFlavors, bucketHosts}
}

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for bbolt's file lock; 0 means 1s.
	Timeout time.Duration
}

// Store is the bbolt-backed knowledge base. It is safe for concurrent use:
// bbolt serialises writers and gives readers consistent snapshots.
type Store struct {
	db   *bolt.DB
	path string
	rev  atomic.Uint64
	now  func() time.Time
	// pub, when set (cluster mode), publishes every local write to the
	// replicated KB before it commits (see replicated.go).
	pub atomic.Pointer[publisherBox]

	// afterPut, when set (tests only), runs inside the write transaction
	// after each entity is written by Import; a crash test kills the process
	// from it.
	afterPut func(written int)
}

// errUnchanged rolls back a write transaction that turned out to have
// nothing to do, without reporting an error or bumping the revision.
var errUnchanged = errors.New("kbstore: unchanged")

// Open opens (creating if needed) the KB file at path, waiting at most
// opts.Timeout for another process's lock, and migrates it to
// CurrentSchemaVersion.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("knowledge base %s: create directory: %w", path, err)
	}
	// bbolt retries the lock every 50ms and gives up once less than one
	// retry is left, so without the pad it can stop 50ms short of timeout
	// and the "waited" in the error would be untrue.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout + flockRetryPad})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("knowledge base %s is %w by another process (waited %s)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open knowledge base %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx, path); err != nil {
			return err
		}
		return ensureHistory(tx)
	}); err != nil {
		_ = db.Close() // the migration error is the one worth reporting
		return nil, err
	}
	s := &Store{db: db, path: path, now: time.Now}
	// Start at 1 so a cache stamped with the zero revision is always stale.
	s.rev.Store(1)
	return s, nil
}

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close knowledge base %s: %w", s.path, err)
	}
	return nil
}

// Path is the file Open was given.
func (s *Store) Path() string { return s.path }

// Revision changes after every committed write (it starts at 1 and only
// grows), so callers can cache data derived from the KB. It is not
// persisted: it identifies states of this Store value only.
func (s *Store) Revision() uint64 { return s.rev.Load() }

// view runs fn in a read transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// update runs fn in one write transaction, keeps the KB as it was in the
// history (change says what fn does), and bumps the revision if it
// committed.
func (s *Store) update(ctx context.Context, change string, fn func(tx *bolt.Tx) error) error {
	return s.updateTx(ctx, change, true, fn)
}

// updateTx is update; publish=false for a write that came from the
// replicated KB and must not be published back.
func (s *Store) updateTx(ctx context.Context, change string, publish bool, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		before, err := readKB(tx)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		if err := recordHistory(tx, before, change, s.now()); err != nil {
			return fmt.Errorf("knowledge base history: %w", err)
		}
		// A caller that gave up while we waited for the writer lock or
		// worked gets nothing committed.
		if err := ctx.Err(); err != nil {
			return err
		}
		if b := s.pub.Load(); publish && b != nil {
			return publishInTx(ctx, tx, b.p, change)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.rev.Add(1)
	return nil
}

// SeedDefault imports Default() if the KB holds no entities, and reports
// whether it did.
func (s *Store) SeedDefault(ctx context.Context) (bool, error) {
	kb, err := Default()
	if err != nil {
		return false, err
	}
	err = s.update(ctx, "seed the default KB", func(tx *bolt.Tx) error {
		for _, b := range entityBuckets() {
			if k, _ := tx.Bucket([]byte(b)).Cursor().First(); k != nil {
				return errUnchanged
			}
		}
		return s.putAll(tx, kb)
	})
	if errors.Is(err, errUnchanged) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("seed default KB: %w", err)
	}
	return true, nil
}

// Snapshot reads the whole KB in one transaction, sorted by name. The
// result is the caller's to keep and modify.
func (s *Store) Snapshot(ctx context.Context) (*KB, error) {
	var kb *KB
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		kb, err = readKB(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return kb, nil
}

// Import writes kb in one transaction. replace=true wipes the KB first;
// otherwise entities are upserted by name and the rest is kept, and kb's
// references may name entities already stored. The resulting KB must
// validate, or nothing changes.
func (s *Store) Import(ctx context.Context, kb *KB, replace bool) error {
	if replace {
		if err := Validate(kb); err != nil {
			return err
		}
	}
	change := "import (merge)"
	if replace {
		change = "import --replace"
	}
	return s.update(ctx, change, func(tx *bolt.Tx) error {
		if replace {
			return replaceAll(s, tx, kb)
		}
		cur, err := readKB(tx)
		if err != nil {
			return err
		}
		if verr := validate(merge(cur, kb), namePaths); verr != nil {
			verr.Msg += " (after merging the import into the current KB)"
			return verr
		}
		return s.putAll(tx, kb)
	})
}

// replaceAll makes kb the whole KB.
func replaceAll(s *Store, tx *bolt.Tx, kb *KB) error {
	for _, b := range entityBuckets() {
		if err := tx.DeleteBucket([]byte(b)); err != nil {
			return fmt.Errorf("clear %s: %w", b, err)
		}
		if _, err := tx.CreateBucket([]byte(b)); err != nil {
			return fmt.Errorf("clear %s: %w", b, err)
		}
	}
	return s.putAll(tx, kb)
}

// merge upserts src's entities into dst by name.
func merge(dst, src *KB) *KB {
	out := dst.clone()
	upsert(&out.Architectures, src.Architectures, func(a *Architecture) string { return a.Name })
	upsert(&out.Tags, src.Tags, func(t *Tag) string { return t.Name })
	upsert(&out.Flavors, src.Flavors, func(f *Flavor) string { return f.Name })
	upsert(&out.Hosts, src.Hosts, func(h *Host) string { return h.Name })
	return out
}

func upsert[T any](dst *[]T, src []T, name func(*T) string) {
	at := make(map[string]int, len(*dst))
	for i := range *dst {
		at[name(&(*dst)[i])] = i
	}
	for i := range src {
		if j, ok := at[name(&src[i])]; ok {
			(*dst)[j] = src[i]
		} else {
			at[name(&src[i])] = len(*dst)
			*dst = append(*dst, src[i])
		}
	}
}

// putAll writes every entity of kb, overwriting same-named ones.
func (s *Store) putAll(tx *bolt.Tx, kb *KB) error {
	written := 0
	put := func(bucket, name string, v any) error {
		if err := putJSON(tx, bucket, name, v); err != nil {
			return err
		}
		written++
		if s.afterPut != nil {
			s.afterPut(written)
		}
		return nil
	}
	for i := range kb.Architectures {
		if err := put(bucketArchitectures, kb.Architectures[i].Name, &kb.Architectures[i]); err != nil {
			return err
		}
	}
	for i := range kb.Tags {
		if err := put(bucketTags, kb.Tags[i].Name, &kb.Tags[i]); err != nil {
			return err
		}
	}
	for i := range kb.Flavors {
		if err := put(bucketFlavors, kb.Flavors[i].Name, &kb.Flavors[i]); err != nil {
			return err
		}
	}
	for i := range kb.Hosts {
		if err := put(bucketHosts, kb.Hosts[i].Name, &kb.Hosts[i]); err != nil {
			return err
		}
	}
	return nil
}

func putJSON(tx *bolt.Tx, bucket, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", bucket, quote.Value(name), err)
	}
	if err := tx.Bucket([]byte(bucket)).Put([]byte(name), data); err != nil {
		return fmt.Errorf("write %s %s: %w", bucket, quote.Value(name), err)
	}
	return nil
}

// readKB decodes every bucket. bbolt iterates keys in byte order, which is
// name order. json.Unmarshal copies out of the mmap'd values, so the
// result outlives the transaction.
func readKB(tx *bolt.Tx) (*KB, error) {
	kb := &KB{SchemaVersion: CurrentSchemaVersion}
	var err error
	if kb.Architectures, err = readAll[Architecture](tx, bucketArchitectures); err != nil {
		return nil, err
	}
	if kb.Tags, err = readAll[Tag](tx, bucketTags); err != nil {
		return nil, err
	}
	if kb.Flavors, err = readAll[Flavor](tx, bucketFlavors); err != nil {
		return nil, err
	}
	if kb.Hosts, err = readAll[Host](tx, bucketHosts); err != nil {
		return nil, err
	}
	return kb, nil
}

func readAll[T any](tx *bolt.Tx, bucket string) ([]T, error) {
	var out []T
	err := tx.Bucket([]byte(bucket)).ForEach(func(k, v []byte) error {
		var e T
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decode %s %s: %w", bucket, quote.Bytes(k), err)
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// readOne decodes one entity; found is false when name is absent.
func readOne[T any](tx *bolt.Tx, bucket, name string) (e T, found bool, err error) {
	v := tx.Bucket([]byte(bucket)).Get([]byte(name))
	if v == nil {
		return e, false, nil
	}
	if err := json.Unmarshal(v, &e); err != nil {
		return e, true, fmt.Errorf("decode %s %s: %w", bucket, quote.Value(name), err)
	}
	return e, true, nil
}
