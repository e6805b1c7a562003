package sim

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ecrae/ecrae/optimizer"
)

// The engine replays CloudSim 3.0.3's power-aware data center event by
// event (PowerDatacenter, HostDynamicWorkload, VmSchedulerTimeShared-
// OverSubscription, PowerVm), because its results depend on when things
// are measured:
//
//   - an update at time T recomputes every host: each VM asks for its
//     trace's utilisation at T (interpolated) × its MIPS; the host's
//     scheduler grants it (a VM PE never gets more than a host PE; an
//     oversubscribed host scales everyone down); a migrating VM gets 90 %
//     on its source and 10 % is reserved on its destination;
//   - energy is integrated between updates, host by host, by the
//     trapezoid of the power at the host's previous and current
//     utilisation, and is 0 when the previous utilisation was 0 (an empty
//     host is off at once);
//   - updates happen at each scheduling step and when live migrations
//     complete (RAM / half the destination's bandwidth after they start);
//   - each update appends a state entry per host and per VM, from which
//     SLATAH, PDM and host shutdowns are computed at the end exactly as
//     CloudSim's Helper does.

// histLen is the VM utilisation history a PowerVm keeps.
const histLen = 30

// vmState is one VM.
type vmState struct {
	typ   *VMType
	ti    int // index of typ in Setup.VMTypes
	pes   int
	mips  float64 // per PE
	total float64 // pes × mips
	ram   int64
	bw    float64
	// util holds the trace as fractions, SamplesPerDay+1 values: CloudSim
	// pads the day with a copy of the last sample.
	util []float64

	host  int32 // the host it is allocated on (CloudSim's VM table), -1 none
	inMig bool
	alive bool
	inst  bool    // being instantiated: asks for its full size
	req   float64 // MIPS requested now (getCurrentRequestedTotalMips)
	// sched is the request its hosts' schedulers last allocated for it:
	// the same as req, except for VMs created at time 0, whose schedulers
	// keep their full size until the first update while they ask for 0.
	sched float64

	// hist is the utilisation at each step, latest first (PowerVm).
	hist  [histLen]float64
	histN int
	histT float64 // time of hist[0]

	last    vmEntry
	hasLast bool

	// utilT, utilU: the last utilisation read, at time utilT (a VM is
	// asked again at the same instant, before and after migrations end).
	utilT, utilU float64
}

type vmEntry struct {
	t, alloc, req float64
	inMig         bool
}

// hostState is one host.
type hostState struct {
	model *HostModel
	total float64 // MIPS
	peCap float64 // MIPS of one PE
	curve *optimizer.PowerCurve

	// vms is the host's VM list in order, including VMs migrating in;
	// migIn lists those.
	vms   []int32
	migIn []int32

	util, prevUtil float64 // allocated MIPS at the last update and the one before
	req            float64 // requested MIPS at the last update
	// wattsNow is the power at util (curve at cpuUtil(util, total)),
	// which the CloudSim policies' placement asks of every host it visits.
	wattsNow float64

	// avail is the scheduler's free MIPS; availOK false means it must be
	// recomputed from the VM list.
	avail   float64
	availOK bool
	freeRAM int64
	freeBW  float64

	last       hostEntry
	hasLast    bool
	prevActive bool

	// The policies ask a host's allocation and history again and again
	// while its VM list stands still: kept until it changes (touch).
	// pstate and until: the power state under transitions (power.go) and
	// when a boot or shutdown ends.
	pstate uint8
	until  float64

	allocC  float64
	allocOK bool
	histC   [histLen]float64
	histOK  bool
}

type hostEntry struct {
	t, alloc, req float64
	active        bool
}

// move is one live migration a policy asks for. Moves of wave 0 start at
// the step (CloudSim's policies use wave 0 only); a move of a later wave
// when optimizer.Gate lets it (startReady).
type move struct {
	vm, to int
	wave   int
	from   int // the planned source (schedule sets it)
	idx    int // in the step's plan (schedule sets it)
}

type flight struct {
	end  float64
	seq  int
	vm   int
	to   int
	wave int
	idx  int // in the plan of step gen
	gen  int
}

type engine struct {
	s       *Setup
	hosts   []hostState
	vms     []vmState
	limit   float64
	removal bool // CloudSim mode: a VM at exactly 0 demand leaves
	strict  bool // RAM limits every placement
	npa     bool // non-power-aware: every host draws its maximum, always

	lastProcess float64
	atStep      bool
	stepEnd     float64  // time of the next step: migrations must finish before it
	interp      interpAt // utilAt's last instant

	energyJ    float64
	floorJ     float64
	bestWMIPS  float64 // best watts per MIPS at full load in the fleet
	prevDemand float64
	prevStepT  float64
	migrations int
	unplaced   int

	boots                  int
	standbyJ, bootJ, idleJ float64
	// emptySince is when each host was first seen on and empty, -1 if it
	// is not (power.go).
	emptySince []float64

	violT, activeT              float64
	vmReqT, vmAllocT, vmUnderMT float64
	shutdowns                   int

	// index files the hosts by use (index.go); scan is the test-only
	// switch back to visiting every host, the baseline of the scale
	// benchmark.
	index  hostIndex
	scan   bool
	legacy bool // Options.legacy
	// tried is the VM a policy tries on a host (appended to its list for
	// the detector), or -1.
	tried int32

	pol      policy // its power decisions run when migrations end, too
	inflight []flight
	seq      int
	// The step's plan: its moves in wave order, the gate that says when
	// each may start (optimizer.Gate, as the executor runs plans), the
	// next not started, and the hosts of the moves dropped (the later
	// moves there are dropped too: the plan counted on them).
	plan     []move
	planGen  int // counts plans: a migration may outlast its step's plan
	gate     *optimizer.Gate[int, int]
	next     []bool // plan[i] not started yet
	blocked  map[int]bool
	parallel int // live migrations in flight in all (0: no limit), set by the policy
	perHost  int // live migrations in flight per host (0: no limit), set by the policy

	series []Sample
}

func newEngine(s *Setup, day *Day) *engine {
	e := &engine{
		s:       s,
		limit:   float64(SamplesPerDay) * s.Interval,
		removal: s.Mode == ModeCloudSim,
		strict:  s.Mode == ModeStrict,
		hosts:   make([]hostState, len(s.Hosts)),
		vms:     make([]vmState, len(day.Traces)),
		index:   newHostIndex(s),
		tried:   -1,
	}
	e.bestWMIPS = math.Inf(1)
	for _, m := range s.Models {
		e.bestWMIPS = min(e.bestWMIPS, m.Curve[optimizer.CurvePoints-1]/m.TotalMIPS())
	}
	for i, mi := range s.Hosts {
		m := &s.Models[mi]
		e.hosts[i] = hostState{model: m, total: m.TotalMIPS(), peCap: m.PEMIPS, curve: &m.Curve,
			avail: m.TotalMIPS(), availOK: true, freeRAM: m.RAMMB, freeBW: m.BandwidthMbps, prevActive: true,
			wattsNow: m.Curve.Watts(0)}
	}
	for i := range day.Traces {
		ti := vmTypeOf(i, len(day.Traces), len(s.VMTypes))
		t := &s.VMTypes[ti]
		u := make([]float64, SamplesPerDay+1)
		for k, p := range day.Traces[i].Percent {
			u[k] = float64(p) / 100.0
		}
		u[SamplesPerDay] = u[SamplesPerDay-1]
		e.vms[i] = vmState{typ: t, ti: ti, pes: t.PEs, mips: t.MIPS, total: float64(t.PEs) * t.MIPS,
			ram: t.RAMMB, bw: t.BandwidthMbps, util: u, host: -1, alive: true, utilT: -1}
	}
	return e
}

// utilAt is UtilizationModelPlanetLabInMemory.getUtilization, operation
// for operation, so that the floating-point results match.
// The terms that depend on t alone are worked out once per instant (every
// VM is read at the same few instants): the same operations, the same bits.
func (e *engine) utilAt(v *vmState, t float64) float64 {
	ip := &e.interp
	if !ip.ok || ip.t != t || e.legacy {
		iv := e.s.Interval
		*ip = interpAt{t: t, ok: true, exact: math.Mod(t, iv) == 0}
		if ip.exact {
			ip.t1 = int(t) / int(iv)
		} else {
			ip.t1 = int(math.Floor(t / iv))
			ip.t2 = int(math.Ceil(t / iv))
			ip.span = float64(ip.t2-ip.t1) * iv
			ip.off = t - float64(ip.t1)*iv
		}
	}
	if ip.exact {
		return v.util[ip.t1]
	}
	u1, u2 := v.util[ip.t1], v.util[ip.t2]
	delta := (u2 - u1) / ip.span
	return u1 + delta*ip.off
}

// interpAt is utilAt's work for one instant t: the samples t1 and t2
// around it (t1 alone when exact), their distance in seconds and t's
// offset from t1.
type interpAt struct {
	t         float64
	ok, exact bool
	t1, t2    int
	span, off float64
}

// process is the VM's own update at time t (PowerVm.updateVmProcessing):
// its request follows the trace, and at a step its utilisation joins the
// history.
func (e *engine) process(vi int32, t float64) {
	v := &e.vms[vi]
	v.inst = false
	if v.utilT != t {
		v.utilT, v.utilU = t, e.utilAt(v, t)
	}
	u := v.utilU
	per := u * v.total / float64(v.pes)
	req := 0.0
	for range v.pes {
		req += per
	}
	v.req, v.sched = req, req
	// PowerVm keeps one history value per step; a VM on two hosts (while
	// migrating) is updated by both.
	if e.atStep && t > v.histT {
		copy(v.hist[1:], v.hist[:histLen-1])
		v.hist[0] = u
		v.histN = min(v.histN+1, histLen)
		v.histT = t
	}
}

// perPE is the MIPS one PE of v holds in a host's scheduler, capped at a
// host PE.
func perPE(v *vmState, peCap float64) float64 {
	return min(v.sched/float64(v.pes), peCap)
}

func (h *hostState) isMigIn(vi int32) bool { return slices.Contains(h.migIn, vi) }

// availOf is the scheduler's free MIPS on host h: the sum of what its VMs
// ask for (capped at a PE each; 10 % for a VM migrating in), taken away
// one by one; 0 once one does not fit (the host is oversubscribed).
func (e *engine) availOf(h int) float64 {
	hs := &e.hosts[h]
	if hs.availOK {
		return hs.avail
	}
	avail := hs.total
	for _, vi := range hs.vms {
		c := e.schedReq(hs, vi)
		if avail >= c {
			avail -= c
		} else {
			avail = 0 // oversubscribed: stays 0
			break
		}
	}
	hs.avail, hs.availOK = avail, true
	return avail
}

// allocated is the MIPS host h's scheduler grants its VM list as it is now
// (the policy's getUtilizationOfCpuMips): each VM its request capped at a
// PE while they all fit, every one scaled down and rounded otherwise; a VM
// migrating in counts at its full request.
func (e *engine) allocated(h int) float64 {
	hs := &e.hosts[h]
	if len(hs.vms) == 0 {
		return 0
	}
	if hs.allocOK && !e.scan {
		return hs.allocC
	}
	avail, over, sum := hs.total, false, 0.0
	for _, vi := range hs.vms {
		c := e.schedReq(hs, vi)
		sum += c
		if !over && avail >= c {
			avail -= c
		} else {
			over, avail = true, 0
		}
	}
	scale := hs.total / sum
	total := 0.0
	for _, vi := range hs.vms {
		v := &e.vms[vi]
		in := hs.isMigIn(vi)
		out := !in && v.inMig
		pe := perPE(v, hs.peCap)
		alloc := 0.0
		for range v.pes {
			alloc += grant(pe, over, in, out, scale)
		}
		if in {
			total += alloc * 0.9 / 0.1
		}
		total += alloc
	}
	hs.allocC, hs.allocOK = total, true
	return total
}

// grant is what one VM PE asking for pe MIPS gets from the scheduler.
func grant(pe float64, over, in, out bool, scale float64) float64 {
	m := pe
	switch {
	case !over && out:
		m *= 0.9
	case !over && in:
		m *= 0.1
	case over && out:
		m *= scale
		m *= 0.9
		m = math.Floor(m)
	case over && in:
		m *= 0.1
		m *= scale
		m = math.Floor(m)
	case over:
		m *= scale
		m = math.Floor(m)
	}
	return m
}

// schedReq is what VM vi takes from host hs's free MIPS.
func (e *engine) schedReq(hs *hostState, vi int32) float64 {
	v := &e.vms[vi]
	c := 0.0
	pe := perPE(v, hs.peCap)
	for range v.pes {
		c += pe
	}
	if hs.isMigIn(vi) {
		c *= 0.1
	}
	return c
}

// quiet reports whether updating host h would change nothing: no VM, and
// nothing granted at the last two updates, so its last entry is inactive
// and its power 0 since. Most hosts of a large consolidated data center
// are quiet; skipping them gives the same energy, SLATAH and shutdowns (a
// run of inactive entries counts as one).
func (e *engine) quiet(h int) bool {
	hs := &e.hosts[h]
	return len(hs.vms) == 0 && hs.util == 0 && hs.prevUtil == 0 && hs.hasLast && !hs.last.active
}

// updateHost is HostDynamicWorkload.updateVmsProcessing at time t.
func (e *engine) updateHost(h int, t float64) {
	hs := &e.hosts[h]
	for _, vi := range hs.vms {
		e.process(vi, t)
	}
	hs.prevUtil = hs.util
	// Allocation, in list order: everyone gets what they ask (capped at a
	// PE) while it fits; past that the host is oversubscribed and every
	// VM gets its share scaled by capacity / demand, rounded down.
	avail, over, sum := hs.total, false, 0.0
	for _, vi := range hs.vms {
		c := e.schedReq(hs, vi)
		sum += c
		if !over && avail >= c {
			avail -= c
		} else {
			over, avail = true, 0
		}
	}
	scale := 1.0
	if over {
		scale = hs.total / sum
	}
	util, req := 0.0, 0.0
	for _, vi := range hs.vms {
		v := &e.vms[vi]
		in := hs.isMigIn(vi)
		out := !in && v.inMig
		pe := perPE(v, hs.peCap)
		alloc := 0.0
		for range v.pes {
			alloc += grant(pe, over, in, out, scale)
		}
		if !in {
			e.vmEntry(v, vmEntry{t: t, alloc: alloc, req: v.req, inMig: v.inMig})
			if v.inMig {
				alloc /= 0.9 // the source still runs it at full speed
			}
		}
		util += alloc
		req += v.req
	}
	hs.util, hs.req = util, req
	hs.wattsNow = hs.curve.Watts(cpuUtil(util, hs.total))
	hs.avail, hs.availOK = avail, true
	e.touch(h)
	e.hostEntry(hs, hostEntry{t: t, alloc: util, req: req, active: util > 0})
}

// vmEntry records a VM state entry (VmStateHistoryEntry); an entry at the
// same time as the last replaces it. PDM counts the MIPS a migrating VM
// did not get on its source.
func (e *engine) vmEntry(v *vmState, n vmEntry) {
	if v.hasLast && v.last.t == n.t {
		v.last = n
		return
	}
	if v.hasLast {
		p := v.last
		dt := n.t - p.t
		e.vmAllocT += p.alloc * dt
		e.vmReqT += p.req * dt
		if p.alloc < p.req && p.inMig {
			e.vmUnderMT += (p.req - p.alloc) * dt
		}
	}
	v.last, v.hasLast = n, true
}

// hostEntry records a host state entry (HostStateHistoryEntry): SLATAH
// counts the time an active host was granted less than asked; a shutdown
// is an active entry followed by an inactive one (the list starts as if
// active, so a host never used counts one).
func (e *engine) hostEntry(hs *hostState, n hostEntry) {
	if hs.hasLast && hs.last.t == n.t {
		hs.last = n
		return
	}
	if hs.hasLast {
		e.commitHost(hs, n.t)
	}
	hs.last, hs.hasLast = n, true
}

func (e *engine) commitHost(hs *hostState, next float64) {
	p := hs.last
	if !math.IsNaN(next) && p.active {
		dt := next - p.t
		e.activeT += dt
		if p.alloc < p.req {
			e.violT += dt
		}
	}
	if hs.prevActive && !p.active {
		e.shutdowns++
	}
	hs.prevActive = p.active
}

// cpuUtil is getUtilizationOfCpu: a hair over 1 counts as 1.
func cpuUtil(mips, total float64) float64 {
	u := mips / total
	if u > 1 && u < 1.01 {
		u = 1
	}
	return u
}

// update is PowerDatacenter's updateCloudetProcessingWithoutScheduling-
// FutureEventsForce at time t: every host updates, energy is integrated
// since the last update, and VMs that ask for nothing leave (CloudSim
// mode).
func (e *engine) update(t float64) {
	dt := t - e.lastProcess
	for h := range e.hosts {
		if e.quiet(h) && !e.legacy {
			continue
		}
		e.updateHost(h, t)
	}
	if dt > 0 && e.s.Transitions.Enabled && !e.npa {
		for h := range e.hosts {
			e.hostEnergy(h, e.lastProcess, t)
		}
		e.advance(t)
	} else if dt > 0 {
		sum := 0.0
		for h := range e.hosts {
			hs := &e.hosts[h]
			if e.npa {
				sum += hs.curve.Watts(1) * dt
				continue
			}
			from := cpuUtil(hs.prevUtil, hs.total)
			if from == 0 {
				continue
			}
			to := cpuUtil(hs.util, hs.total)
			pf, pt := hs.curve.Watts(from), hs.curve.Watts(to)
			sum += (pf + (pt-pf)/2) * dt
		}
		e.energyJ += sum
	}
	if e.removal {
		for h := range e.hosts {
			hs := &e.hosts[h]
			for k := 0; k < len(hs.vms); k++ {
				vi := hs.vms[k]
				v := &e.vms[vi]
				if v.inMig || v.req != 0 {
					continue
				}
				// CloudSim takes a VM that asks for nothing for finished.
				e.destroy(int(v.host), vi)
				v.alive, v.host = false, -1
				k--
			}
		}
	}
	e.lastProcess = t
}

// create puts VM vi on host h (Host.vmCreate): appended to the list, its
// request taken from the free MIPS, its RAM (and, while instantiated, its
// bandwidth) reserved.
func (e *engine) create(h int, vi int32) {
	hs := &e.hosts[h]
	v := &e.vms[vi]
	if v.sched != v.req && v.host >= 0 {
		e.touch(int(v.host)) // its other host's allocation changes too
	}
	v.sched = v.req
	hs.vms = append(hs.vms, vi)
	if hs.availOK {
		c := e.schedReq(hs, vi)
		if hs.avail >= c {
			hs.avail -= c
		} else {
			hs.avail = 0
		}
	}
	if v.inst || e.strict {
		hs.freeRAM -= v.ram
	}
	if v.inst {
		hs.freeBW -= v.bw
	}
	v.host = int32(h)
	e.touch(h)
}

// destroy takes VM vi off host h (Host.vmDestroy).
func (e *engine) destroy(h int, vi int32) {
	hs := &e.hosts[h]
	if k := slices.Index(hs.vms, vi); k >= 0 {
		hs.vms = slices.Delete(hs.vms, k, k+1)
	}
	hs.availOK = false
	if e.strict {
		hs.freeRAM += e.vms[vi].ram
	}
	if e.vms[vi].host == int32(h) {
		e.vms[vi].host = -1
	}
	e.touch(h)
}

// suitable is Host.isSuitableForVm: a host PE can run a VM PE, the free
// MIPS cover the request, and the RAM (and bandwidth) the VM asks for now
// fit. In CloudSim mode a running VM asks for no RAM.
func (e *engine) suitable(h int, vi int32) bool {
	hs := &e.hosts[h]
	v := &e.vms[vi]
	if hs.peCap < v.req/float64(v.pes) || e.availOf(h) < v.req {
		return false
	}
	if (v.inst || e.strict) && hs.freeRAM < v.ram {
		return false
	}
	if v.inst && hs.freeBW < v.bw {
		return false
	}
	return true
}

// startMigration is Host.addMigratingInVm plus PowerDatacenter's
// bookkeeping: the VM is flagged in migration, joins the destination's list
// (10 % of its request reserved there), both hosts are updated at once, and
// the migration ends RAM / (bandwidth / 2) later.
//
// Under transitions, a VM cannot start on a host that is not on: the move
// is dropped and the host wakes (false).
func (e *engine) startMigration(t float64, m move) bool {
	if !e.placeable(m.to) {
		e.wake(m.to, t)
		return false
	}
	vi := int32(m.vm)
	v := &e.vms[vi]
	ht := &e.hosts[m.to]
	v.inMig = true
	if !ht.isMigIn(vi) {
		v.sched = v.req
		if e.strict {
			ht.freeRAM -= v.ram
		}
		ht.migIn = append(ht.migIn, vi)
		ht.vms = append(ht.vms, vi)
		ht.availOK = false
		e.touch(m.to)
		e.updateHost(m.to, t)
		if v.host >= 0 {
			e.updateHost(int(v.host), t)
		}
	}
	e.migrations++
	// CloudSim: ram / (bw / (2 × 8000)) with bw in kbit/s.
	dur := float64(v.ram) / (ht.model.BandwidthMbps * 1000 / 16000)
	e.seq++
	f := flight{end: t + dur, seq: e.seq, vm: m.vm, to: m.to, wave: m.wave, idx: m.idx, gen: e.planGen}
	k, _ := slices.BinarySearchFunc(e.inflight, f, func(a, b flight) int {
		if c := cmp.Compare(a.end, b.end); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	e.inflight = slices.Insert(e.inflight, k, f)
	return true
}

// completeMigration is Datacenter.processVmMigrate: the VM leaves the host
// it is allocated on and is created on the destination.
func (e *engine) completeMigration(f flight) {
	vi := int32(f.vm)
	v := &e.vms[vi]
	if v.host >= 0 {
		e.destroy(int(v.host), vi)
	}
	ht := &e.hosts[f.to]
	if k := slices.Index(ht.vms, vi); k >= 0 {
		ht.vms = slices.Delete(ht.vms, k, k+1)
	}
	if k := slices.Index(ht.migIn, vi); k >= 0 {
		ht.migIn = slices.Delete(ht.migIn, k, k+1)
	}
	ht.availOK = false
	e.touch(f.to)
	if e.strict {
		ht.freeRAM += v.ram
	}
	v.inMig = false
	e.create(f.to, vi)
}

// drain processes the migrations that complete before until: at each
// completion time, an update (energy up to then), the completions, and an
// update again (CloudSim updates once more after the last migration of that
// instant). Then the moves whose hosts are now free start.
func (e *engine) drain(until float64) {
	for len(e.inflight) > 0 {
		t := e.inflight[0].end
		if t >= until || t >= e.limit {
			return
		}
		e.update(t)
		n := 0
		for n < len(e.inflight) && e.inflight[n].end == t {
			n++
		}
		group := slices.Clone(e.inflight[:n])
		e.inflight = slices.Delete(e.inflight, 0, n)
		for _, f := range group {
			e.completeMigration(f)
			if e.gate != nil && f.gen == e.planGen {
				e.gate.End(f.idx)
			}
		}
		e.update(t)
		e.startReady(t)
		e.powerStep(e.pol, t) // a host the moves emptied goes off now
	}
}

// startReady starts, in plan order, the moves the gate lets start (the
// executor's rule, optimizer.Gate): each as soon as its VM's earlier move
// and the earlier-wave moves out of its destination have ended and its
// hosts have a migration slot, not when its whole wave has. A move that
// could not end before the next step, or whose destination cannot take it
// now (it wakes), is dropped, and so is every later move on its hosts,
// since the plan counted on it; a move whose VM is gone or already there
// has nothing to do.
func (e *engine) startReady(t float64) {
	for i, m := range e.plan {
		if !e.next[i] || (e.parallel > 0 && len(e.inflight) >= e.parallel) {
			continue
		}
		if e.blocked[m.from] || e.blocked[m.to] {
			e.drop(i)
			continue
		}
		if !e.gate.Ready(i) {
			continue
		}
		e.next[i] = false
		v := &e.vms[m.vm]
		if !v.alive || v.inMig || v.host < 0 || int(v.host) == m.to {
			e.gate.End(i)
			continue
		}
		end := t + float64(v.ram)/(e.hosts[m.to].model.BandwidthMbps*1000/16000)
		if end >= e.stepEnd || end >= e.limit || !e.startMigration(t, m) {
			e.drop(i)
			continue
		}
		e.gate.Start(i)
	}
}

// drop gives up plan move i and blocks its hosts for the moves after it.
func (e *engine) drop(i int) {
	m := e.plan[i]
	e.next[i] = false
	e.gate.End(i)
	e.blocked[m.from], e.blocked[m.to] = true, true
}

// Sample is the state at one scheduling step.
type Sample struct {
	Time            float64 `json:"t"`
	ActiveHosts     int     `json:"active_hosts"`
	PowerW          float64 `json:"power_w"`
	OverloadedHosts int     `json:"overloaded_hosts"`
	DemandMIPS      float64 `json:"demand_mips"`
}

func (e *engine) sample(t float64) {
	s := Sample{Time: t}
	for h := range e.hosts {
		hs := &e.hosts[h]
		if e.npa {
			s.PowerW += hs.curve.Watts(1)
		}
		if hs.util > 0 {
			s.ActiveHosts++
		}
		switch {
		case e.npa:
		case e.s.Transitions.Enabled:
			s.PowerW += e.powerNow(h)
		case hs.util > 0:
			s.PowerW += hs.curve.Watts(min(cpuUtil(hs.util, hs.total), 1))
		}
		if hs.util < hs.req {
			s.OverloadedHosts++
		}
		s.DemandMIPS += hs.req
	}
	e.series = append(e.series, s)
	if len(e.series) > 1 {
		e.floorJ += (e.prevDemand + s.DemandMIPS) / 2 * (t - e.prevStepT) * e.bestWMIPS
	}
	e.prevDemand, e.prevStepT = s.DemandMIPS, t
}

// Options tune a run.
type Options struct {
	// Seed drives every random choice; the same seed gives the same result.
	Seed uint64
	// Progress, when set, is called after each step with the steps done and
	// the steps in all.
	Progress func(done, total int)
	// check verifies the engine's invariants at every step (tests).
	check bool
	// scan makes the policies visit every host, as before the host index
	// (the scale benchmark's baseline, and the test that both agree).
	scan bool
	// legacy runs the code as it was before ecrae's cells and the
	// per-instant interpolation: the scale benchmark's baseline.
	legacy bool
}

// Result is what a run measured. Ratios are fractions (0.05 = 5 %).
type Result struct {
	Policy string `json:"policy"`
	Mode   string `json:"mode"`
	Day    string `json:"day"`
	VMs    int    `json:"vms"`
	Hosts  int    `json:"hosts"`

	EnergyKWh float64 `json:"energy_kwh"`
	// FloorKWh is the physical floor: the same demand on the fleet's most
	// efficient model at full load, fractional hosts, no migrations.
	FloorKWh   float64 `json:"floor_kwh"`
	Migrations int     `json:"migrations"`
	// SLATAH is the share of active host time during which a host was
	// granted less CPU than its VMs asked for; PDM the share of requested
	// MIPS lost to live migrations; SLAV = SLATAH × PDM; ESV = energy ×
	// SLAV (kWh). All aggregate ratios, as CloudSim prints them.
	SLATAH        float64 `json:"slatah"`
	PDM           float64 `json:"pdm"`
	SLAV          float64 `json:"slav"`
	ESV           float64 `json:"esv"`
	OverallSLA    float64 `json:"overall_sla"`
	HostShutdowns int     `json:"host_shutdowns"`
	// Unplaced counts VMs no host could take when they started.
	Unplaced int `json:"unplaced"`
	// Under transitions: the boots, and the energy drawn by hosts that
	// were off (included in EnergyKWh).
	Transitions string  `json:"transitions"`
	HostBoots   int     `json:"host_boots"`
	StandbyKWh  float64 `json:"standby_kwh"`
	// BootKWh is drawn by hosts booting, IdleKWh by hosts on (or shutting
	// down) with no VM; both are part of EnergyKWh.
	BootKWh float64 `json:"boot_kwh"`
	IdleKWh float64 `json:"idle_kwh"`
	// SimulatedSeconds is the simulated time; Seconds the wall-clock time
	// the run took.
	SimulatedSeconds float64  `json:"simulated_seconds"`
	Seconds          float64  `json:"seconds"`
	Series           []Sample `json:"series,omitempty"`
}

// Run simulates one day of traces on setup under a policy.
func Run(ctx context.Context, setup Setup, day *Day, spec PolicySpec, opts Options) (*Result, error) {
	start := time.Now()
	if err := setup.Validate(); err != nil {
		return nil, err
	}
	if day == nil || len(day.Traces) == 0 {
		return nil, fmt.Errorf("%w: no traces", ErrTrace)
	}
	pol, err := spec.build(&setup, opts.Seed)
	if err != nil {
		return nil, err
	}
	r, err := run(ctx, &setup, day, pol, opts)
	if err != nil {
		return nil, err
	}
	r.Policy = spec.String()
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// run simulates the day under pol (Run without the parsing).
func run(ctx context.Context, setup *Setup, day *Day, pol policy, opts Options) (*Result, error) {
	e := newEngine(setup, day)
	e.npa = pol.nonPowerAware()
	e.pol = pol
	e.scan = opts.scan
	if err := pol.init(e); err != nil {
		return nil, err
	}
	e.legacy = opts.legacy
	// Time 0: the VMs are created one by one, each asking for its full
	// size, RAM and bandwidth.
	for i := range e.vms {
		vi := int32(i)
		e.vms[i].inst = true
		e.vms[i].req = e.vms[i].total
		h := pol.place(e, vi)
		if h < 0 {
			e.vms[i].alive, e.vms[i].inst = false, false
			e.unplaced++
			continue
		}
		e.create(h, vi)
		// Created: it asks for nothing until its cloudlet starts (its
		// scheduler keeps the full size until the first update).
		e.vms[i].inst, e.vms[i].req = false, 0
	}
	// Under transitions the day starts with the hosts that got VMs on and
	// the others off.
	if setup.Transitions.Enabled {
		for h := range e.hosts {
			if len(e.hosts[h].vms) == 0 {
				e.hosts[h].pstate = powerOff
			}
		}
	}
	steps := 0
	for t := setup.Offset + setup.Interval; t < e.limit; t += setup.Interval {
		steps++
	}
	done := 0
	t := setup.Offset
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		next := t + setup.Interval
		e.drain(next)
		if next >= e.limit {
			break
		}
		e.plan, e.gate, e.next = nil, nil, nil
		e.atStep = true
		e.update(next)
		e.atStep = false
		e.sample(next)
		e.stepEnd = next + setup.Interval
		moves, err := pol.optimize(e, next)
		if err != nil {
			return nil, fmt.Errorf("step at %.1f s: %w", next, err)
		}
		if opts.check {
			if err := e.check(); err != nil {
				return nil, fmt.Errorf("step at %.1f s: %w", next, err)
			}
		}
		e.schedule(next, moves)
		e.powerStep(pol, next)
		t = next
		done++
		if opts.Progress != nil {
			opts.Progress(done, steps)
		}
	}
	for h := range e.hosts {
		if e.hosts[h].hasLast {
			e.commitHost(&e.hosts[h], math.NaN())
		}
	}
	r := &Result{
		Mode: setup.Mode.String(), Day: day.Dir,
		VMs: len(e.vms), Hosts: len(e.hosts),
		EnergyKWh: e.energyJ / 3.6e6, FloorKWh: e.floorJ / 3.6e6,
		Migrations: e.migrations, HostShutdowns: e.shutdowns, Unplaced: e.unplaced,
		HostBoots: e.boots, StandbyKWh: e.standbyJ / 3.6e6, BootKWh: e.bootJ / 3.6e6, IdleKWh: e.idleJ / 3.6e6, Transitions: setup.Transitions.String(),
		SimulatedSeconds: e.limit, Series: e.series,
	}
	if e.activeT > 0 {
		r.SLATAH = e.violT / e.activeT
	}
	if e.vmReqT > 0 {
		r.PDM = e.vmUnderMT / e.vmReqT
		r.OverallSLA = (e.vmReqT - e.vmAllocT) / e.vmReqT
	}
	r.SLAV = r.SLATAH * r.PDM
	r.ESV = r.EnergyKWh * r.SLAV
	return r, nil
}

// schedule starts wave 0 of moves at t and queues the others.
func (e *engine) schedule(t float64, moves []move) {
	if len(moves) == 0 {
		return
	}
	slices.SortStableFunc(moves, func(a, b move) int { return cmp.Compare(a.wave, b.wave) })
	at := make(map[int]int) // where each moved VM is after the moves so far
	for k := range moves {
		m := &moves[k]
		h, ok := at[m.vm]
		if !ok {
			h = int(e.vms[m.vm].host)
		}
		m.from, m.idx, at[m.vm] = h, k, m.to
	}
	e.planGen++
	e.plan, e.next, e.blocked = moves, make([]bool, len(moves)), map[int]bool{}
	e.gate = optimizer.NewGate(len(moves), e.perHost, func(i int) optimizer.GateMove[int, int] {
		return optimizer.GateMove[int, int]{From: moves[i].from, To: moves[i].to, Wave: moves[i].wave, Instance: moves[i].vm}
	})
	// Wave 0 starts now, in order, as CloudSim starts its migration map:
	// a VM may appear twice (moved by the overload pass, then again by the
	// underload pass); both migrations run.
	for i, m := range moves {
		if m.wave > 0 {
			e.next[i] = true
			continue
		}
		if !e.startMigration(t, m) {
			e.blocked[m.from], e.blocked[m.to] = true, true
			e.gate.End(i)
			continue
		}
		e.gate.Start(i)
	}
	e.startReady(t)
}

// check verifies the engine's invariants (tests): every live VM is on the
// list of exactly the host it is allocated on, and on the lists of the
// hosts it is migrating to.
func (e *engine) check() error {
	seen := make([]int, len(e.vms))
	for h := range e.hosts {
		hs := &e.hosts[h]
		for _, vi := range hs.vms {
			if hs.isMigIn(vi) {
				continue
			}
			seen[vi]++
			if e.vms[vi].host != int32(h) {
				return fmt.Errorf("VM %d on the list of host %d, allocated on %d", vi, h, e.vms[vi].host)
			}
		}
	}
	for h := range e.hosts {
		if hs := &e.hosts[h]; e.s.Transitions.Enabled && hs.pstate != powerOn && len(hs.vms) > 0 {
			return fmt.Errorf("host %d holds %d VMs while not on (power state %d)", h, len(hs.vms), hs.pstate)
		}
		idle := e.hosts[h].isIdle()
		if e.index.inUse.has(h) == idle || e.index.idle[e.s.Hosts[h]].has(h) != idle {
			return fmt.Errorf("host %d (idle %v) is filed wrongly in the host index", h, idle)
		}
	}
	for i := range e.vms {
		v := &e.vms[i]
		want := 0
		if v.alive {
			want = 1
		}
		if seen[i] != want {
			return fmt.Errorf("VM %d (alive %v, host %d) is on %d host lists", i, v.alive, v.host, seen[i])
		}
	}
	return nil
}
