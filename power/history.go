package power

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

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

var bucketEvents = []byte("events")

// DefaultHistoryLimit bounds the history: the oldest events go first.
const DefaultHistoryLimit = 10000

// History is the bounded event log in its own bbolt file (power.db).
type History struct {
	db    *bolt.DB
	limit int
}

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
		_, err := tx.CreateBucketIfNotExists(bucketEvents)
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
// events past the limit, in one transaction.
func (h *History) Append(e *Event) error {
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
		if err := b.Put(key(seq), v); err != nil {
			return err
		}
		// Sequence numbers are dense, so the events to drop are those at or
		// below seq-limit: a walk from the oldest that stops at the first
		// kept one.
		if seq <= uint64(h.limit) {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq-uint64(h.limit); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// List returns the newest events first, at most limit (0: all), only of
// host when host is not "".
func (h *History) List(host string, limit int) ([]Event, error) {
	var out []Event
	err := h.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
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

func key(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
