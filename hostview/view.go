package hostview

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ecrae/ecrae/powerfit"
)

// Defaults of Options.
const (
	DefaultStaleAfter      = 5 * time.Minute
	DefaultDedupeWindow    = 1 << 16
	DefaultTombstoneWindow = 1 << 16
)

// Options configure a View.
type Options struct {
	// StaleAfter is how long a host may go unheard before it is stale, and
	// the age past which a measurement is not used. 0 = DefaultStaleAfter.
	StaleAfter time.Duration
	// Now is the clock; nil = time.Now. Tests inject their own.
	Now func() time.Time
	// DedupeWindow is how many message ids are remembered. 0 = default.
	DedupeWindow int
	// TombstoneWindow is how many deleted instances are remembered, so that
	// a late event does not bring one back. 0 = default.
	TombstoneWindow int
}

// View is the live host view. Its methods are safe for concurrent use.
type View struct {
	staleAfter time.Duration
	now        func() time.Time

	mu         sync.Mutex
	hosts      map[string]*hostRec
	names      []string // sorted host names; nil = rebuild
	insts      map[string]*Instance
	seen       ring // message ids applied
	tombs      ring // deleted instance uuids, oldest first
	tomb       map[string]time.Time
	appliedSeq uint64

	// version counts changes; it is written under mu and read without it
	// to decide whether the cached snapshot is current.
	version atomic.Uint64
	snap    atomic.Pointer[Snapshot]
}

type hostRec struct {
	h     Host // Busy is built from busy when a snapshot is taken
	busy  map[string]int
	svcAt time.Time // time of the last service change applied
	ctrAt time.Time // time of the last container report applied
	gen   uint64    // View.version when the host last changed
	// fit sums the node agent's measured whole-node (utilisation, watts)
	// pairs for `ecrae kb calibrate`; nil until the first.
	fit *powerfit.Stats
}

// ring is a bounded FIFO set of strings.
type ring struct {
	items []string
	next  int
	set   map[string]struct{}
}

func newRing(n int) ring {
	return ring{items: make([]string, 0, n), set: make(map[string]struct{}, n)}
}

func (r *ring) has(s string) bool { _, ok := r.set[s]; return ok }

// add remembers s and returns the item it pushed out, if any.
func (r *ring) add(s string) (evicted string) {
	if len(r.items) < cap(r.items) {
		r.items = append(r.items, s)
	} else {
		evicted = r.items[r.next]
		delete(r.set, evicted)
		r.items[r.next] = s
		r.next = (r.next + 1) % len(r.items)
	}
	r.set[s] = struct{}{}
	return evicted
}

// ordered returns the items oldest first.
func (r *ring) ordered() []string {
	out := make([]string, 0, len(r.items))
	out = append(out, r.items[r.next:]...)
	return append(out, r.items[:r.next]...)
}

// New returns an empty view.
func New(opts Options) *View {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DedupeWindow <= 0 {
		opts.DedupeWindow = DefaultDedupeWindow
	}
	if opts.TombstoneWindow <= 0 {
		opts.TombstoneWindow = DefaultTombstoneWindow
	}
	return &View{
		staleAfter: opts.StaleAfter,
		now:        opts.Now,
		hosts:      map[string]*hostRec{},
		insts:      map[string]*Instance{},
		seen:       newRing(opts.DedupeWindow),
		tombs:      newRing(opts.TombstoneWindow),
		tomb:       map[string]time.Time{},
	}
}

// Now is the view's clock.
func (v *View) Now() time.Time { return v.now() }

// StaleAfter is the staleness limit.
func (v *View) StaleAfter() time.Duration { return v.staleAfter }

// AppliedSeq is the highest stream sequence given to Apply (or restored by
// Load): every message up to it has been dealt with.
func (v *View) AppliedSeq() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.appliedSeq
}

// SetAppliedSeq moves the stream position without applying anything: the
// consumer follows a stream that does not hold what the saved view covers
// (recreated, or its first messages expired before this view existed).
func (v *View) SetAppliedSeq(seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.appliedSeq = seq
}

// Host returns a copy of one host's record (Busy not filled).
func (v *View) Host(name string) (Host, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r := v.hosts[name]; r != nil {
		return r.h, true
	}
	return Host{}, false
}

// Apply applies one event that came with stream sequence seq (0 = not from
// a stream). ev may be nil for a message that carried nothing to apply
// (malformed, unknown type): seq is still recorded as dealt with.
func (v *View) Apply(seq uint64, ev *Event) Outcome {
	v.mu.Lock()
	defer v.mu.Unlock()
	if seq > v.appliedSeq {
		v.appliedSeq = seq
	}
	if ev == nil {
		return Ignored
	}
	if ev.MessageID != "" {
		if v.seen.has(ev.MessageID) {
			return Duplicate
		}
		v.seen.add(ev.MessageID)
	}
	gen := v.version.Load() + 1
	changed := false
	if ev.Publisher != "" {
		changed = v.heard(ev.Publisher, ev.Timestamp, gen)
	}
	var out Outcome
	switch ev.Kind {
	case KindInstance:
		out = v.applyInstance(ev, gen)
	case KindService:
		out = v.applyService(ev, gen)
	case KindMetrics:
		out = v.applyMetrics(ev, gen)
	case KindPower:
		out = v.applyPower(ev, gen)
	case KindContainers:
		out = v.applyContainers(ev, gen)
	default:
		out = Applied // a no-op event: nothing to change
	}
	// A host created on the way (v.names reset) is a change too.
	if changed || (out == Applied && ev.Kind != KindNone) || v.names == nil {
		v.version.Store(gen)
	}
	return out
}

// heard marks a compute host as alive at t; it reports a change.
func (v *View) heard(host string, t time.Time, gen uint64) bool {
	r := v.host(host, gen)
	r.h.Compute = true
	if t.After(r.h.LastSeen) {
		r.h.LastSeen = t
		r.gen = gen
		return true
	}
	return false
}

// host returns the record of a host, creating it.
func (v *View) host(name string, gen uint64) *hostRec {
	r := v.hosts[name]
	if r == nil {
		r = &hostRec{h: Host{Name: name}, busy: map[string]int{}, gen: gen}
		v.hosts[name] = r
		v.names = nil
	}
	return r
}

func (v *View) applyInstance(ev *Event, gen uint64) Outcome {
	c := &ev.Instance
	uuid := c.Instance.UUID
	if t, ok := v.tomb[uuid]; ok && !ev.Timestamp.After(t) {
		return Stale
	}
	old := v.insts[uuid]
	if old != nil && ev.Timestamp.Before(old.Updated) {
		if c.HasFlavor && old.Flavor == (Flavor{}) && c.Op == OpUpsert {
			// A newer event without a flavor came first (a move): the late
			// one is stale, but its flavor is the only one the view has.
			v.unaccount(old, gen)
			old.Flavor, old.Tag = c.Instance.Flavor, c.Instance.Tag
			v.account(old, gen)
			v.version.Store(gen)
		}
		return Stale
	}
	if c.Op == OpDelete {
		if old != nil {
			v.unaccount(old, gen)
			delete(v.insts, uuid)
		}
		v.addTomb(uuid, ev.Timestamp)
		return Applied
	}
	n := c.Instance
	n.Updated = ev.Timestamp
	if old != nil {
		if !c.HasFlavor {
			n.Flavor, n.Tag = old.Flavor, old.Tag
		}
		v.unaccount(old, gen)
		*old = n
	} else {
		old = &n
		v.insts[uuid] = old
	}
	v.account(old, gen)
	return Applied
}

// applyContainers replaces a host's containers with the agent's report.
func (v *View) applyContainers(ev *Event, gen uint64) Outcome {
	c := &ev.Containers
	r := v.host(c.Host, gen)
	if !c.At.After(r.ctrAt) {
		return Stale
	}
	r.ctrAt = c.At
	r.h.Containers = true
	if r.h.ISA == "" {
		r.h.ISA = c.Arch
	}
	if c.At.After(r.h.LastSeen) {
		r.h.LastSeen = c.At
	}
	r.gen = gen
	keep := make(map[string]bool, len(c.Instances))
	for _, in := range c.Instances {
		keep[in.UUID] = true
	}
	for id, old := range v.insts {
		if old.Kind == KindContainer && old.Host == c.Host && !keep[id] {
			v.unaccount(old, gen)
			delete(v.insts, id)
		}
	}
	for _, in := range c.Instances {
		n := in
		n.Kind, n.Host, n.Updated = KindContainer, c.Host, c.At
		if old := v.insts[n.UUID]; old != nil {
			if old.Kind != KindContainer {
				continue // a Nova instance's uuid: not the agent's to change
			}
			if old.Host != c.Host && old.Updated.After(c.At) {
				continue // a newer report places it elsewhere (it moved)
			}
			v.unaccount(old, gen)
			*old = n
			v.account(old, gen)
			continue
		}
		v.insts[n.UUID] = &n
		v.account(&n, gen)
	}
	return Applied
}

func (v *View) addTomb(uuid string, t time.Time) {
	if _, ok := v.tomb[uuid]; !ok {
		if ev := v.tombs.add(uuid); ev != "" {
			delete(v.tomb, ev)
		}
	}
	if t.After(v.tomb[uuid]) {
		v.tomb[uuid] = t
	}
}

// account adds an instance's resources to its host.
func (v *View) account(i *Instance, gen uint64) { v.count(i, 1, gen) }

// unaccount removes them.
func (v *View) unaccount(i *Instance, gen uint64) { v.count(i, -1, gen) }

func (v *View) count(i *Instance, sign int, gen uint64) {
	if !i.consumes() {
		return
	}
	r := v.host(i.Host, gen)
	r.gen = gen
	r.h.Compute = true
	if r.h.Nodename == "" && i.Node != "" {
		r.h.Nodename = i.Node
	}
	r.h.Instances += sign
	r.h.Usage.VCPUs += sign * i.Flavor.VCPUs
	r.h.Usage.MemoryMB += int64(sign) * i.Flavor.MemoryMB
	r.h.Usage.DiskGB += int64(sign) * i.Flavor.DiskGB()
	if i.busy() {
		n := r.busy[i.Tag] + sign*i.Flavor.VCPUs
		if n == 0 {
			delete(r.busy, i.Tag)
		} else {
			r.busy[i.Tag] = n
		}
	}
}

func (v *View) applyService(ev *Event, gen uint64) Outcome {
	c := &ev.Service
	if c.Binary != "" && c.Binary != "nova-compute" {
		return Ignored
	}
	r := v.host(c.Host, gen)
	if ev.Timestamp.Before(r.svcAt) {
		return Stale
	}
	r.svcAt = ev.Timestamp
	r.gen = gen
	r.h.Compute = true
	r.h.DisabledReason = ""
	switch {
	case c.Deleted:
		r.h.Service = StateDeleted
	case c.ForcedDown:
		r.h.Service = StateDown
	case c.Disabled:
		r.h.Service = StateDisabled
		r.h.DisabledReason = c.DisabledReason
	default:
		r.h.Service = StateUp
	}
	return Applied
}

func (v *View) applyMetrics(ev *Event, gen uint64) Outcome {
	m := &ev.Metrics
	at := m.At
	if at.IsZero() {
		at = ev.Timestamp
	}
	r := v.host(m.Host, gen)
	if at.Before(r.h.CPU.At) {
		return Stale
	}
	r.gen = gen
	r.h.Compute = true
	if r.h.Nodename == "" {
		r.h.Nodename = m.Nodename
	}
	if m.HasCPU {
		r.h.CPU = Measurement{Value: m.CPU, At: at}
	}
	if at.After(r.h.LastSeen) {
		r.h.LastSeen = at
	}
	return Applied
}

func (v *View) applyPower(ev *Event, gen uint64) Outcome {
	p := &ev.Power
	at := p.At
	if at.IsZero() {
		at = ev.Timestamp
	}
	// A node agent's word alone does not make a compute host: a typo or a
	// stray agent would otherwise add a phantom host to every placement.
	r := v.hosts[p.Host]
	if r == nil {
		return UnknownHost
	}
	if at.Before(r.h.Watts.At) || at.Before(r.h.Utilization.At) {
		return Stale
	}
	r.gen = gen
	if p.HasWatts {
		r.h.Watts = Measurement{Value: p.Watts, At: at}
	}
	if p.HasUtil {
		r.h.Utilization = Measurement{Value: p.Utilization, At: at}
	}
	if p.HasDemand {
		r.h.Demand = Measurement{Value: p.Demand, At: at}
	}
	if p.HasWatts && p.HasUtil && p.Source != SourceRAPL {
		if r.fit == nil {
			r.fit = &powerfit.Stats{}
		}
		r.fit.Add(p.Utilization, p.Watts, 0)
	}
	if at.After(r.h.LastSeen) {
		r.h.LastSeen = at
	}
	return Applied
}

// Snapshot is an immutable copy of the hosts at one version of the view.
type Snapshot struct {
	Version    uint64
	AppliedSeq uint64
	// Hosts are sorted by name. Deleted compute services without instances
	// are left out.
	Hosts  []Host
	byName map[string]int
	byNode map[string]int
}

// Lookup finds a host by name, else by node name.
func (s *Snapshot) Lookup(host, nodename string) (*Host, bool) {
	if i, ok := s.Index(host, nodename); ok {
		return &s.Hosts[i], true
	}
	return nil, false
}

// Index is Lookup's host as an index into Hosts.
func (s *Snapshot) Index(host, nodename string) (int, bool) {
	if i, ok := s.byName[host]; ok {
		return i, true
	}
	if nodename != "" {
		if i, ok := s.byNode[nodename]; ok {
			return i, true
		}
	}
	return -1, false
}

// Snapshot returns the current hosts. It is shared: callers must not
// modify it. Between two changes every caller gets the same one; a rebuild
// copies only the hosts that changed.
func (v *View) Snapshot() *Snapshot {
	if s := v.snap.Load(); s != nil && s.Version == v.version.Load() {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snapshotLocked()
}

// snapshotLocked is Snapshot with v.mu held.
func (v *View) snapshotLocked() *Snapshot {
	prev := v.snap.Load()
	ver := v.version.Load()
	if prev != nil && prev.Version == ver {
		return prev
	}
	if v.names == nil {
		v.names = make([]string, 0, len(v.hosts))
		for n := range v.hosts {
			v.names = append(v.names, n)
		}
		sort.Strings(v.names)
	}
	s := &Snapshot{
		Version: ver, AppliedSeq: v.appliedSeq,
		Hosts:  make([]Host, 0, len(v.names)),
		byName: make(map[string]int, len(v.names)),
		byNode: make(map[string]int, len(v.names)),
	}
	for _, n := range v.names {
		r := v.hosts[n]
		if r.h.Service == StateDeleted && r.h.Instances == 0 {
			continue
		}
		var h Host
		if j, ok := prevIndex(prev, n); ok && r.gen <= prev.Version {
			h = prev.Hosts[j] // unchanged since: share it
		} else {
			h = r.h
			h.Busy = busyList(r.busy)
		}
		s.byName[n] = len(s.Hosts)
		if h.Nodename != "" {
			s.byNode[h.Nodename] = len(s.Hosts)
		}
		s.Hosts = append(s.Hosts, h)
	}
	v.snap.Store(s)
	return s
}

func prevIndex(prev *Snapshot, name string) (int, bool) {
	if prev == nil {
		return 0, false
	}
	i, ok := prev.byName[name]
	return i, ok
}

func busyList(m map[string]int) []TagVCPUs {
	if len(m) == 0 {
		return nil
	}
	out := make([]TagVCPUs, 0, len(m))
	for t, n := range m {
		out = append(out, TagVCPUs{Tag: t, VCPUs: n})
	}
	slices.SortFunc(out, func(a, b TagVCPUs) int {
		switch {
		case a.Tag < b.Tag:
			return -1
		case a.Tag > b.Tag:
			return 1
		}
		return 0
	})
	return out
}

// Instances returns a copy of every instance the view knows, sorted by
// host then uuid; host "" filters nothing, else only that host's.
func (v *View) Instances(host string) []Instance {
	v.mu.Lock()
	out := v.instancesLocked(host)
	v.mu.Unlock()
	sortInstances(out)
	return out
}

// SnapshotWithInstances is Snapshot and Instances("") taken at one
// instant: a caller that shows or plans from both never mixes two states
// of the view (a host's instance count from before a resync with the
// instance list from after it).
func (v *View) SnapshotWithInstances() (*Snapshot, []Instance) {
	v.mu.Lock()
	s := v.snapshotLocked()
	out := v.instancesLocked("")
	v.mu.Unlock()
	sortInstances(out)
	return s, out
}

// instancesLocked copies the instances of host ("" = all), v.mu held.
func (v *View) instancesLocked(host string) []Instance {
	out := make([]Instance, 0, len(v.insts))
	for _, i := range v.insts {
		if host == "" || i.Host == host {
			out = append(out, *i)
		}
	}
	return out
}

// sortInstances orders instances by host, then UUID.
func sortInstances(out []Instance) {
	slices.SortFunc(out, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.UUID, b.UUID))
	})
}

// Instance returns one instance.
func (v *View) Instance(uuid string) (Instance, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if i := v.insts[uuid]; i != nil {
		return *i, true
	}
	return Instance{}, false
}

// Freshness says how current a host's data is at one moment.
type Freshness struct {
	// Stale: not heard from within StaleAfter (or never).
	Stale bool
	// Heard: heard from at least once; Since is the time since then.
	Heard bool
	Since time.Duration
	// Each measurement is present and no older than StaleAfter.
	CPU, Utilization, Demand, Watts bool
	// Limit is the view's StaleAfter.
	Limit time.Duration
}

// Freshness of h at now.
func (v *View) Freshness(h *Host, now time.Time) Freshness {
	fresh := func(m Measurement) bool { return m.Has() && now.Sub(m.At) <= v.staleAfter }
	f := Freshness{Heard: !h.LastSeen.IsZero(), Limit: v.staleAfter}
	if f.Heard {
		f.Since = max(0, now.Sub(h.LastSeen))
	}
	f.Stale = !f.Heard || f.Since > v.staleAfter
	if !f.Stale {
		f.CPU, f.Utilization, f.Demand, f.Watts = fresh(h.CPU), fresh(h.Utilization), fresh(h.Demand), fresh(h.Watts)
	}
	return f
}

// StaleHosts counts the compute hosts that are stale now.
func (v *View) StaleHosts() int {
	s, now, n := v.Snapshot(), v.now(), 0
	for i := range s.Hosts {
		if s.Hosts[i].Compute && v.Freshness(&s.Hosts[i], now).Stale {
			n++
		}
	}
	return n
}

// Counts returns how many hosts by service state and how many instances
// the view holds (for metrics).
func (v *View) Counts() (hosts map[ServiceState]int, instances int) {
	s := v.Snapshot()
	hosts = map[ServiceState]int{}
	for i := range s.Hosts {
		if s.Hosts[i].Compute {
			hosts[s.Hosts[i].Service]++
		}
	}
	v.mu.Lock()
	instances = len(v.insts)
	v.mu.Unlock()
	return hosts, instances
}

// PowerStats returns the sums of a host's measured (utilisation, watts)
// samples, for fitting its power curve; false when it has none.
func (v *View) PowerStats(host string) (powerfit.Stats, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r := v.hosts[host]; r != nil && r.fit != nil {
		return *r.fit, true
	}
	return powerfit.Stats{}, false
}

// PowerStatsHosts lists the hosts with measured samples, sorted.
func (v *View) PowerStatsHosts() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for n, r := range v.hosts {
		if r.fit != nil {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
