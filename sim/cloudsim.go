package sim

import (
	"cmp"
	"math"
	"slices"
)

// CloudSim 3.0.3's dynamic consolidation (PowerVmAllocationPolicy-
// MigrationAbstract and its subclasses), re-implemented step for step:
// which host counts as overloaded, which VM leaves it (minimum migration
// time), where it goes (power-aware best fit decreasing), and which
// underloaded host is emptied. The order of every loop and the tie-breaks
// (first host in list order, first VM in the host's list) are CloudSim's,
// and so are its quirks, because they decide the numbers:
//
//   - placement compares the power after (what the host grants its VMs now,
//     tentative moves included, plus the VM) with the power at the
//     utilisation last measured, so a host that is off looks as cheap as its
//     first 10 % (no idle power), and one that already received VMs in this
//     step looks dearer for each;
//   - the hosts that received VMs from overloaded hosts are not excluded
//     when looking for an underloaded host (the exclusion list is built
//     from an empty map), so a VM can be moved twice in one step;
//   - an underloaded host's VMs stay on its list while they are placed
//     elsewhere, so it never receives VMs itself in that step.

// detector decides whether a host is overloaded, looking at its VM list as
// it is now (tentative moves included).
type detector interface {
	over(e *engine, h int) bool
}

// thrDetector: utilisation asked for / capacity > threshold.
type thrDetector struct{ threshold float64 }

func (d thrDetector) over(e *engine, h int) bool {
	hs := &e.hosts[h]
	req := 0.0
	for _, vi := range hs.vms {
		req += e.vms[vi].req
	}
	return req/hs.total > d.threshold
}

// hostHistory is PowerHostUtilizationHistory.getUtilizationHistory: the
// sum of the VMs' utilisation histories weighted by their share of the
// host, latest first, without its trailing zeros.
func (e *engine) hostHistory(h int, buf *[histLen]float64) []float64 {
	hs := &e.hosts[h]
	vms := hs.vms
	// While the policy tries a VM on the host (overAfter), the cache holds
	// the sums without it, and it is added last, as in list order.
	tried := e.tried >= 0 && !e.scan
	if tried {
		vms = vms[:len(vms)-1]
	}
	if hs.histOK && !e.scan {
		*buf = hs.histC
	} else {
		*buf = [histLen]float64{}
		for _, vi := range vms {
			e.addHistory(buf, vi, hs.total)
		}
		hs.histC, hs.histOK = *buf, true
	}
	if tried {
		e.addHistory(buf, e.tried, hs.total)
	}
	n := histLen
	for n > 0 && buf[n-1] == 0 {
		n--
	}
	return buf[:n]
}

func (e *engine) addHistory(buf *[histLen]float64, vi int32, total float64) {
	v := &e.vms[vi]
	for i := range v.histN {
		buf[i] += v.hist[i] * v.total / total
	}
}

// iqrDetector: overloaded above 1 - safety × IQR of the host history, once
// it has 12 values; THR fallback before.
type iqrDetector struct {
	safety   float64
	fallback thrDetector
}

func (d iqrDetector) over(e *engine, h int) bool {
	var buf [histLen]float64
	data := e.hostHistory(h, &buf)
	if len(data) < 12 {
		return d.fallback.over(e, h)
	}
	return e.requested(h)/e.hosts[h].total > 1-d.safety*iqr(data)
}

// madDetector: the same with the median absolute deviation.
type madDetector struct {
	safety   float64
	fallback thrDetector
}

func (d madDetector) over(e *engine, h int) bool {
	var buf [histLen]float64
	data := e.hostHistory(h, &buf)
	if len(data) < 12 {
		return d.fallback.over(e, h)
	}
	return e.requested(h)/e.hosts[h].total > 1-d.safety*mad(data)
}

// lrDetector: a least-squares line through the last 10 history values
// predicts the utilisation one migration time ahead; overloaded when
// safety × prediction >= 1. THR fallback while the history has fewer than
// 10 values.
type lrDetector struct {
	safety   float64
	fallback thrDetector
}

func (d lrDetector) over(e *engine, h int) bool {
	var buf [histLen]float64
	data := e.hostHistory(h, &buf)
	const length = 10
	if len(data) < length {
		return d.fallback.over(e, h)
	}
	var y [length]float64
	for i := range length {
		y[i] = data[length-i-1]
	}
	hs := &e.hosts[h]
	maxRAM := int64(math.MinInt32)
	for _, vi := range hs.vms {
		maxRAM = max(maxRAM, e.vms[vi].ram)
	}
	migTime := float64(maxRAM) / (hs.model.BandwidthMbps * 1000 / 16000)
	intervals := math.Ceil(migTime / e.s.Interval)
	b0, b1 := simpleRegression(y[:])
	predicted := b0 + b1*(length+intervals)
	predicted *= d.safety
	return predicted >= 1
}

func (e *engine) requested(h int) float64 {
	req := 0.0
	for _, vi := range e.hosts[h].vms {
		req += e.vms[vi].req
	}
	return req
}

// simpleRegression fits y = b0 + b1·x on x = 1..n exactly as Apache
// Commons Math's SimpleRegression does (running means and sums), so the
// predictions agree to the last bit.
func simpleRegression(y []float64) (b0, b1 float64) {
	var sumX, sumY, sumXX, sumXY, xbar, ybar float64
	for i, yi := range y {
		x := float64(i + 1)
		n := float64(i)
		if i == 0 {
			xbar, ybar = x, yi
		} else {
			fact1 := 1.0 + n
			fact2 := n / (1.0 + n)
			dx, dy := x-xbar, yi-ybar
			sumXX += dx * dx * fact2
			sumXY += dx * dy * fact2
			xbar += dx / fact1
			ybar += dy / fact1
		}
		sumX += x
		sumY += yi
	}
	b1 = sumXY / sumXX
	b0 = (sumY - b1*sumX) / float64(len(y))
	return b0, b1
}

// percentile is Commons Math's Percentile with its default (legacy)
// estimation, p in (0, 100].
func percentile(data []float64, p float64) float64 {
	var buf [histLen]float64
	s := append(buf[:0], data...)
	sortSmall(s)
	return percentileSorted(s, p)
}

// percentileSorted is percentile of data sorted in increasing order.
func percentileSorted(s []float64, p float64) float64 {
	n := len(s)
	pos := p / 100 * float64(n+1)
	fpos := math.Floor(pos)
	dif := pos - fpos
	switch {
	case pos < 1:
		return s[0]
	case pos >= float64(n):
		return s[n-1]
	}
	lower, upper := s[int(fpos)-1], s[int(fpos)]
	return lower + dif*(upper-lower)
}

// sortSmall sorts a host history (at most histLen values, never NaN) in
// place. The detectors sort two histories for every host a VM is tried
// on; for so few values an insertion sort on the stack is several times
// quicker than slices.Sort on a copy, and a sorted list is the same
// whatever sorts it.
func sortSmall(s []float64) {
	if len(s) > histLen {
		slices.Sort(s)
		return
	}
	for i := 1; i < len(s); i++ {
		x := s[i]
		j := i
		for ; j > 0 && s[j-1] > x; j-- {
			s[j] = s[j-1]
		}
		s[j] = x
	}
}

// mad is MathUtil.mad: the median of the absolute deviations from the
// median.
func mad(data []float64) float64 {
	med := percentile(data, 50)
	var buf [histLen]float64
	dev := buf[:0]
	for _, x := range data {
		dev = append(dev, math.Abs(med-x))
	}
	sortSmall(dev)
	return percentileSorted(dev, 50)
}

// iqr is MathUtil.iqr: quartiles by rounded rank, no interpolation.
func iqr(data []float64) float64 {
	var buf [histLen]float64
	s := append(buf[:0], data...)
	sortSmall(s)
	q1 := int(math.Floor(0.25*float64(len(s)+1)+0.5)) - 1
	q3 := int(math.Floor(0.75*float64(len(s)+1)+0.5)) - 1
	return s[q3] - s[q1]
}

// migrationPolicy is PowerVmAllocationPolicyMigrationAbstract with
// minimum-migration-time VM selection.
type migrationPolicy struct {
	det   detector
	saved allocation
}

func (*migrationPolicy) nonPowerAware() bool { return false }
func (*migrationPolicy) init(*engine) error  { return nil }

// place is the initial placement: PABFD with nothing excluded.
func (p *migrationPolicy) place(e *engine, vi int32) int { return p.findHost(e, vi, nil, false) }

// findHost is PABFD for one VM: among suitable hosts that are not
// excluded and would not become overloaded (not checked for a host granting
// no MIPS yet), the one whose power grows least, the first in list order on
// a tie. "Grows" is CloudSim's: the power with what the host grants now
// (tentative moves included) plus the VM's request, minus the power at the
// utilisation last measured.
//
// offExcluded says that excluded holds every host that is off (nothing
// granted at the last update), so that the idle hosts need no visit.
func (p *migrationPolicy) findHost(e *engine, vi int32, excluded []bool, offExcluded bool) int {
	if e.scan {
		return p.findHostScan(e, vi, excluded)
	}
	v := &e.vms[vi]
	best, minDiff := -1, math.MaxFloat64
	// The hosts in use, in list order. The detector is the dearest test:
	// it is asked only of a host that would win.
	for h := e.index.inUse.next(0); h >= 0; h = e.index.inUse.next(h + 1) {
		if excluded != nil && excluded[h] {
			continue
		}
		if !e.suitable(h, vi) {
			continue
		}
		hs := &e.hosts[h]
		cur := e.allocated(h)
		after := (cur + v.req) / hs.total
		diff := hs.curve.Watts(after) - hs.wattsNow
		if !(diff < minDiff) {
			continue
		}
		if cur != 0 && p.overAfter(e, h, vi) {
			continue
		}
		minDiff, best = diff, h
	}
	// Idle hosts of one model all cost the same (nothing granted, nothing
	// measured): only the first that may take the VM can win, if it is
	// cheaper, or as cheap and earlier in the list.
	for m := range e.index.idle {
		if offExcluded {
			break
		}
		for h := e.index.idle[m].next(0); h >= 0; h = e.index.idle[m].next(h + 1) {
			if (excluded != nil && excluded[h]) || !e.suitable(h, vi) {
				continue
			}
			hs := &e.hosts[h]
			diff := hs.curve.Watts(v.req/hs.total) - hs.curve.Watts(0)
			if diff < minDiff || (diff == minDiff && h < best) {
				minDiff, best = diff, h
			}
			break
		}
	}
	return best
}

// findHostScan is findHost visiting every host (the scale benchmark's
// baseline).
func (p *migrationPolicy) findHostScan(e *engine, vi int32, excluded []bool) int {
	v := &e.vms[vi]
	best, minDiff := -1, math.MaxFloat64
	for h := range e.hosts {
		if excluded != nil && excluded[h] {
			continue
		}
		if !e.suitable(h, vi) {
			continue
		}
		hs := &e.hosts[h]
		cur := e.allocated(h)
		if cur != 0 && p.overAfter(e, h, vi) {
			continue
		}
		after := (cur + v.req) / hs.total
		diff := hs.curve.Watts(after) - hs.curve.Watts(cpuUtil(hs.util, hs.total))
		if diff < minDiff {
			minDiff, best = diff, h
		}
	}
	return best
}

// overAfter asks the detector with the VM added to the host's list.
func (p *migrationPolicy) overAfter(e *engine, h int, vi int32) bool {
	hs := &e.hosts[h]
	hs.vms = append(hs.vms, vi)
	e.tried = vi
	over := p.det.over(e, h)
	e.tried = -1
	hs.vms = hs.vms[:len(hs.vms)-1]
	return over
}

// mmt picks the VM of host h with the least RAM (shortest migration), the
// first in list order on a tie; -1 if none can move.
func (e *engine) mmt(h int) int32 {
	best, minRAM := int32(-1), int64(math.MaxInt64)
	for _, vi := range e.hosts[h].vms {
		v := &e.vms[vi]
		if v.inMig {
			continue
		}
		if v.ram < minRAM {
			best, minRAM = vi, v.ram
		}
	}
	return best
}

// byRequestDesc sorts VMs by requested MIPS, largest first, stable
// (PowerVmList.sortByCpuUtilization).
func (e *engine) byRequestDesc(vms []int32) {
	slices.SortStableFunc(vms, func(a, b int32) int { return cmp.Compare(e.vms[b].req, e.vms[a].req) })
}

func (p *migrationPolicy) optimize(e *engine, _ float64) ([]move, error) {
	n := len(e.hosts)
	var overHosts []int
	for h := range n {
		if p.det.over(e, h) {
			overHosts = append(overHosts, h)
		}
	}
	e.saveAllocation(&p.saved)

	// VMs leave each overloaded host, least RAM first, until it is not
	// overloaded any more.
	var toMigrate []int32
	for _, h := range overHosts {
		for {
			vi := e.mmt(h)
			if vi < 0 {
				break
			}
			toMigrate = append(toMigrate, vi)
			e.destroy(h, vi)
			if !p.det.over(e, h) {
				break
			}
		}
	}
	isOver := make([]bool, n)
	for _, h := range overHosts {
		isOver[h] = true
	}
	var moves []move
	e.byRequestDesc(toMigrate)
	for _, vi := range toMigrate {
		if h := p.findHost(e, vi, isOver, false); h >= 0 {
			e.create(h, vi)
			moves = append(moves, move{vm: int(vi), to: h})
		}
	}

	// Underloaded hosts, least utilised first, are emptied whole or not
	// at all. Excluded from being emptied: overloaded hosts, hosts that are
	// off, and the hosts receiving VMs in this pass; excluded as
	// destinations: overloaded, off, and the hosts tried for emptying.
	exclUnder := make([]bool, n)
	exclPlace := make([]bool, n)
	excluded := 0
	mark := func(h int) {
		if !exclUnder[h] {
			exclUnder[h] = true
			excluded++
		}
	}
	for h := range n {
		if isOver[h] || cpuUtil(e.hosts[h].util, e.hosts[h].total) == 0 {
			mark(h)
			exclPlace[h] = true
		}
	}
	// The least utilised host first, the first in list order on a tie:
	// the utilisations are those last measured, so they are sorted once.
	var under []int
	if !e.scan {
		for h := e.index.inUse.next(0); h >= 0; h = e.index.inUse.next(h + 1) {
			if util := cpuUtil(e.hosts[h].util, e.hosts[h].total); !exclUnder[h] && util > 0 && util < 1 {
				under = append(under, h)
			}
		}
		slices.SortFunc(under, func(a, b int) int {
			ua, ub := cpuUtil(e.hosts[a].util, e.hosts[a].total), cpuUtil(e.hosts[b].util, e.hosts[b].total)
			return cmp.Or(cmp.Compare(ua, ub), cmp.Compare(a, b))
		})
	}
	for excluded < n {
		var u int
		if e.scan {
			u = e.leastUtilisedScan(exclUnder)
		} else {
			u = -1
			for len(under) > 0 && exclUnder[under[0]] {
				under = under[1:]
			}
			// A host that has only VMs migrating out, or one migrating
			// in, is passed over but stays a candidate.
			for _, h := range under {
				if !exclUnder[h] && !e.allMigratingOutOrAnyIn(h) {
					u = h
					break
				}
			}
		}
		if u < 0 {
			break
		}
		mark(u)
		exclPlace[u] = true
		var vms []int32
		for _, vi := range e.hosts[u].vms {
			if !e.vms[vi].inMig {
				vms = append(vms, vi)
			}
		}
		if len(vms) == 0 {
			continue
		}
		e.byRequestDesc(vms)
		var placed []move
		for _, vi := range vms {
			h := p.findHost(e, vi, exclPlace, true)
			if h < 0 {
				for _, m := range placed {
					e.destroy(m.to, int32(m.vm))
				}
				placed = nil
				break
			}
			e.create(h, vi)
			placed = append(placed, move{vm: int(vi), to: h})
		}
		for _, m := range placed {
			mark(m.to)
		}
		moves = append(moves, placed...)
	}
	e.restoreAllocation(&p.saved)
	return moves, nil
}

// leastUtilisedScan is the underloaded host, every host visited (the
// scale benchmark's baseline): the least utilised that is not excluded, the
// first in list order on a tie, or -1.
func (e *engine) leastUtilisedScan(exclUnder []bool) int {
	u := -1
	minUtil := 1.0
	for h := range e.hosts {
		if exclUnder[h] {
			continue
		}
		hs := &e.hosts[h]
		util := cpuUtil(hs.util, hs.total)
		if util > 0 && util < minUtil && !e.allMigratingOutOrAnyIn(h) {
			minUtil, u = util, h
		}
	}
	return u
}

// allMigratingOutOrAnyIn is CloudSim's test that keeps a host from being
// picked as underloaded: true when it has no VM that is not migrating
// (an empty list counts), or a VM migrating in.
func (e *engine) allMigratingOutOrAnyIn(h int) bool {
	hs := &e.hosts[h]
	for _, vi := range hs.vms {
		if !e.vms[vi].inMig {
			return false
		}
		if hs.isMigIn(vi) {
			return true
		}
	}
	return true
}

// allocation is a saved allocation: every host's VM list and scheduler
// state, and every VM's host.
type allocation struct {
	vms     [][]int32
	avail   []float64
	availOK []bool
	freeRAM []int64
	freeBW  []float64
	host    []int32
}

// saveAllocation and restoreAllocation bracket a policy's tentative moves
// (CloudSim's saveAllocation / restoreAllocation).
func (e *engine) saveAllocation(a *allocation) {
	n := len(e.hosts)
	if len(a.vms) != n {
		a.vms = make([][]int32, n)
		a.avail = make([]float64, n)
		a.availOK = make([]bool, n)
		a.freeRAM = make([]int64, n)
		a.freeBW = make([]float64, n)
	}
	for h := range e.hosts {
		hs := &e.hosts[h]
		a.vms[h] = append(a.vms[h][:0], hs.vms...)
		a.avail[h], a.availOK[h] = hs.avail, hs.availOK
		a.freeRAM[h], a.freeBW[h] = hs.freeRAM, hs.freeBW
	}
	a.host = a.host[:0]
	for i := range e.vms {
		a.host = append(a.host, e.vms[i].host)
	}
}

func (e *engine) restoreAllocation(a *allocation) {
	for h := range e.hosts {
		hs := &e.hosts[h]
		hs.vms = append(hs.vms[:0], a.vms[h]...)
		hs.avail, hs.availOK = a.avail[h], a.availOK[h]
		hs.freeRAM, hs.freeBW = a.freeRAM[h], a.freeBW[h]
		e.touch(h)
	}
	for i := range e.vms {
		e.vms[i].host = a.host[i]
	}
}
