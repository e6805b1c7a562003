package kbstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	bolt "go.etcd.io/bbolt"
)

// kind describes one entity type for the generic CRUD code below.
type kind[T any] struct {
	noun   string // "tag": messages and single-entity field paths
	bucket string
	name   func(*T) string
	items  func(*KB) *[]T
}

func architectureKind() kind[Architecture] {
	return kind[Architecture]{"architecture", bucketArchitectures,
		func(a *Architecture) string { return a.Name }, func(kb *KB) *[]Architecture { return &kb.Architectures }}
}

func tagKind() kind[Tag] {
	return kind[Tag]{"tag", bucketTags, func(t *Tag) string { return t.Name }, func(kb *KB) *[]Tag { return &kb.Tags }}
}

func flavorKind() kind[Flavor] {
	return kind[Flavor]{"flavor", bucketFlavors, func(f *Flavor) string { return f.Name }, func(kb *KB) *[]Flavor { return &kb.Flavors }}
}

func hostKind() kind[Host] {
	return kind[Host]{"host", bucketHosts, func(h *Host) string { return h.Name }, func(kb *KB) *[]Host { return &kb.Hosts }}
}

func list[T any](ctx context.Context, s *Store, k kind[T]) ([]T, error) {
	var out []T
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = readAll[T](tx, k.bucket)
		return err
	})
	return out, err
}

func get[T any](ctx context.Context, s *Store, k kind[T], name string) (T, error) {
	var e T
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var found bool
		var err error
		if e, found, err = readOne[T](tx, k.bucket, name); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%s %s %w", k.noun, quote.Value(name), ErrNotFound)
		}
		return nil
	})
	return e, err
}

// write creates (create=true) or replaces e. The whole KB is read and
// validated, because references run between kinds; a KB is small (tens to
// hundreds of entities), so this costs little.
func write[T any](ctx context.Context, s *Store, k kind[T], e T, create bool) error {
	name := k.name(&e)
	change := "update " + k.noun + " " + name
	if create {
		change = "create " + k.noun + " " + name
	}
	return s.update(ctx, change, func(tx *bolt.Tx) error {
		kb, err := readKB(tx)
		if err != nil {
			return err
		}
		items := k.items(kb)
		i := slices.IndexFunc(*items, func(x T) bool { return k.name(&x) == name })
		switch {
		case create && i >= 0:
			return fmt.Errorf("%s %s %w", k.noun, quote.Value(name), ErrExists)
		case !create && i < 0:
			return fmt.Errorf("%s %s %w", k.noun, quote.Value(name), ErrNotFound)
		case create:
			*items = append(*items, e)
		default:
			(*items)[i] = e
		}
		if verr := validate(kb, focusPaths(k.noun, name)); verr != nil {
			return verr
		}
		return putJSON(tx, k.bucket, name, &e)
	})
}

func remove[T any](ctx context.Context, s *Store, k kind[T], name string) error {
	return s.update(ctx, "delete "+k.noun+" "+name, func(tx *bolt.Tx) error {
		kb, err := readKB(tx)
		if err != nil {
			return err
		}
		items := k.items(kb)
		i := slices.IndexFunc(*items, func(x T) bool { return k.name(&x) == name })
		if i < 0 {
			return fmt.Errorf("%s %s %w", k.noun, quote.Value(name), ErrNotFound)
		}
		if refs := referrers(kb, k.noun, name); len(refs) > 0 {
			return fmt.Errorf("%s %s is %w by %s", k.noun, quote.Value(name), ErrInUse, strings.Join(refs, ", "))
		}
		*items = slices.Delete(*items, i, i+1)
		// Defensive: referrers covers every reference validate checks.
		if verr := validate(kb, namePaths); verr != nil {
			return verr
		}
		return tx.Bucket([]byte(k.bucket)).Delete([]byte(name))
	})
}

// referrers names the entities that refer to the given one, for ErrInUse.
func referrers(kb *KB, noun, name string) []string {
	var refs []string
	switch noun {
	case "architecture":
		for _, t := range kb.Tags {
			if slices.ContainsFunc(t.Candidates, func(c Candidate) bool { return c.Architecture == name }) {
				refs = append(refs, fmt.Sprintf("tag %s", quote.Value(t.Name)))
			}
		}
		for _, h := range kb.Hosts {
			if h.Architecture == name {
				refs = append(refs, fmt.Sprintf("host %s", quote.Value(h.Name)))
			}
		}
	case "tag":
		for _, f := range kb.Flavors {
			if slices.Contains(f.Tags, name) {
				refs = append(refs, fmt.Sprintf("flavor %s", quote.Value(f.Name)))
			}
		}
	case "flavor":
		for _, t := range kb.Tags {
			if slices.ContainsFunc(t.Candidates, func(c Candidate) bool { return c.Flavor == name }) {
				refs = append(refs, fmt.Sprintf("tag %s", quote.Value(t.Name)))
			}
		}
	}
	return refs
}

// ListArchitectures returns all architectures sorted by name.
func (s *Store) ListArchitectures(ctx context.Context) ([]Architecture, error) {
	return list(ctx, s, architectureKind())
}

// GetArchitecture returns the named architecture or ErrNotFound.
func (s *Store) GetArchitecture(ctx context.Context, name string) (Architecture, error) {
	return get(ctx, s, architectureKind(), name)
}

// CreateArchitecture adds a; ErrExists if the name is taken.
func (s *Store) CreateArchitecture(ctx context.Context, a Architecture) error {
	return write(ctx, s, architectureKind(), a, true)
}

// UpdateArchitecture replaces the architecture named a.Name; ErrNotFound if
// there is none.
func (s *Store) UpdateArchitecture(ctx context.Context, a Architecture) error {
	return write(ctx, s, architectureKind(), a, false)
}

// DeleteArchitecture removes it; ErrInUse while a tag or host refers to it.
func (s *Store) DeleteArchitecture(ctx context.Context, name string) error {
	return remove(ctx, s, architectureKind(), name)
}

// ListTags returns all tags sorted by name.
func (s *Store) ListTags(ctx context.Context) ([]Tag, error) { return list(ctx, s, tagKind()) }

// GetTag returns the named tag or ErrNotFound.
func (s *Store) GetTag(ctx context.Context, name string) (Tag, error) {
	return get(ctx, s, tagKind(), name)
}

// CreateTag adds t; ErrExists if the name is taken.
func (s *Store) CreateTag(ctx context.Context, t Tag) error { return write(ctx, s, tagKind(), t, true) }

// UpdateTag replaces the tag named t.Name; ErrNotFound if there is none.
func (s *Store) UpdateTag(ctx context.Context, t Tag) error {
	return write(ctx, s, tagKind(), t, false)
}

// DeleteTag removes it; ErrInUse while a flavor lists it.
func (s *Store) DeleteTag(ctx context.Context, name string) error {
	return remove(ctx, s, tagKind(), name)
}

// ListFlavors returns all flavors sorted by name.
func (s *Store) ListFlavors(ctx context.Context) ([]Flavor, error) { return list(ctx, s, flavorKind()) }

// GetFlavor returns the named flavor or ErrNotFound.
func (s *Store) GetFlavor(ctx context.Context, name string) (Flavor, error) {
	return get(ctx, s, flavorKind(), name)
}

// CreateFlavor adds f; ErrExists if the name is taken.
func (s *Store) CreateFlavor(ctx context.Context, f Flavor) error {
	return write(ctx, s, flavorKind(), f, true)
}

// UpdateFlavor replaces the flavor named f.Name; ErrNotFound if there is none.
func (s *Store) UpdateFlavor(ctx context.Context, f Flavor) error {
	return write(ctx, s, flavorKind(), f, false)
}

// DeleteFlavor removes it; ErrInUse while a tag candidate names it.
func (s *Store) DeleteFlavor(ctx context.Context, name string) error {
	return remove(ctx, s, flavorKind(), name)
}

// ListHosts returns all hosts sorted by name.
func (s *Store) ListHosts(ctx context.Context) ([]Host, error) { return list(ctx, s, hostKind()) }

// GetHost returns the named host or ErrNotFound.
func (s *Store) GetHost(ctx context.Context, name string) (Host, error) {
	return get(ctx, s, hostKind(), name)
}

// CreateHost adds h; ErrExists if the name is taken.
func (s *Store) CreateHost(ctx context.Context, h Host) error {
	return write(ctx, s, hostKind(), h, true)
}

// UpdateHost replaces the host named h.Name; ErrNotFound if there is none.
func (s *Store) UpdateHost(ctx context.Context, h Host) error {
	return write(ctx, s, hostKind(), h, false)
}

// DeleteHost removes it. Nothing refers to hosts.
func (s *Store) DeleteHost(ctx context.Context, name string) error {
	return remove(ctx, s, hostKind(), name)
}
