package kbstore

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReplaceIsKeptAndRollsBack: a replace that drops hosts keeps the KB it
// replaced; rollback brings it back as a new revision, itself undoable.
func TestReplaceIsKeptAndRollsBack(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, tempDB(t))
	full := testKB()
	if err := s.Import(ctx, full, true); err != nil { // revision 1 → 2
		t.Fatal(err)
	}
	noHosts := testKB()
	noHosts.Hosts = nil
	if err := s.Import(ctx, noHosts, true); err != nil { // 2 → 3
		t.Fatal(err)
	}
	hist, cur, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two writes: revisions 1 (empty) and 2 (full) kept, 3 current.
	if cur != 3 || len(hist) != 2 || hist[1].Revision != 2 || hist[1].Change != "import --replace" || hist[1].Hosts != 1 || hist[0].Hosts != 0 {
		t.Fatalf("history %+v, current %d", hist, cur)
	}
	old, err := s.AtRevision(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(full), old); diff != "" {
		t.Errorf("revision 2 (-want +got):\n%s", diff)
	}
	if err := s.Rollback(ctx, 2); err != nil { // 3 → 4
		t.Fatal(err)
	}
	now, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedCopy(full), now); diff != "" {
		t.Errorf("after rollback (-want +got):\n%s", diff)
	}
	hist, cur, _ = s.History(ctx)
	if cur != 4 || hist[len(hist)-1].Change != "rollback to revision 2" || hist[len(hist)-1].Hosts != 0 {
		t.Errorf("after rollback: history %+v, current %d", hist, cur)
	}
	if err := s.Rollback(ctx, 99); !errors.Is(err, ErrNoRevision) {
		t.Errorf("rollback to an unknown revision: %v", err)
	}
	// A failed write records nothing.
	if err := s.CreateHost(ctx, Host{Name: "x", Architecture: "nope"}); err == nil {
		t.Fatal("a host of an unknown architecture was accepted")
	}
	if _, cur2, _ := s.History(ctx); cur2 != cur {
		t.Errorf("a refused write moved the revision %d → %d", cur, cur2)
	}
}

// TestHistoryIsBounded: only the newest HistoryKeep earlier revisions stay.
func TestHistoryIsBounded(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, tempDB(t))
	if err := s.Import(ctx, testKB(), true); err != nil {
		t.Fatal(err)
	}
	h := testKB().Hosts[0]
	for i := range HistoryKeep + 5 {
		h.Rack = string(rune('a' + i%26))
		if err := s.UpdateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	hist, cur, err := s.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 1 + (HistoryKeep+5) writes: current 2+HistoryKeep+5; kept: the
	// HistoryKeep revisions just before it.
	if cur != uint64(HistoryKeep+7) || len(hist) != HistoryKeep || hist[0].Revision != cur-HistoryKeep {
		t.Errorf("current %d, %d kept from %d", cur, len(hist), hist[0].Revision)
	}
}
