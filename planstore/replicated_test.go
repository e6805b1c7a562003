package planstore

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// countingPublisher numbers writes as a replicated store would (package
// ha's bucket is the real one, tested there with a NATS cluster).
type countingPublisher struct {
	rev  uint64
	fail error
}

func (p *countingPublisher) PublishPlan(context.Context, string, []byte) (uint64, error) {
	if p.fail != nil {
		return 0, p.fail
	}
	p.rev++
	return p.rev, nil
}

func (p *countingPublisher) DeletePlan(context.Context, string) error { return p.fail }

func TestApplyReplicatedKeepsTheNewerVersion(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "plans.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pub := &countingPublisher{}
	s.SetPublisher(pub)
	id, err := s.Create(ctx, &Plan{Status: StatusPlanned, Note: "local"}) // revision 1
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Start(ctx, id, "me", time.Now()); err != nil { // revision 2
		t.Fatal(err)
	}
	version := func(status string) []byte {
		b, _ := json.Marshal(&Plan{ID: id, Status: status})
		return b
	}
	// The echo of revision 1 arrives late: the file keeps revision 2.
	if err := s.ApplyReplicated(ctx, id, version(StatusPlanned), 1); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(ctx, id); p.Status != StatusExecuting {
		t.Fatalf("after a stale echo: %s, want executing", p.Status)
	}
	// A newer revision from the leader replaces it.
	if err := s.ApplyReplicated(ctx, id, version(StatusSucceeded), 3); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(ctx, id); p.Status != StatusSucceeded {
		t.Fatalf("after revision 3: %s, want succeeded", p.Status)
	}
	// Plans from the leader number the next local one after them.
	if err := s.ApplyReplicated(ctx, "p7", func() []byte { b, _ := json.Marshal(&Plan{ID: "p7"}); return b }(), 4); err != nil {
		t.Fatal(err)
	}
	if next, err := s.Create(ctx, &Plan{Status: StatusPlanned}); err != nil || next != "p8" {
		t.Fatalf("next plan %q (%v), want p8", next, err)
	}
	// A write the replicated store refuses does not commit here.
	pub.fail = ErrReadOnly
	if _, err := s.Create(ctx, &Plan{Status: StatusPlanned}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("refused create: err = %v", err)
	}
	if ids, _ := s.List(ctx, 0); len(ids) != 3 {
		t.Fatalf("plans %v, want p1, p7, p8", ids)
	}
	// Deleted by the leader.
	if err := s.ApplyReplicated(ctx, "p7", nil, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "p7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("p7 after its deletion: %v", err)
	}
}
