package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Transitions are what CloudSim leaves out and a real data center pays
// (issue 12): a host that is off takes Boot seconds at its peak power to
// come back, and nothing can start on it meanwhile; one that is emptied
// takes Shutdown seconds at its idle power to go off; an off host draws
// Standby watts (its BMC, fans at rest). A host that is on draws its
// power at its utilisation, idle power when empty, instead of CloudSim's
// nothing. Zero value: CloudSim's instant, free on and off.
type Transitions struct {
	Enabled        bool
	Boot, Shutdown float64 // seconds
	StandbyW       float64 // watts
	// Hold is a hysteresis, for every policy alike: an emptied host goes
	// off only once it has been empty this long (0: at once). See
	// sim/README.md for the break-even time and why 0 is the default.
	Hold float64 // seconds
}

// RealisticTransitions are the defaults of --transitions realistic: five
// minutes to boot a server (firmware, memory training, OS), 30 s to shut
// it down, 10 W for the BMC of an off server.
func RealisticTransitions() Transitions {
	return Transitions{Enabled: true, Boot: 300, Shutdown: 30, StandbyW: 10}
}

// ParseTransitions reads "none", "realistic" or
// "realistic:boot=300,shutdown=30,standby=10,hold=0" (seconds, seconds,
// watts, seconds).
func ParseTransitions(s string) (Transitions, error) {
	name, opts, _ := strings.Cut(strings.TrimSpace(s), ":")
	switch name {
	case "none", "":
		if opts != "" {
			return Transitions{}, fmt.Errorf("%w: transitions none takes no options", ErrSetup)
		}
		return Transitions{}, nil
	case "realistic":
	default:
		return Transitions{}, fmt.Errorf("%w: transitions %q: want none or realistic[:boot=S,shutdown=S,standby=W,hold=S]", ErrSetup, shorten(name))
	}
	t := RealisticTransitions()
	if opts == "" {
		return t, nil
	}
	for _, kv := range strings.Split(opts, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || !(f >= 0) || math.IsInf(f, 0) {
			return Transitions{}, fmt.Errorf("%w: transitions: %q: want KEY=NUMBER >= 0", ErrSetup, shorten(kv))
		}
		switch k {
		case "boot":
			t.Boot = f
		case "shutdown":
			t.Shutdown = f
		case "standby":
			t.StandbyW = f
		case "hold":
			t.Hold = f
		default:
			return Transitions{}, fmt.Errorf("%w: transitions: unknown option %q (known: boot, shutdown, standby, hold)", ErrSetup, shorten(k))
		}
	}
	return t, nil
}

func (t Transitions) String() string {
	if !t.Enabled {
		return "none"
	}
	s := fmt.Sprintf("realistic:boot=%g,shutdown=%g,standby=%g", t.Boot, t.Shutdown, t.StandbyW)
	if t.Hold > 0 {
		s += fmt.Sprintf(",hold=%g", t.Hold)
	}
	return s
}

// Power states of a host under transitions.
const (
	powerOn uint8 = iota
	powerOff
	powerBooting
	powerShutting
)

// hostEnergy adds host h's energy over [t0, t1] under transitions to the
// engine's sums (J): all of it, and the parts drawn in standby, booting,
// and on with no VM (idle, shutting down included). The host's state may
// end (booted, gone off) once inside the interval; the engine moves it on
// afterwards (advance).
func (e *engine) hostEnergy(h int, t0, t1 float64) {
	hs := &e.hosts[h]
	tr := &e.s.Transitions
	idle := hs.curve.Watts(0)
	split := min(max(hs.until, t0), t1)
	var boot, empty, standby, busy float64
	switch hs.pstate {
	case powerBooting:
		boot, empty = hs.curve.Watts(1)*(split-t0), idle*(t1-split)
	case powerShutting:
		empty, standby = idle*(split-t0), tr.StandbyW*(t1-split)
	case powerOff:
		standby = tr.StandbyW * (t1 - t0)
	default:
		pf := hs.curve.Watts(cpuUtil(hs.prevUtil, hs.total))
		pt := hs.curve.Watts(cpuUtil(hs.util, hs.total))
		busy = (pf + (pt-pf)/2) * (t1 - t0)
		if len(hs.vms) == 0 {
			empty, busy = busy, 0
		}
	}
	e.energyJ += boot + empty + standby + busy
	e.bootJ += boot
	e.idleJ += empty
	e.standbyJ += standby
}

// powerNow is host h's power under transitions at an update (the series).
func (e *engine) powerNow(h int) float64 {
	hs := &e.hosts[h]
	switch hs.pstate {
	case powerBooting:
		return hs.curve.Watts(1)
	case powerShutting:
		return hs.curve.Watts(0)
	case powerOff:
		return e.s.Transitions.StandbyW
	}
	return hs.curve.Watts(min(cpuUtil(hs.util, hs.total), 1))
}

// advance ends the boots and shutdowns due by t.
func (e *engine) advance(t float64) {
	for h := range e.hosts {
		hs := &e.hosts[h]
		if hs.until > t {
			continue
		}
		switch hs.pstate {
		case powerBooting:
			hs.pstate = powerOn
		case powerShutting:
			hs.pstate = powerOff
		}
	}
}

// wake starts booting host h at t if it is off or going off.
func (e *engine) wake(h int, t float64) {
	hs := &e.hosts[h]
	if hs.pstate == powerOff || hs.pstate == powerShutting {
		hs.pstate, hs.until = powerBooting, t+e.s.Transitions.Boot
		e.boots++
	}
}

// placeable: a VM may start on h now (not off, booting or going off).
func (e *engine) placeable(h int) bool {
	return !e.s.Transitions.Enabled || e.hosts[h].pstate == powerOn
}

// powerer is a policy that decides which empty hosts go off and which
// wake (ECRAE's headroom); other policies switch off every host emptied.
type powerer interface {
	power(e *engine, t float64, empty []int) (off, wake []int)
}

// powerStep runs after a step's plan has started and whenever migrations
// end: the hosts that are on and empty (for Hold seconds at least), and
// that no move of the plan still to start targets, go off (as the policy says), and
// the hosts the policy wants awake boot. Every policy's emptied hosts thus go off the moment they are
// empty, as CloudSim switches them off, and as the service's power policy
// is told of the hosts a plan freed when it completes; waiting for the next
// step would keep them idle for most of it (sim/README.md: the numbers).
func (e *engine) powerStep(pol policy, t float64) {
	if !e.s.Transitions.Enabled || e.npa {
		return
	}
	target := make(map[int]bool)
	for i, m := range e.plan {
		if e.next[i] {
			target[m.to] = true
		}
	}
	if e.emptySince == nil {
		e.emptySince = make([]float64, len(e.hosts))
		for h := range e.emptySince {
			e.emptySince[h] = -1
		}
	}
	var empty []int
	for h := range e.hosts {
		hs := &e.hosts[h]
		if hs.pstate != powerOn || len(hs.vms) > 0 || target[h] {
			e.emptySince[h] = -1
			continue
		}
		if e.emptySince[h] < 0 {
			e.emptySince[h] = t
		}
		if t-e.emptySince[h] >= e.s.Transitions.Hold {
			empty = append(empty, h)
		}
	}
	off, wake := empty, []int(nil)
	if p, ok := pol.(powerer); ok {
		off, wake = p.power(e, t, empty)
	}
	for _, h := range off {
		e.hosts[h].pstate, e.hosts[h].until = powerShutting, t+e.s.Transitions.Shutdown
	}
	for _, h := range wake {
		e.wake(h, t)
	}
}
