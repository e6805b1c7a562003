package power

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/internal/seqlog"
	bolt "go.etcd.io/bbolt"
)

// Action of a history event.
type Action string

// Actions recorded.
const (
	ActOff       Action = "off"        // powered off (service disabled first)
	ActOn        Action = "on"         // powered on; the service waits for the host to report
	ActEnabled   Action = "enabled"    // the woken host reported: its service is enabled again
	ActAdviseOff Action = "advise-off" // policy advise: would power off
	ActAdviseOn  Action = "advise-on"  // policy advise: would wake
	ActRefused   Action = "refused"    // an off or on that a safety rule stopped
	ActFailed    Action = "failed"     // the BMC, Ironic or Nova failed
	ActPaused    Action = "paused"     // the policy stopped acting (stale view), or resumed
)

// Event is one recorded power action.
type Event struct {
	Seq      uint64        `json:"seq"`
	At       time.Time     `json:"at"`
	Host     string        `json:"host,omitempty"`
	Endpoint string        `json:"endpoint,omitempty"`
	Action   Action        `json:"action"`
	By       string        `json:"by"` // "cli" (an operator's call), "policy", "no-room", "plan"
	Detail   string        `json:"detail,omitempty"`
	Latency  time.Duration `json:"latency_ns,omitempty"` // ActEnabled: power-on to service enabled
}

var (
	bucketEvents     = []byte("events")
	bucketReplicated = []byte("replicated") // cluster mode: the replicated log, by its numbers
)

// bucket is where events are listed from: the replicated log once there
// is a Publisher.
func (h *History) bucket(tx *bolt.Tx) *bolt.Bucket {
	if h.pub.Load() != nil {
		return tx.Bucket(bucketReplicated)
	}
	return tx.Bucket(bucketEvents)
}

// ErrMalformedEvent: a replicated event that is not an Event's JSON.
var ErrMalformedEvent = errors.New("malformed event")

// DefaultHistoryLimit bounds the history: the oldest events go first.
const DefaultHistoryLimit = 10000

// History is the bounded event log in its own bbolt file (power.db).
type History struct {
	db    *bolt.DB
	limit int
	pub   atomic.Pointer[publisherBox]
}

// Publisher appends an event (JSON) to the cluster's replicated power
// log and returns its sequence number there (cluster mode, package ha).
type Publisher interface {
	PublishEvent(ctx context.Context, event []byte) (seq uint64, err error)
}

type publisherBox struct{ p Publisher }

// SetPublisher makes every later Append publish through p and store the
// event under the sequence number p gives; the other replicas apply it
// under the same one (ApplyReplicated). From then on the history is the
// replicated log, kept in a bucket of its own: the events this file held
// before (one replica's, numbered on its own) are no longer listed.
func (h *History) SetPublisher(p Publisher) { h.pub.Store(&publisherBox{p}) }

// Limit is the number of events kept.
func (h *History) Limit() int { return h.limit }

// OpenHistory opens (or creates) the history file.
func OpenHistory(path string, limit int) (*History, error) {
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("power history %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEvents); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketReplicated)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("power history %s: %w", path, err)
	}
	return &History{db: db, limit: limit}, nil
}

// Close closes the file.
func (h *History) Close() error { return h.db.Close() }

// Append stores e with the next sequence number and drops the oldest
// events past the limit, in one transaction. With a Publisher, the event
// is published first and stored under the log's number; if publishing
// fails nothing is stored.
func (h *History) Append(ctx context.Context, e *Event) error {
	if box := h.pub.Load(); box != nil {
		e.Seq = 0
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		seq, err := box.p.PublishEvent(ctx, v)
		if err != nil {
			return fmt.Errorf("power history: replicate: %w", err)
		}
		e.Seq = seq
		return h.ApplyReplicated(seq, v)
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(seqlog.Key(seq), v); err != nil {
			return err
		}
		return seqlog.Trim(b, seq, h.limit)
	})
}

// ApplyReplicated stores event (JSON, as Append publishes it) under seq,
// the replicated log's number, in one transaction, and drops the events
// past the limit; an event the limit already dropped is skipped.
func (h *History) ApplyReplicated(seq uint64, event []byte) error {
	var e Event
	if err := json.Unmarshal(event, &e); err != nil {
		return fmt.Errorf("power history: event %d: %w: %w", seq, ErrMalformedEvent, err)
	}
	e.Seq = seq
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		return seqlog.PutNumbered(tx.Bucket(bucketReplicated), seq, v, h.limit)
	})
}

// ReplicatedSeq is the highest number of the replicated log stored (0:
// none): a replica follows the log from the next one.
func (h *History) ReplicatedSeq() uint64 { return seqlog.LastIn(h.db, bucketReplicated) }

// List returns the newest events first, at most limit (0: all), only of
// host when host is not "".
func (h *History) List(host string, limit int) ([]Event, error) {
	var out []Event
	err := h.db.View(func(tx *bolt.Tx) error {
		c := h.bucket(tx).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: %w", seqlog.Seq(k), err)
			}
			if host != "" && e.Host != host {
				continue
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}
