package power

import (
	"context"
	"errors"
	"testing"
)

// TestCheckAgreesWithTheActions: Check refuses what Off and On would
// refuse, with the same words, and acts on nothing (no BMC, Nova or
// history change); what it allows, Off then does.
func TestCheckAgreesWithTheActions(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1", "c2")
	r.resync(inst("i1", "c1", ""))
	ctx := context.Background()
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	on, off := r.m.Check(ctx, "c1")
	if on != nil || !errors.Is(off, ErrRefused) {
		t.Fatalf("Check(c1) = %v, %v; want on allowed, off refused", on, off)
	}
	if on, off := r.m.Check(ctx, "nope"); !errors.Is(on, ErrUnknownHost) || !errors.Is(off, ErrUnknownHost) {
		t.Errorf("Check(nope) = %v, %v; want no endpoint for both", on, off)
	}
	if evs, _ := r.m.History("", 0); len(evs) != 0 || r.nova.Log() != "" || r.bmc(t, "c1") != "Chassis Power is on" {
		t.Fatalf("Check acted: history %+v, Nova %q", evs, r.nova.Log())
	}
	if err := r.m.Off(ctx, "c1", "cli"); errText(err) != errText(off) {
		t.Errorf("Off(c1) = %v; Check said %v", err, off)
	}
	// Without Nova, no host may go off: its service could not be disabled.
	nova := r.m.cfg.Nova
	r.m.cfg.Nova = nil
	_, off = r.m.Check(ctx, "c2")
	if err := r.m.Off(ctx, "c2", "cli"); !errors.Is(off, ErrRefused) || errText(err) != errText(off) {
		t.Errorf("without Nova: Off(c2) = %v; Check said %v", err, off)
	}
	r.m.cfg.Nova = nova
	// A host busy with another action: both refused.
	r.m.claim("c2")
	if on, off := r.m.Check(ctx, "c2"); !errors.Is(on, ErrRefused) || !errors.Is(off, ErrRefused) {
		t.Errorf("Check(c2) while busy = %v, %v", on, off)
	}
	r.m.release("c2")
	if on, off := r.m.Check(ctx, "c2"); on != nil || off != nil {
		t.Fatalf("Check(c2) = %v, %v; want both allowed", on, off)
	}
	if err := r.m.Off(ctx, "c2", "cli"); err != nil {
		t.Fatalf("Off(c2) after Check allowed it: %v", err)
	}
	if r.bmc(t, "c2") != "Chassis Power is off" {
		t.Error("c2 still on")
	}
}
