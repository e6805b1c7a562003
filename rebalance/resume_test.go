package rebalance

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/planstore"
)

// TestResumeNumbersStepsFromOne: a takeover that finds the plan's second
// step (index 1) landed elsewhere fails the plan naming "step 2", as the
// tables, dry runs and logs number steps. The plan store is a real bbolt
// file; Nova's answer comes from a Settler standing in for it (no Nova here).
func TestResumeNumbersStepsFromOne(t *testing.T) {
	ctx := context.Background()
	ps, err := planstore.Open(filepath.Join(t.TempDir(), "plans.db"), planstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	now := time.Now()
	id, err := ps.Create(ctx, &planstore.Plan{Status: planstore.StatusPlanned, ExpiresAt: now.Add(time.Hour), Steps: []planstore.Step{
		{Wave: 0, InstanceID: "x", From: "a", To: "c", MemoryMB: 2048},
		{Wave: 0, InstanceID: "y", From: "a", To: "b", MemoryMB: 2048},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Start(ctx, id, "test", now); err != nil {
		t.Fatal(err)
	}
	// The previous leader stopped with x moved and y in flight.
	if err := ps.Update(ctx, id, func(p *planstore.Plan) error {
		p.Steps[0].Status, p.Steps[1].Status = planstore.StepDone, planstore.StepRunning
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Nova shows y still on a: the in-flight step did not reach b.
	e := NewExecutor(Config{Plans: ps, Migrator: settling("a"), StepTimeout: 10 * time.Second})
	t.Cleanup(e.Close)
	if err := e.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	p, err := ps.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != planstore.StatusFailed || !strings.Contains(p.Message, "step 2 (") || strings.Contains(p.Message, "step 1 (") {
		t.Errorf("plan %s: %q, want failed naming step 2", p.Status, p.Message)
	}
}
