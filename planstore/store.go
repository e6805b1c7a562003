// Package planstore keeps rebalance plans and the progress of their
// execution in their own bbolt file (plans.db beside the knowledge base),
// so that an execution cut short by a restart is visible afterwards: Open
// marks what was running as interrupted.
package planstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Plan statuses.
const (
	StatusPlanned     = "planned"
	StatusExecuting   = "executing"
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	// StatusAborted: stopped by an operator after the steps in flight.
	StatusAborted = "aborted"
	// StatusCancelled: withdrawn before it ran.
	StatusCancelled = "cancelled"
	// StatusExpired: not started before its ExpiresAt.
	StatusExpired = "expired"
)

// transitions are the legal status changes; every other is refused.
var transitions = map[string][]string{
	StatusPlanned:   {StatusExecuting, StatusCancelled, StatusExpired},
	StatusExecuting: {StatusSucceeded, StatusFailed, StatusAborted, StatusInterrupted},
}

// Terminal says whether a plan in status st can change no more.
func Terminal(st string) bool { return len(transitions[st]) == 0 }

// Step statuses.
const (
	StepPending = "pending"
	StepRunning = "running"
	StepDone    = "done"
	StepFailed  = "failed"
	// StepSkipped: not run, because the plan stopped before it.
	StepSkipped = "skipped"
	// StepUnknown: in flight when the service stopped; the instance may be
	// on either host.
	StepUnknown = "unknown"
)

// Plan is a stored rebalance plan.
type Plan struct {
	ID        string    `json:"id"`
	Status    string    `json:"status"`
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"created_at"`

	Algorithm  string  `json:"algorithm"`
	Seed       uint64  `json:"seed"`
	Seconds    float64 `json:"seconds"`
	Stopped    string  `json:"stopped"`
	Iterations int64   `json:"iterations"`

	Steps        []Step        `json:"steps"`
	Waves        int           `json:"waves"`
	PowerBeforeW float64       `json:"power_before_w"`
	PowerAfterW  float64       `json:"power_after_w"`
	MigrationMB  int64         `json:"migration_mb"`
	MigrationW   float64       `json:"migration_w"`
	HostsFreed   []string      `json:"hosts_freed,omitempty"`
	PowerDown    []string      `json:"power_down,omitempty"`
	HostsBefore  int           `json:"hosts_before"`
	HostsAfter   int           `json:"hosts_after"`
	Bounds       Bounds        `json:"bounds"`
	Unreachable  []Unreachable `json:"unreachable,omitempty"`
	// Fixed lists each instance that cannot move; plans stored since
	// FixedGroups exists leave it empty (it made plans of large clouds
	// megabytes long).
	Fixed       []Fixed      `json:"fixed,omitempty"`
	FixedGroups []FixedGroup `json:"fixed_groups,omitempty"`
	Note        string       `json:"note,omitempty"`
	MaxPerHost  int          `json:"max_per_host"`
	MaxParallel int          `json:"max_parallel"`
	Relieve     float64      `json:"relieve,omitempty"` // ConsolidateOptions.Relieve it was made with

	// Repair: hosts overloaded before and not after; still overloaded
	// after, and why.
	Repaired         []string `json:"repaired_hosts,omitempty"`
	Overloaded       []string `json:"overloaded_hosts,omitempty"`
	InfeasibleReason string   `json:"infeasible_reason,omitempty"`

	// Execution.
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ExpiresAt: a planned plan not started by then expires (zero: never).
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// ExecutedBy is who started the execution.
	ExecutedBy string `json:"executed_by,omitempty"`
	// AbortRequested: stop after the steps in flight.
	AbortRequested bool `json:"abort_requested,omitempty"`
}

// FixedGroup counts the instances that cannot move for one reason and
// names the first few (MaxFixedExamples).
type FixedGroup struct {
	Reason   string   `json:"reason"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

// MaxFixedExamples is how many instances a FixedGroup names.
const MaxFixedExamples = 10

// Step is one live migration of a plan.
type Step struct {
	Wave         int       `json:"wave"`
	InstanceID   string    `json:"instance_id"`
	InstanceName string    `json:"instance_name,omitempty"`
	From         string    `json:"from"`
	To           string    `json:"to"`
	MemoryMB     int64     `json:"memory_mb"`
	Detour       bool      `json:"detour,omitempty"`
	Status       string    `json:"status"`
	Error        string    `json:"error,omitempty"`
	ConfirmedBy  string    `json:"confirmed_by,omitempty"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
}

// Bounds are the optimizer's lower bounds.
type Bounds struct {
	Hosts      int     `json:"hosts"`
	Continuous int     `json:"continuous"`
	L2         int     `json:"l2"`
	Conflicts  int     `json:"conflicts"`
	Watts      float64 `json:"watts"`
}

// Unreachable is a move the optimizer wanted that the plan does not make.
type Unreachable struct {
	InstanceID string `json:"instance_id"`
	Target     string `json:"target"`
	Reason     string `json:"reason"`
}

// Fixed is an instance that could not move, and why.
type Fixed struct {
	InstanceID string `json:"instance_id"`
	Reason     string `json:"reason"`
}

// Errors.
var (
	ErrNotFound = errors.New("plan not found")
	ErrLocked   = errors.New("locked")
	// ErrTransition: the status change asked is not legal from the
	// plan's status.
	ErrTransition = errors.New("illegal status change")
	// ErrExpired: the plan expired before it was started.
	ErrExpired = errors.New("plan expired")
)

const (
	bucketPlans = "plans"
	bucketMeta  = "meta"
	keyVersion  = "schema_version"
	// schemaVersion of the file; a newer file is refused.
	schemaVersion = 1
)

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for bbolt's file lock; 0 means 1s.
	Timeout time.Duration
	// Now is the clock recovery stamps interrupted plans with; nil =
	// time.Now.
	Now func() time.Time
}

// Store is the plan file. It is safe for concurrent use.
type Store struct {
	db        *bolt.DB
	path      string
	recovered []string
	pub       atomic.Pointer[publisherBox] // cluster mode: see replicated.go
}

// Open opens (creating if needed) the plan file at path. bbolt's file lock
// means no other process has it open, so any plan still executing was cut
// short: Open marks it interrupted, a running step unknown and the steps
// after it skipped, and says so in the plan's message.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("plan store %s: create directory: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("plan store %s is %w by another process (waited %s)", path, ErrLocked, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open plan store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte(bucketMeta))
		if err != nil {
			return err
		}
		if v := meta.Get([]byte(keyVersion)); v != nil {
			n, err := strconv.Atoi(string(v))
			if err != nil {
				return fmt.Errorf("schema version %s is not a number", quote.Bytes(v))
			}
			if n > schemaVersion {
				return fmt.Errorf("schema version %d is newer than this program's %d", n, schemaVersion)
			}
		}
		if err := meta.Put([]byte(keyVersion), []byte(strconv.Itoa(schemaVersion))); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists([]byte(bucketPlans))
		if err != nil {
			return err
		}
		return s.recover(b, now())
	})
	if err != nil {
		_ = db.Close() // the error above is the one worth reporting
		return nil, fmt.Errorf("plan store %s: %w", path, err)
	}
	return s, nil
}

// recover marks the plans left executing as interrupted.
func (s *Store) recover(b *bolt.Bucket, now time.Time) error {
	type fix struct {
		k []byte
		p *Plan
	}
	var fixes []fix
	err := b.ForEach(func(k, v []byte) error {
		var p Plan
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("plan %x: %w", k, err)
		}
		if p.Status != StatusExecuting {
			return nil
		}
		fixes = append(fixes, fix{append([]byte(nil), k...), &p})
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range fixes {
		Interrupt(f.p, now)
		v, err := json.Marshal(f.p)
		if err != nil {
			return err
		}
		if err := b.Put(f.k, v); err != nil {
			return err
		}
		s.recovered = append(s.recovered, f.p.ID)
	}
	return nil
}

// Interrupt marks an executing plan as cut short at now: the running steps
// unknown, the pending ones skipped, and a message saying what moved.
func Interrupt(p *Plan, now time.Time) {
	p.Status = StatusInterrupted
	p.FinishedAt = now
	var unknown []string
	for i := range p.Steps {
		st := &p.Steps[i]
		switch st.Status {
		case StepRunning:
			st.Status = StepUnknown
			st.Error = "the service stopped while this migration was in flight: check where the instance runs"
			unknown = append(unknown, st.InstanceID)
		case StepPending, "":
			st.Status = StepSkipped
		}
	}
	p.Message = Summary(p) + "; execution interrupted (the service stopped)"
	if len(unknown) > 0 {
		p.Message += "; in flight, outcome unknown: " + strings.Join(unknown, ", ")
	}
}

// Summary counts a plan's steps by status, as "3 done, 1 failed, 4 skipped".
func Summary(p *Plan) string {
	order := []string{StepDone, StepRunning, StepFailed, StepUnknown, StepPending, StepSkipped}
	n := map[string]int{}
	for _, st := range p.Steps {
		n[st.Status]++
	}
	var parts []string
	for _, s := range order {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	if len(parts) == 0 {
		return "no steps"
	}
	return strings.Join(parts, ", ")
}

// Recovered lists the plans Open found executing and marked interrupted.
func (s *Store) Recovered() []string { return append([]string(nil), s.recovered...) }

// Path is the file Open was given.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close plan store %s: %w", s.path, err)
	}
	return nil
}

// key is the bucket key of plan number n: big-endian, so the cursor's
// order is the order of creation.
func key(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// parseID reads "p17".
func parseID(id string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, "p"), 10, 64)
	if err != nil || !strings.HasPrefix(id, "p") || n == 0 {
		return 0, fmt.Errorf("%w: %s is not a plan id (p1, p2, ...)", ErrNotFound, quote.Value(id))
	}
	return n, nil
}

// Create stores a new plan, gives it the next id (p1, p2, ...) and returns
// the id.
func (s *Store) Create(ctx context.Context, p *Plan) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var id string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		id = "p" + strconv.FormatUint(n, 10)
		p.ID = id
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		return s.put(ctx, b, n, v)
	})
	if err != nil {
		return "", fmt.Errorf("store plan: %w", err)
	}
	return id, nil
}

// Get returns plan id; an empty id means the latest plan.
func (s *Store) Get(ctx context.Context, id string) (*Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p *Plan
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		var v []byte
		if id == "" {
			_, v = b.Cursor().Last()
			if v == nil {
				return fmt.Errorf("%w: no plan stored yet", ErrNotFound)
			}
		} else {
			n, err := parseID(id)
			if err != nil {
				return err
			}
			if v = b.Get(key(n)); v == nil {
				return fmt.Errorf("%w: %s", ErrNotFound, id)
			}
		}
		p = new(Plan)
		return json.Unmarshal(v, p) // copies: v is only valid in the transaction
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Update reads plan id, lets fn change it, and writes it back, in one
// transaction. An error from fn aborts the update and is returned. fn may
// not change the status: Start, Finish, Cancel and Expire do.
func (s *Store) Update(ctx context.Context, id string, fn func(*Plan) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n, err := parseID(id)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		v := b.Get(key(n))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		var p Plan
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("plan %s: %w", id, err)
		}
		was := p.Status
		if err := fn(&p); err != nil {
			return err
		}
		if p.Status != was {
			return fmt.Errorf("%w: plan %s: %s → %s through Update (use the status methods)", ErrTransition, id, was, p.Status)
		}
		out, err := json.Marshal(&p)
		if err != nil {
			return err
		}
		return s.put(ctx, b, n, out)
	})
}

// List returns the ids of the latest plans, newest first, at most limit
// (0 = all).
func (s *Store) List(ctx context.Context, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketPlans)).Cursor()
		for k, _ := c.Last(); k != nil && (limit <= 0 || len(ids) < limit); k, _ = c.Prev() {
			ids = append(ids, "p"+strconv.FormatUint(binary.BigEndian.Uint64(k), 10))
		}
		return nil
	})
	return ids, err
}

// change is Update for a status change: it refuses a transition the table
// does not allow, then lets fn fill in the rest.
func (s *Store) change(ctx context.Context, id, to string, fn func(*Plan) error) (*Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	var out *Plan
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		v := b.Get(key(n))
		if v == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		var p Plan
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("plan %s: %w", id, err)
		}
		if !slices.Contains(transitions[p.Status], to) {
			return fmt.Errorf("%w: plan %s is %s, it cannot become %s", ErrTransition, id, p.Status, to)
		}
		p.Status = to
		if fn != nil {
			if err := fn(&p); err != nil {
				return err
			}
		}
		data, err := json.Marshal(&p)
		if err != nil {
			return err
		}
		out = &p
		return s.put(ctx, b, n, data)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Start marks a planned plan executing, started by who at now, its steps
// pending. A plan past its ExpiresAt is marked expired instead and
// ErrExpired returned.
func (s *Store) Start(ctx context.Context, id, who string, now time.Time) (*Plan, error) {
	p, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Status == StatusPlanned && !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt) {
		if _, err := s.Expire(ctx, now); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: plan %s expired at %s: plan again", ErrExpired, id, p.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return s.change(ctx, id, StatusExecuting, func(p *Plan) error {
		// Checked again inside the transaction: Expire may have run since.
		if !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt) {
			return fmt.Errorf("%w: plan %s: plan again", ErrExpired, id)
		}
		p.StartedAt, p.ExecutedBy, p.Message = now, who, "executing"
		for i := range p.Steps {
			p.Steps[i].Status = StepPending
		}
		return nil
	})
}

// Finish ends an executing plan with status to (succeeded, failed,
// aborted, interrupted) at now; fn sets the message and the steps.
func (s *Store) Finish(ctx context.Context, id, to string, now time.Time, fn func(*Plan)) (*Plan, error) {
	if to == StatusExecuting || !slices.Contains(transitions[StatusExecuting], to) {
		return nil, fmt.Errorf("%w: %q does not end an execution", ErrTransition, to)
	}
	return s.change(ctx, id, to, func(p *Plan) error {
		p.FinishedAt = now
		if fn != nil {
			fn(p)
		}
		return nil
	})
}

// Cancel withdraws a planned plan.
func (s *Store) Cancel(ctx context.Context, id, who string, now time.Time) (*Plan, error) {
	return s.change(ctx, id, StatusCancelled, func(p *Plan) error {
		p.FinishedAt = now
		p.Message = "cancelled"
		if who != "" {
			p.Message += " by " + who
		}
		return nil
	})
}

// RequestAbort asks an executing plan to stop after its steps in flight:
// the executor reads the flag before each wave.
func (s *Store) RequestAbort(ctx context.Context, id string) (*Plan, error) {
	var out *Plan
	err := s.Update(ctx, id, func(p *Plan) error {
		if p.Status != StatusExecuting {
			return fmt.Errorf("%w: plan %s is %s, not executing: only a running plan can be aborted", ErrTransition, id, p.Status)
		}
		p.AbortRequested = true
		out = p
		return nil
	})
	return out, err
}

// Expire marks every planned plan whose ExpiresAt is not after now as
// expired, in one transaction, and returns their ids.
func (s *Store) Expire(ctx context.Context, now time.Time) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ids []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		type upd struct {
			k []byte
			v []byte
		}
		var ups []upd
		err := b.ForEach(func(k, v []byte) error {
			var p Plan
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("plan %x: %w", k, err)
			}
			if p.Status != StatusPlanned || p.ExpiresAt.IsZero() || now.Before(p.ExpiresAt) {
				return nil
			}
			p.Status, p.FinishedAt = StatusExpired, now
			p.Message = "expired unexecuted at " + p.ExpiresAt.UTC().Format(time.RFC3339)
			data, err := json.Marshal(&p)
			if err != nil {
				return err
			}
			ups = append(ups, upd{append([]byte(nil), k...), data})
			ids = append(ids, p.ID)
			return nil
		})
		if err != nil {
			return err
		}
		for _, u := range ups {
			if err := s.put(ctx, b, binary.BigEndian.Uint64(u.k), u.v); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, ErrReadOnly) {
		return nil, nil // the leader expires them
	}
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Prune deletes the oldest plans beyond the newest keep, in one
// transaction, never an executing one; it returns how many it deleted.
func (s *Store) Prune(ctx context.Context, keep int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if keep <= 0 {
		return 0, fmt.Errorf("prune: keep must be positive, got %d", keep)
	}
	deleted := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketPlans))
		var doomed [][]byte
		c := b.Cursor()
		seen := 0
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			seen++
			if seen <= keep {
				continue
			}
			var p struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("plan %x: %w", k, err)
			}
			if p.Status == StatusExecuting {
				continue
			}
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
			if err := s.publishDelete(ctx, binary.BigEndian.Uint64(k)); err != nil {
				return err
			}
		}
		deleted = len(doomed)
		return nil
	})
	return deleted, err
}

// Plans returns the latest plans, newest first, at most limit (0 = all).
func (s *Store) Plans(ctx context.Context, limit int) ([]*Plan, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []*Plan
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(bucketPlans)).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			p := new(Plan)
			if err := json.Unmarshal(v, p); err != nil {
				return fmt.Errorf("plan %x: %w", k, err)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
