package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBoundedAndOrdered: past the capacity the oldest records go, in the
// same write; List filters by time and keeps the newest limit.
func TestBoundedAndOrdered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if err := s.Append(ctx, Record{Time: t0.Add(time.Duration(i) * time.Minute), Who: "cert:ops", Method: "/m", Code: "OK"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 5 appended, capacity 3: sequences 3, 4, 5 remain, oldest first.
	if len(all) != 3 || all[0].Seq != 3 || all[2].Seq != 5 {
		t.Fatalf("kept %+v", all)
	}
	// Since minute 4 (the 5th record): one.
	if got, _ := s.List(ctx, t0.Add(4*time.Minute), 0); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("since: %+v", got)
	}
	// The newest two, oldest first.
	if got, _ := s.List(ctx, time.Time{}, 2); len(got) != 2 || got[0].Seq != 4 || got[1].Seq != 5 {
		t.Errorf("limit: %+v", got)
	}
	// Reopened: the records and the sequence survive.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Append(ctx, Record{Time: t0.Add(time.Hour), Who: "x", Method: "/m", Code: "OK"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx, time.Time{}, 1); len(got) != 1 || got[0].Seq != 6 {
		t.Errorf("after reopen: %+v", got)
	}
}

// memLog stands in for the replicated log (package ha runs the real one on
// JetStream): it numbers what it takes, drops an ID it has seen (as the
// stream's de-duplication does), and can refuse (no quorum) or take a
// record and lose the answer.
type memLog struct {
	mu      sync.Mutex
	entries [][]byte
	ids     map[string]uint64
	refuse  bool // no quorum: nothing taken
	lose    bool // taken, but the acknowledgement is lost
}

func (m *memLog) PublishRecord(_ context.Context, id string, rec []byte) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refuse {
		return 0, errors.New("no quorum")
	}
	seq, dup := m.ids[id]
	if !dup {
		m.entries = append(m.entries, rec)
		seq = uint64(len(m.entries))
		m.ids[id] = seq
	}
	if m.lose {
		return 0, errors.New("acknowledgement lost")
	}
	return seq, nil
}

func whats(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "%s@%s#%d", r.Target, r.Replica, r.Seq)
		if r.Pending {
			b.WriteString("(pending)")
		}
		b.WriteString(" ")
	}
	return strings.TrimSpace(b.String())
}

// TestReplicatedTrail: in cluster mode a record is published and stored
// under the log's number; one the log refuses is kept, pending, and
// published in order by Flush; one published whose answer was lost leaves
// the outbox when the log's copy is applied; other replicas' records are
// listed too, and the capacity counts the log's numbers.
func TestReplicatedTrail(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "audit.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(i int, target string) Record {
		return Record{Time: t0.Add(time.Duration(i) * time.Minute), Who: "cert:ops", Method: "/m", Target: target, Code: "OK"}
	}
	if err := s.Append(ctx, rec(0, "alone")); err != nil {
		t.Fatal(err)
	}
	log := &memLog{ids: map[string]uint64{}}
	s.SetPublisher(log, "r0")
	list := func() string {
		t.Helper()
		recs, err := s.List(ctx, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return whats(recs)
	}
	// Published at once; the records of the file's one-replica past are
	// no longer listed.
	if err := s.Append(ctx, rec(1, "a")); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "a@r0#1"; got != want {
		t.Fatalf("after a: %q, want %q", got, want)
	}
	// No quorum: kept, pending; the next one waits behind it even once the
	// log answers again, so the log keeps their order.
	log.refuse = true
	if err := s.Append(ctx, rec(2, "b")); err != nil {
		t.Fatalf("append without quorum: %v (the record is kept: no error)", err)
	}
	log.refuse = false
	if err := s.Append(ctx, rec(3, "c")); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "a@r0#1 b@r0#0(pending) c@r0#0(pending)"; got != want || s.Pending() != 2 {
		t.Fatalf("without quorum: %q (%d pending), want %q (2)", got, s.Pending(), want)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "a@r0#1 b@r0#2 c@r0#3"; got != want || s.Pending() != 0 {
		t.Fatalf("after the flush: %q (%d pending), want %q (0)", got, s.Pending(), want)
	}
	// Taken by the log, answer lost (or a crash before the outbox was
	// cleared): pending until the log's copy is applied, then listed once.
	log.lose = true
	if err := s.Append(ctx, rec(4, "d")); err != nil {
		t.Fatal(err)
	}
	log.lose = false
	if got := list(); !strings.HasSuffix(got, "d@r0#0(pending)") {
		t.Fatalf("answer lost: %q, want d pending", got)
	}
	if err := s.ApplyReplicated(4, log.entries[3]); err != nil {
		t.Fatal(err)
	}
	if got, want := list(), "a@r0#1 b@r0#2 c@r0#3 d@r0#4"; got != want || s.Pending() != 0 {
		t.Fatalf("d applied from the log: %q (%d pending), want %q (0)", got, s.Pending(), want)
	}
	// Another replica's record, older by its clock, numbered 6 (5 was
	// dropped before this replica saw it): listed in the log's order; and
	// since does not stop at it, though the records before it are newer.
	other, _ := json.Marshal(Record{Time: t0.Add(150 * time.Second), Replica: "r1", ID: "x", Target: "e", Who: "cert:ops", Method: "/m", Code: "OK"})
	if err := s.ApplyReplicated(6, other); err != nil {
		t.Fatal(err)
	}
	// Capacity 4, newest number 6: numbers 3 to 6 may stay (6 − 4 = 2 and
	// below go), so a and b go.
	if got, want := list(), "c@r0#3 d@r0#4 e@r1#6"; got != want {
		t.Fatalf("with r1's record: %q, want %q", got, want)
	}
	since, err := s.List(ctx, t0.Add(3*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := whats(since), "c@r0#3 d@r0#4"; got != want {
		t.Errorf("since minute 3: %q, want %q", got, want)
	}
	if got, _ := s.List(ctx, time.Time{}, 2); whats(got) != "d@r0#4 e@r1#6" {
		t.Errorf("limit 2: %q", whats(got))
	}
	// A record the capacity already dropped is not stored; a malformed one
	// is refused, named so.
	if err := s.ApplyReplicated(2, other); err != nil || list() != "c@r0#3 d@r0#4 e@r1#6" {
		t.Errorf("an old number: %v, %q", err, list())
	}
	if err := s.ApplyReplicated(7, []byte("{not json")); !errors.Is(err, ErrMalformedRecord) {
		t.Errorf("malformed: err = %v, want ErrMalformedRecord", err)
	}
}

// TestConcurrentAppendsPublishedAtOnce: calls audited together while the
// log answers are all published by their own Append, none left pending
// for a flush, each under its own number.
func TestConcurrentAppendsPublishedAtOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "audit.db"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	log := &memLog{ids: map[string]uint64{}}
	s.SetPublisher(log, "r0")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Append(ctx, Record{Time: time.Now(), Method: "/m", Target: fmt.Sprint(i), Code: "OK"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	recs, err := s.List(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending() != 0 || len(recs) != 20 || len(log.entries) != 20 {
		t.Fatalf("%d pending, %d listed, %d in the log; want 0, 20, 20", s.Pending(), len(recs), len(log.entries))
	}
	for k, r := range recs {
		if r.Seq != uint64(k+1) || r.Pending {
			t.Fatalf("record %d: %+v, want number %d, not pending", k, r, k+1)
		}
	}
}
