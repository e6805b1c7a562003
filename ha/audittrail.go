package ha

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ecrae/ecrae/audit"
	"github.com/nats-io/nats.go/jetstream"
)

// AuditStream is the audit trail in cluster mode: one message per record,
// the newest capacity kept. Every replica holds the whole trail, so
// `ecrae audit` shows the same records on any of them, and a replica that
// is lost takes none with it.
const (
	AuditStream  = "ECRAE_AUDIT"
	auditSubject = "ecrae.audit.records"
)

// auditDedupWindow is how long the stream remembers a record's ID: a
// record published again within it (its acknowledgement was lost, or two
// flushes raced) is stored once.
const auditDedupWindow = 10 * time.Minute

// auditPublishWait bounds the publication made while the call is
// answered; a record the stream does not take by then waits in the
// outbox for the next flush.
const auditPublishWait = 2 * time.Second

// flushEvery is how often pending records are offered to the stream again.
const flushEvery = 2 * time.Second

// AuditTrail replicates a replica's audit file through AuditStream. A
// record goes to the file's outbox first, then to the stream, and every
// replica stores every record under the stream's number (Run). Publishing
// is not fenced: a record says what a replica did or refused, leader or
// not.
type AuditTrail struct {
	l     streamLog
	store *audit.Store
}

// NewAuditTrail makes store the cluster's trail from now on, its records
// marked as made by replica.
func NewAuditTrail(js jetstream.JetStream, replicas int, store *audit.Store, replica string, log *slog.Logger) *AuditTrail {
	t := &AuditTrail{store: store, l: streamLog{
		js: js, what: "replicated audit trail", apply: store.ApplyReplicated, skip: audit.ErrMalformedRecord, log: log,
		cfg: jetstream.StreamConfig{
			Name: AuditStream, Description: "ECRAE audit trail (every state-changing call, allowed or refused)",
			Subjects: []string{auditSubject}, Storage: jetstream.FileStorage, Replicas: replicas,
			MaxMsgs: int64(store.Capacity()), Discard: jetstream.DiscardOld, Duplicates: auditDedupWindow,
		},
	}}
	t.l.seen.Store(store.ReplicatedSeq())
	store.SetPublisher(t, replica)
	return t
}

// PublishRecord implements audit.Publisher.
func (t *AuditTrail) PublishRecord(ctx context.Context, id string, record []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, auditPublishWait)
	defer cancel()
	return t.l.publish(ctx, record, jetstream.WithMsgID(id))
}

// Run creates the stream, applies its records from the next one this
// replica lacks and, once it holds the whole stream, publishes the
// records left pending (made while the stream could not take them),
// until ctx ends.
func (t *AuditTrail) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.flushLoop(ctx)
	}()
	err := t.l.run(ctx)
	<-done
	return err
}

func (t *AuditTrail) flushLoop(ctx context.Context) {
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.store.Pending() == 0 {
			continue
		}
		if err := t.flush(ctx); err != nil && ctx.Err() == nil {
			t.l.log.Warn("replicated audit trail: pending records not published yet", "pending", t.store.Pending(), "err", err)
		}
	}
}

// flush publishes the pending records once this replica holds every
// record the stream has: one it published before a restart has then left
// the outbox, and is not published twice.
func (t *AuditTrail) flush(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.l.caughtUp(cctx); err != nil {
		return fmt.Errorf("not caught up with %s: %w", AuditStream, err)
	}
	return t.store.Flush(ctx)
}
