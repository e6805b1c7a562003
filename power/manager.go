package power

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ecrae/ecrae/hostview"
)

// DisabledReason is what Nova shows for a host ECRAE powered off.
const DisabledReason = "ecrae: powered off"

// Policy says what the manager does on its own.
type Policy string

// Policies: off does nothing on its own; advise records what it would do;
// act does it.
const (
	PolicyOff    Policy = "off"
	PolicyAdvise Policy = "advise"
	PolicyAct    Policy = "act"
)

// ParsePolicy reads --power-policy.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyOff, PolicyAdvise, PolicyAct:
		return p, nil
	}
	return "", fmt.Errorf("%q: want off, advise or act", clip(s))
}

// ErrRefused marks an action a safety rule stopped.
var ErrRefused = errors.New("refused")

// ErrUnknownHost marks a host the KB has no power endpoint for.
var ErrUnknownHost = errors.New("no power endpoint")

// ErrFenced marks an action refused because this replica may not act (it
// does not hold the leader lease, or no longer at the revision it had).
var ErrFenced = errors.New("fenced")

// Fence says whether this replica may still act (ha.Lease: the leader
// lease's fencing revision, read from the replicated bucket).
type Fence interface {
	Check(ctx context.Context) error
}

// Nova is what the manager needs from Nova's compute services API.
type Nova interface {
	DisableService(ctx context.Context, host, reason string) error
	EnableService(ctx context.Context, host string) error
	// HostBusy is Nova's own word: "" when the host holds no server and
	// takes part in no unsettled migration, else why not.
	HostBusy(ctx context.Context, host string) (string, error)
}

// HostView is what the manager reads of the live view.
type HostView interface {
	Snapshot() *hostview.Snapshot
	Instances(host string) []hostview.Instance
	Freshness(h *hostview.Host, now time.Time) hostview.Freshness
	Now() time.Time
}

// HostEntry is the KB's word on a host.
type HostEntry struct {
	Name, Architecture, Power string
}

// Inventory lists the KB's hosts.
type Inventory func(ctx context.Context) ([]HostEntry, error)

// Config of a Manager.
type Config struct {
	Policy      Policy
	Headroom    Headroom
	Credentials *CredentialFile
	Backends    Backends
	// Nova disables and enables compute services; nil: power off is
	// refused (a powered-off host Nova still offers would fail boots).
	Nova     Nova
	View     HostView
	Hosts    Inventory
	History  *History
	Metrics  *Metrics
	Log      *slog.Logger
	Interval time.Duration // policy and wake checks; 0 = 10s
	// OnPause, when set, is told when the policy stops or resumes acting
	// (serve turns it into the PowerService's health).
	OnPause func(paused bool)
	// Fence, when set, is checked before Nova's service is disabled for a
	// power off and again right before every BMC action (cluster mode): a
	// replica that lost the lead powers nothing.
	Fence Fence
}

// offHost is a host ECRAE powered off, or woke and waits for.
type offHost struct {
	at     time.Time // when it went off
	watts  float64   // measured just before, 0 = no sample
	wokeAt time.Time // zero: still off
}

// Manager powers hosts off and on. Its goroutine is Run's.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	noRoom chan struct{}

	mu     sync.Mutex
	creds  *CredentialFile
	off    map[string]*offHost
	paused bool
	busy   map[string]bool // a host with an action in progress
	// advised: the host advise mode last said to wake, so a short headroom
	// is recorded once, not at every tick.
	advised string
}

// NewManager builds a manager; hosts the history shows as powered off by
// ECRAE (and not woken since) are remembered as such.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.View == nil || cfg.Hosts == nil || cfg.History == nil {
		return nil, errors.New("power: view, hosts and history are required")
	}
	if cfg.Policy == "" {
		cfg.Policy = PolicyAdvise
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	m := &Manager{cfg: cfg, log: cfg.Log, creds: cfg.Credentials, noRoom: make(chan struct{}, 1),
		off: map[string]*offHost{}, busy: map[string]bool{}}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload learns from the history which hosts ECRAE powered off and has
// not woken, and which it woke and waits for. In cluster mode a new
// leader calls it once the replicated history has caught up: the hosts
// the previous leader powered off are then its to wake.
func (m *Manager) Reload() error {
	// Under the lock from the read on: an action in progress records its
	// event before it releases its host, so a host is either busy (and
	// what this replica holds of it stays) or its last event is read.
	m.mu.Lock()
	defer m.mu.Unlock()
	evs, err := m.cfg.History.List("", 0)
	if err != nil {
		return err
	}
	off := hostsOff(evs, m.busy)
	for h, o := range m.off {
		if m.busy[h] {
			off[h] = o
		} else if n := off[h]; n != nil && n.at.Equal(o.at) {
			n.watts = o.watts // measured here before it went off
		}
	}
	m.off = off
	m.cfg.Metrics.hostsOff.Set(float64(m.countOff()))
	return nil
}

// hostsOff reads, from the history (newest first), the hosts ECRAE
// powered off and has not woken, and those it woke whose service it has
// not enabled yet; busy hosts are left out. A host's latest off, on or
// enabled is its state, but an "on" counts as a wake only after an "off":
// a host ECRAE powered on that it had not powered off keeps the service
// the operator gave it.
func hostsOff(evs []Event, busy map[string]bool) map[string]*offHost {
	off := map[string]*offHost{}
	latest := map[string]*Event{} // the host's latest on, waiting for the state before it
	done := map[string]bool{}
	for i := range evs {
		e := &evs[i]
		if e.Host == "" || done[e.Host] || busy[e.Host] {
			continue
		}
		if e.Action != ActOff && e.Action != ActOn && e.Action != ActEnabled {
			continue
		}
		if on := latest[e.Host]; on != nil {
			if e.Action == ActOff {
				off[e.Host] = &offHost{at: e.At, wokeAt: on.At}
			}
			done[e.Host] = true
			continue
		}
		switch e.Action {
		case ActOff:
			off[e.Host] = &offHost{at: e.At}
			done[e.Host] = true
		case ActOn:
			latest[e.Host] = e
		case ActEnabled:
			done[e.Host] = true
		}
	}
	return off
}

// SetCredentials replaces the credentials (SIGHUP).
func (m *Manager) SetCredentials(c *CredentialFile) {
	m.mu.Lock()
	m.creds = c
	m.mu.Unlock()
}

// SetOnPause sets Config.OnPause (before Run).
func (m *Manager) SetOnPause(f func(paused bool)) {
	m.mu.Lock()
	m.cfg.OnPause = f
	m.mu.Unlock()
}

// Policy returns the configured policy.
func (m *Manager) Policy() Policy { return m.cfg.Policy }

// Paused reports whether the policy stopped acting on a stale view.
func (m *Manager) Paused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

// HostsOff is the number of hosts ECRAE powered off and has not woken.
func (m *Manager) HostsOff() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.countOff()
}

func (m *Manager) countOff() int {
	n := 0
	for _, o := range m.off {
		if o.wokeAt.IsZero() {
			n++
		}
	}
	return n
}

// IsOff reports whether ECRAE powered the host off and has not woken it.
func (m *Manager) IsOff(host string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.off[host]
	return o != nil && o.wokeAt.IsZero()
}

// woken reports whether ECRAE powered the host on and waits for it to
// report (its nova-compute service is enabled then).
func (m *Manager) woken(host string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.off[host]
	return o != nil && !o.wokeAt.IsZero()
}

// Target is a host with its endpoint.
type Target struct {
	Host     string
	Endpoint Endpoint
	Arch     string
}

// target resolves a host to its endpoint and backend.
func (m *Manager) target(ctx context.Context, host string) (Target, Backend, error) {
	hosts, err := m.cfg.Hosts(ctx)
	if err != nil {
		return Target{}, nil, fmt.Errorf("read the KB's hosts: %w", err)
	}
	i := slices.IndexFunc(hosts, func(h HostEntry) bool { return h.Name == host })
	if i < 0 || hosts[i].Power == "" {
		return Target{}, nil, fmt.Errorf("host %q: %w in the KB (ecrae kb host set %s --power URL)", clip(host), ErrUnknownHost, clip(host))
	}
	ep, err := ParseEndpoint(hosts[i].Power)
	if err != nil {
		return Target{}, nil, fmt.Errorf("host %s: %w", host, err)
	}
	m.mu.Lock()
	cred, ok := m.creds.For(host)
	m.mu.Unlock()
	b, err := m.cfg.Backends.For(ep, cred, ok)
	if err != nil {
		return Target{}, nil, fmt.Errorf("host %s: %w", host, err)
	}
	return Target{Host: host, Endpoint: ep, Arch: hosts[i].Architecture}, b, nil
}

// HostStatus is one host's power as its BMC reports it.
type HostStatus struct {
	Host     string `json:"host"`
	Endpoint string `json:"endpoint"`
	State    State  `json:"state"`
	// OffByECRAE: ECRAE powered it off (and has not woken it).
	OffByECRAE bool   `json:"off_by_ecrae,omitempty"`
	Waking     bool   `json:"waking,omitempty"` // woken, its service not enabled yet
	Error      string `json:"error,omitempty"`  // why State is unknown
}

// Status asks the BMC of host, or of every host with an endpoint when
// host is "". A BMC that does not answer gives StateUnknown and its error.
func (m *Manager) Status(ctx context.Context, host string) ([]HostStatus, error) {
	var names []string
	if host != "" {
		names = []string{host}
	} else {
		hosts, err := m.cfg.Hosts(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the KB's hosts: %w", err)
		}
		for _, h := range hosts {
			if h.Power != "" {
				names = append(names, h.Name)
			}
		}
		sort.Strings(names)
	}
	if host != "" {
		// One host: a host without an endpoint is the caller's error.
		if _, _, err := m.target(ctx, host); err != nil {
			return nil, err
		}
	}
	// BMCs answer slowly (or time out): ask them at once, a few at a time.
	out := make([]HostStatus, len(names))
	sem := make(chan struct{}, statusParallel)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = m.status(ctx, n)
		}()
	}
	wg.Wait()
	return out, nil
}

// statusParallel bounds the BMCs asked at once by Status.
const statusParallel = 16

// recordTimeout bounds the recording of one event (in cluster mode a
// publish to the replicated history, which waits for a quorum).
const recordTimeout = 10 * time.Second

func (m *Manager) status(ctx context.Context, n string) HostStatus {
	t, b, err := m.target(ctx, n)
	if err != nil {
		return HostStatus{Host: n, State: StateUnknown, Error: err.Error()}
	}
	st := HostStatus{Host: n, Endpoint: t.Endpoint.String()}
	m.mu.Lock()
	if o := m.off[n]; o != nil {
		st.OffByECRAE, st.Waking = o.wokeAt.IsZero(), !o.wokeAt.IsZero()
	}
	m.mu.Unlock()
	s, err := b.Status(ctx)
	st.State = s
	if err != nil {
		st.State, st.Error = StateUnknown, fmt.Sprintf("host %s (%s): %v", n, t.Endpoint, err)
		m.cfg.Metrics.errors.Inc()
	}
	return st
}

// migrating task states: an instance in one of them may be on its way to
// any host, and the view does not say which.
var migrating = map[string]bool{
	"migrating": true, "resize_prep": true, "resize_migrating": true, "resize_migrated": true,
	"resize_finish": true, "resize_reverting": true, "rebuilding": true, "rebuild_spawning": true,
	"unshelving": true, "spawning": true, "scheduling": true, "block_device_mapping": true, "networking": true,
}

// safeToPowerOff returns nil when the view says host holds no instance,
// no instance anywhere is being moved or built (its destination is not
// known), and the host's data is fresh.
func (m *Manager) safeToPowerOff(host string) error {
	v := m.cfg.View
	snap := v.Snapshot()
	h, ok := snap.Lookup(host, "")
	if !ok {
		return fmt.Errorf("%w: host %s is not in the live view (its instances are unknown)", ErrRefused, host)
	}
	if f := v.Freshness(h, v.Now()); f.Stale {
		return fmt.Errorf("%w: host %s is stale in the live view (last heard %s ago, limit %s): its instances are not known for sure", ErrRefused, host, f.Since.Round(time.Second), f.Limit)
	}
	held := 0
	for _, i := range v.Instances(host) {
		if i.State != "deleted" && i.State != "shelved_offloaded" {
			held++
		}
	}
	if held > 0 || h.Instances > 0 {
		return fmt.Errorf("%w: host %s holds %d instance(s)", ErrRefused, host, max(held, h.Instances))
	}
	for _, i := range v.Instances("") {
		if migrating[i.TaskState] {
			return fmt.Errorf("%w: instance %s is in flight (task state %s; its destination may be %s)", ErrRefused, i.UUID, i.TaskState, host)
		}
	}
	return nil
}

// claim marks host busy for one action at a time.
func (m *Manager) claim(host string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[host] {
		return false
	}
	m.busy[host] = true
	return true
}

func (m *Manager) release(host string) {
	m.mu.Lock()
	delete(m.busy, host)
	m.mu.Unlock()
}

// fenced checks Config.Fence right before an action.
func (m *Manager) fenced(ctx context.Context, host, action string) error {
	if m.cfg.Fence == nil {
		return nil
	}
	if err := m.cfg.Fence.Check(ctx); err != nil {
		return fmt.Errorf("%w: host %s: %s not done: %w", ErrFenced, host, action, err)
	}
	return nil
}

func (m *Manager) record(ctx context.Context, e Event) {
	e.At = m.cfg.View.Now()
	// What was done is recorded even when the caller has gone: the
	// history is how the next leader learns which hosts are off.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := m.cfg.History.Append(ctx, &e); err != nil {
		m.cfg.Metrics.errors.Inc()
		m.log.Error("power: history", "host", e.Host, "action", e.Action, "err", err)
	}
	m.cfg.Metrics.actions.WithLabelValues(string(e.Action)).Inc()
	m.log.Info("power", "host", e.Host, "action", e.Action, "by", e.By, "detail", e.Detail)
}

// Off powers host off: refused when it holds an instance, an instance
// is in flight anywhere, its view is stale, or Nova cannot disable its
// service first. If the BMC fails, the service is enabled again.
func (m *Manager) Off(ctx context.Context, host, by string) error {
	if !m.claim(host) {
		return inProgress(host)
	}
	defer m.release(host)
	t, b, err := m.target(ctx, host)
	if err != nil {
		m.record(ctx, Event{Host: host, Action: ActFailed, By: by, Detail: "off: " + err.Error()})
		return err
	}
	refuse := func(err error) error {
		m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActRefused, By: by, Detail: "off: " + err.Error()})
		return err
	}
	if err := m.safeToPowerOff(host); err != nil {
		return refuse(err)
	}
	if m.cfg.Nova == nil {
		return refuse(noNova(host))
	}
	if err := m.fenced(ctx, host, "power off"); err != nil {
		return refuse(err)
	}
	if err := m.cfg.Nova.DisableService(ctx, host, DisabledReason); err != nil {
		m.cfg.Metrics.errors.Inc()
		return refuse(fmt.Errorf("%w: host %s: disable its nova-compute service: %v", ErrRefused, host, err))
	}
	// A boot Nova placed before the disable may have landed since; and
	// Nova itself, not only the view, must say the host is idle.
	if err := m.safeToPowerOff(host); err != nil {
		m.reenable(ctx, host, by)
		return refuse(err)
	}
	if why, err := m.cfg.Nova.HostBusy(ctx, host); err != nil || why != "" {
		if err != nil {
			m.cfg.Metrics.errors.Inc()
			why = "cannot ask Nova whether it is idle: " + err.Error()
		}
		m.reenable(ctx, host, by)
		return refuse(fmt.Errorf("%w: host %s: %s", ErrRefused, host, why))
	}
	var watts float64
	if h, ok := m.cfg.View.Snapshot().Lookup(host, ""); ok {
		if f := m.cfg.View.Freshness(h, m.cfg.View.Now()); f.Watts {
			watts = h.Watts.Value
		}
	}
	// The lease may have been lost while Nova answered.
	if err := m.fenced(ctx, host, "power off"); err != nil {
		m.reenable(ctx, host, by)
		return refuse(err)
	}
	if err := b.Off(ctx); err != nil {
		m.cfg.Metrics.errors.Inc()
		err = fmt.Errorf("host %s (%s): power off: %w", host, t.Endpoint, err)
		m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActFailed, By: by, Detail: err.Error()})
		m.reenable(ctx, host, by)
		return err
	}
	m.mu.Lock()
	m.off[host] = &offHost{at: m.cfg.View.Now(), watts: watts}
	m.cfg.Metrics.hostsOff.Set(float64(m.countOff()))
	m.mu.Unlock()
	d := "nova-compute disabled, then powered off"
	if watts > 0 {
		d += fmt.Sprintf(" (drew %.1f W)", watts)
	}
	m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActOff, By: by, Detail: d})
	return nil
}

func (m *Manager) reenable(ctx context.Context, host, by string) {
	if err := m.cfg.Nova.EnableService(context.WithoutCancel(ctx), host); err != nil {
		m.cfg.Metrics.errors.Inc()
		m.record(ctx, Event{Host: host, Action: ActFailed, By: by, Detail: "enable nova-compute again after a refused power off: " + err.Error()})
	}
}

// On powers host on. Its nova-compute service is enabled by Run once the
// host reports again (a service enabled before would take boots it cannot
// run yet).
func (m *Manager) On(ctx context.Context, host, by string) error {
	if !m.claim(host) {
		return inProgress(host)
	}
	defer m.release(host)
	t, b, err := m.target(ctx, host)
	if err != nil {
		m.record(ctx, Event{Host: host, Action: ActFailed, By: by, Detail: "on: " + err.Error()})
		return err
	}
	if err := m.fenced(ctx, host, "power on"); err != nil {
		m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActRefused, By: by, Detail: "on: " + err.Error()})
		return err
	}
	if err := b.On(ctx); err != nil {
		m.cfg.Metrics.errors.Inc()
		err = fmt.Errorf("host %s (%s): power on: %w", host, t.Endpoint, err)
		m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActFailed, By: by, Detail: err.Error()})
		return err
	}
	now := m.cfg.View.Now()
	m.mu.Lock()
	o := m.off[host]
	if o == nil {
		// Not powered off by ECRAE: its service is the operator's.
		m.mu.Unlock()
		m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActOn, By: by, Detail: "powered on (not powered off by ECRAE: its nova-compute service is left as it is)"})
		return nil
	}
	if o.wokeAt.IsZero() {
		o.wokeAt = now
		m.addSaved(o, now)
	}
	m.cfg.Metrics.hostsOff.Set(float64(m.countOff()))
	m.mu.Unlock()
	m.cfg.Metrics.wakeups.WithLabelValues(by).Inc()
	m.record(ctx, Event{Host: host, Endpoint: t.Endpoint.String(), Action: ActOn, By: by, Detail: "powered on; nova-compute is enabled once the host reports"})
	return nil
}

// addSaved counts the energy the host did not draw while off, at its
// last measured power (none counted without a sample). m.mu is held.
func (m *Manager) addSaved(o *offHost, until time.Time) {
	if o.watts > 0 && until.After(o.at) {
		m.cfg.Metrics.savedJoules.Add(o.watts * until.Sub(o.at).Seconds())
	}
}

// FreedHosts is told of the hosts a rebalance plan emptied: the policy
// powers them off while the headroom holds (advise: records it would).
func (m *Manager) FreedHosts(ctx context.Context, hosts []string) {
	if m.cfg.Policy == PolicyOff || len(hosts) == 0 {
		return
	}
	if m.stale() {
		m.log.Warn("power: the live view is stale; freed hosts stay on", "hosts", hosts)
		return
	}
	for _, name := range hosts {
		snap := m.cfg.View.Snapshot()
		h, ok := snap.Lookup(name, "")
		if !ok {
			continue
		}
		spare := SpareByGroup(snap.Hosts, group, m.IsOff, m.woken)[group(h)]
		if !m.cfg.Headroom.Meets(spare.Without(h)) {
			m.log.Info("power: freed host stays on for headroom", "host", name, "headroom", m.cfg.Headroom.String())
			continue
		}
		if m.cfg.Policy == PolicyAdvise {
			m.record(ctx, Event{Host: name, Action: ActAdviseOff, By: "plan", Detail: fmt.Sprintf("freed by a plan; headroom %s holds without it", m.cfg.Headroom)})
			continue
		}
		if err := m.Off(ctx, name, "plan"); err != nil {
			m.log.Warn("power: freed host not powered off", "host", name, "err", err)
		}
	}
}

// NoRoom is called when a FilterHosts pass passed no host: Run wakes a
// host at once. It never blocks the placement call.
func (m *Manager) NoRoom() {
	select {
	case m.noRoom <- struct{}{}:
	default:
	}
}

// group is a host's headroom group: its ISA (Nova's cpu_info), as any
// host of an instance's ISA can take it.
func group(h *hostview.Host) string {
	if h.ISA == "" {
		return "unknown ISA"
	}
	return h.ISA
}

// stale reports whether a placeable compute host (one ECRAE did not power
// off) is stale: then instance counts and headroom cannot be trusted.
func (m *Manager) stale() bool {
	v := m.cfg.View
	snap, now := v.Snapshot(), v.Now()
	for i := range snap.Hosts {
		h := &snap.Hosts[i]
		// Only hosts Nova may place on: a disabled or down host takes no
		// boot, and its silence says nothing about the view.
		if h.Compute && h.Service.Placeable() && !m.IsOff(h.Name) && v.Freshness(h, now).Stale {
			return true
		}
	}
	return false
}

// Run checks woken hosts, the headroom and no-room signals until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		noRoom := false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.noRoom:
			noRoom = true
		}
		m.Tick(ctx, noRoom)
	}
}

// Tick is one pass of Run: enable the services of woken hosts that report
// again, then (policy advise or act, view fresh) wake a host when the
// headroom of its architecture is short, or at once after a no-room pass.
func (m *Manager) Tick(ctx context.Context, noRoom bool) {
	m.enableReported(ctx)
	stale := m.stale()
	m.mu.Lock()
	changed := stale != m.paused
	m.paused = stale
	m.mu.Unlock()
	if stale {
		m.cfg.Metrics.paused.Set(1)
	} else {
		m.cfg.Metrics.paused.Set(0)
	}
	if changed {
		d := "resumed: the live view is fresh again"
		if stale {
			d = "stopped acting: the live view is stale"
		}
		m.record(ctx, Event{Action: ActPaused, By: "policy", Detail: d})
		m.mu.Lock()
		f := m.cfg.OnPause
		m.mu.Unlock()
		if f != nil {
			f(stale)
		}
	}
	if m.cfg.Policy == PolicyOff || stale {
		return
	}
	host, why := m.wakeCandidate(ctx, noRoom)
	m.mu.Lock()
	repeat := host != "" && host == m.advised && !noRoom
	if m.cfg.Policy == PolicyAdvise {
		m.advised = host
	}
	m.mu.Unlock()
	if host == "" || repeat {
		return
	}
	by := "policy"
	if noRoom {
		by = "no-room"
	}
	if m.cfg.Policy == PolicyAdvise {
		m.record(ctx, Event{Host: host, Action: ActAdviseOn, By: by, Detail: why})
		return
	}
	if err := m.On(ctx, host, by); err != nil {
		m.log.Warn("power: wake failed", "host", host, "err", err)
	}
}

// wakeCandidate picks a host ECRAE powered off to wake: after a no-room
// pass any (the longest off), else one of an architecture whose headroom
// is short.
func (m *Manager) wakeCandidate(ctx context.Context, noRoom bool) (string, string) {
	m.mu.Lock()
	var offs []string
	for h, o := range m.off {
		if o.wokeAt.IsZero() {
			offs = append(offs, h)
		}
	}
	sort.Slice(offs, func(i, j int) bool {
		a, b := m.off[offs[i]], m.off[offs[j]]
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return offs[i] < offs[j]
	})
	m.mu.Unlock()
	if len(offs) == 0 {
		return "", ""
	}
	if noRoom {
		return offs[0], "a FilterHosts pass found no host with room"
	}
	snap := m.cfg.View.Snapshot()
	spare := SpareByGroup(snap.Hosts, group, m.IsOff, m.woken)
	for _, name := range offs {
		h, ok := snap.Lookup(name, "")
		if !ok {
			continue
		}
		g := group(h)
		if s := spare[g]; !m.cfg.Headroom.Meets(s) {
			return name, fmt.Sprintf("headroom of %s short: %d empty host(s), %.0f%% of vCPUs and %.0f%% of RAM free, want %s", g, s.EmptyHosts, 100*s.Share(), 100*s.RAMShare(), m.cfg.Headroom)
		}
	}
	return "", ""
}

// enableReported enables the nova-compute service of each woken host that
// is on at its BMC and was heard from since it was woken.
func (m *Manager) enableReported(ctx context.Context) {
	m.mu.Lock()
	var woken []string
	for h, o := range m.off {
		if !o.wokeAt.IsZero() {
			woken = append(woken, h)
		}
	}
	m.mu.Unlock()
	sort.Strings(woken)
	for _, name := range woken {
		m.enableIfReported(ctx, name)
	}
}

// enableIfReported is enableReported for one host, claimed meanwhile so
// that a Reload keeps what this pass holds of it until its event is
// recorded.
func (m *Manager) enableIfReported(ctx context.Context, name string) {
	if !m.claim(name) {
		return // an action on it is in progress: the next pass
	}
	defer m.release(name)
	m.mu.Lock()
	o := m.off[name]
	m.mu.Unlock()
	if o == nil || o.wokeAt.IsZero() {
		return
	}
	wokeAt := o.wokeAt
	h, ok := m.cfg.View.Snapshot().Lookup(name, "")
	if !ok || !h.LastSeen.After(wokeAt) {
		return
	}
	t, b, err := m.target(ctx, name)
	if err != nil {
		return
	}
	if st, err := b.Status(ctx); err != nil || st != StateOn {
		return
	}
	if m.cfg.Nova != nil {
		if err := m.cfg.Nova.EnableService(ctx, name); err != nil {
			m.cfg.Metrics.errors.Inc()
			m.log.Warn("power: enable nova-compute of a woken host", "host", name, "err", err)
			return
		}
	}
	lat := h.LastSeen.Sub(wokeAt)
	m.mu.Lock()
	delete(m.off, name)
	m.mu.Unlock()
	m.cfg.Metrics.wakeLatency.Observe(lat.Seconds())
	m.record(ctx, Event{Host: name, Endpoint: t.Endpoint.String(), Action: ActEnabled, By: "policy", Latency: lat,
		Detail: fmt.Sprintf("reported %s after power on: nova-compute enabled", lat.Round(time.Millisecond))})
}

// History lists recorded events, newest first.
func (m *Manager) History(host string, limit int) ([]Event, error) {
	return m.cfg.History.List(host, limit)
}
