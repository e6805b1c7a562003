package sim

import (
	"context"
	"math/rand/v2"
	"testing"
)

func TestBitsetNext(t *testing.T) {
	b := newBitset(200)
	for _, i := range []int{0, 63, 64, 130, 199} {
		b.set(i)
	}
	b.clear(63)
	var got []int
	for i := b.next(0); i >= 0; i = b.next(i + 1) {
		got = append(got, i)
	}
	want := []int{0, 64, 130, 199}
	if len(got) != len(want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("members %v, want %v", got, want)
		}
	}
	if b.next(200) != -1 || b.next(131) != 199 {
		t.Fatalf("next(200) = %d, next(131) = %d; want -1, 199", b.next(200), b.next(131))
	}
}

// walkDay is n VMs whose CPU % follows a random walk with bursts and idle
// spells (seeded), so that hosts overload, empty, and VMs leave at 0 %.
func walkDay(n int, seed uint64) *Day {
	r := rand.New(rand.NewPCG(seed, 7))
	d := &Day{Dir: "walk"}
	for i := range n {
		tr := Trace{Name: "w" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), Percent: make([]uint8, SamplesPerDay)}
		p := r.IntN(60)
		for k := range tr.Percent {
			switch x := r.IntN(100); {
			case x < 3:
				p = 95 + r.IntN(6)
			case x < 5:
				p = 0
			default:
				p = min(max(p+r.IntN(21)-10, 0), 100)
			}
			tr.Percent[k] = uint8(p)
		}
		d.Traces = append(d.Traces, tr)
	}
	return d
}

// The host index is only a shortcut: every migrating policy gives exactly
// the result it gives visiting every host, in both modes, invariants
// checked at every step.
func TestIndexMatchesScan(t *testing.T) {
	for _, mode := range []Mode{ModeCloudSim, ModeStrict} {
		for _, name := range []string{"thr-mmt", "iqr-mmt", "mad-mmt", "lr-mmt", "ecrae"} {
			if name == "ecrae" && mode == ModeStrict {
				continue // seconds under -race: its plans weigh every VM in strict mode
			}
			t.Run(mode.String()+"/"+name, func(t *testing.T) {
				s := CloudSimSetup()
				s.Mode = mode
				s.RoundRobinHosts(40)
				day := walkDay(56, 3)
				spec, err := ParsePolicy(name)
				if err != nil {
					t.Fatal(err)
				}
				var res [2]*Result
				for k, scan := range []bool{true, false} {
					r, err := Run(context.Background(), s, day, spec, Options{Seed: 1, check: true, scan: scan})
					if err != nil {
						t.Fatal(err)
					}
					r.Seconds = 0
					res[k] = r
				}
				a, b := res[0], res[1]
				if a.Migrations == 0 {
					t.Fatalf("no migration: the day does not exercise the policy")
				}
				if a.EnergyKWh != b.EnergyKWh || a.Migrations != b.Migrations || a.SLAV != b.SLAV ||
					a.HostShutdowns != b.HostShutdowns || a.OverallSLA != b.OverallSLA || a.Unplaced != b.Unplaced {
					t.Fatalf("indexed run differs from the scan:\nscan  %+v\nindex %+v", *a, *b)
				}
			})
		}
	}
}
