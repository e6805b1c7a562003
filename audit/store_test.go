package audit

import (
	"context"
	"path/filepath"
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
