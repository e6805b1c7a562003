package main

import (
	"bytes"
	"strings"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

func TestPlanSentence(t *testing.T) {
	steps := func(n int) []*ecraev1.PlanStep { return make([]*ecraev1.PlanStep, n) }
	for _, c := range []struct {
		steps, waves int
		want         string
	}{
		{1, 1, "1 migration in 1 wave"},
		{2, 1, "2 migrations in 1 wave"},
		{4, 3, "4 migrations in 3 waves"},
		{0, 0, "0 migrations in 0 waves"},
	} {
		if got := movesSentence(&ecraev1.Plan{Steps: steps(c.steps), Waves: int32(c.waves)}); got != c.want {
			t.Errorf("%d steps, %d waves: %q, want %q", c.steps, c.waves, got, c.want)
		}
	}
}

// The table numbers steps from 1, like the dry run's problems and the
// executor's log; no jargon reaches the text.
func TestPlanTextPlainWords(t *testing.T) {
	p := &ecraev1.Plan{Id: "p1", Status: ecraev1.PlanStatus_PLAN_STATUS_PLANNED, Source: "live view", Algorithm: "ls",
		Seed: 1, Stopped: "stalled", Waves: 1, MaxPerHost: 1, MaxParallel: 8,
		Steps: []*ecraev1.PlanStep{{Index: 0, InstanceName: "vm1", FromHost: "h1", ToHost: "h2", MemoryMb: 2048}}}
	var b bytes.Buffer
	if err := printPlan(&b, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"ls, seed 1, 0.00 s, no better packing found\n", "1 migration in 1 wave, at most 1 per host and 8 at once:",
		"\n1     1     vm1"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"(search", "stalled", "migrations in 1 waves"} {
		if strings.Contains(out, bad) {
			t.Errorf("has %q:\n%s", bad, out)
		}
	}
	for _, s := range []string{"", "optimal", "stalled", "iterations", "time", "construct"} {
		if w := stoppedWords(s); strings.Contains(w, "search "+s) || (s != "" && w == "") {
			t.Errorf("stoppedWords(%q) = %q", s, w)
		}
	}
}

// The plan text gives the saving net of the migrations too, the figure the
// console and ecrae_rebalance_last_saving_watts show.
func TestPlanTextNetSaving(t *testing.T) {
	// 245.1 − 145.5 = 99.6 W; less the migrations' 1.2 W = 98.4 W; 8192 MB = 8.0 GB.
	p := &ecraev1.Plan{Id: "p1", PowerBeforeWatts: 245.1, PowerAfterWatts: 145.5, MigrationWatts: 1.2, MigrationMb: 8192}
	var b bytes.Buffer
	if err := printPlan(&b, p); err != nil {
		t.Fatal(err)
	}
	want := "power 245.1 W → 145.5 W (saving 99.6 W, 98.4 W net of the migrations: they copy 8.0 GB, 1.2 W over the horizon)\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("plan text:\n%s\nwant the line %q", b.String(), want)
	}
}
