package power

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/novafake"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func cap8() hostview.Capacity {
	return hostview.Capacity{VCPUs: 8, CPURatio: 1, MemoryMB: 16384, DiskGB: 100}
}
func small() hostview.Flavor {
	return hostview.Flavor{Name: "small", VCPUs: 2, MemoryMB: 2048, RootGB: 10}
}
func seqOf(s *atomic.Uint64) uint64 { return s.Add(1) }
func msg(s *atomic.Uint64) string   { return fmt.Sprint("m", s.Load()) }
func inv(e ...HostEntry) Inventory {
	return func(context.Context) ([]HostEntry, error) { return e, nil }
}
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rig is a manager over a real view and history and a real fakebmc per
// host.
type rig struct {
	m     *Manager
	view  *hostview.View
	clk   *clock
	nova  *novafake.Services
	seq   atomic.Uint64
	ports map[string]int
	reg   *prometheus.Registry
	hosts []string
}

// resync reconciles the view as Nova and Placement would: every host up,
// with the instances given, read now.
func (r *rig) resync(insts ...hostview.Instance) {
	inv := hostview.Inventory{At: r.clk.now(), Instances: insts}
	for _, h := range r.hosts {
		inv.Hosts = append(inv.Hosts, hostview.HostInventory{Name: h, State: "up", ISA: "x86_64", Capacity: cap8()})
	}
	r.view.Reconcile(inv)
}

// sample is a node agent's power sample from host, now.
func (r *rig) sample(host string, watts float64) {
	r.view.Apply(seqOf(&r.seq), &hostview.Event{Kind: hostview.KindPower, Type: "ecrae.metrics", MessageID: msg(&r.seq), Timestamp: r.clk.now(),
		Power: hostview.PowerSample{Host: host, At: r.clk.now(), Watts: watts, HasWatts: true}})
}

func inst(uuid, host, task string) hostview.Instance {
	return hostview.Instance{UUID: uuid, Host: host, Node: host, Flavor: small(), State: "active", PowerState: "running", TaskState: task}
}

func ipmitoolOn(t *testing.T, port int) {
	t.Helper()
	ipmitool(t, port, "power", "on")
}

func (r *rig) bmc(t *testing.T, host string) string {
	t.Helper()
	return ipmitool(t, r.ports[host], "power", "status")
}

func newRig(t *testing.T, policy Policy, headroom Headroom, hosts ...string) *rig {
	t.Helper()
	r := &rig{clk: newClock(t0), nova: &novafake.Services{}, ports: map[string]int{}, reg: prometheus.NewRegistry()}
	r.view = hostview.New(hostview.Options{Now: r.clk.now, StaleAfter: 5 * time.Minute})
	var entries []HostEntry
	for _, h := range hosts {
		r.ports[h] = startFakeBMC(t)
		ipmitoolOn(t, r.ports[h]) // a compute host is on
		entries = append(entries, HostEntry{Name: h, Architecture: "x86", Power: fmt.Sprintf("ipmi://127.0.0.1:%d", r.ports[h])})
	}
	r.hosts = hosts
	r.resync()
	hist, err := OpenHistory(filepath.Join(t.TempDir(), "power.db"), 0)
	noErr(t, err)
	t.Cleanup(func() { hist.Close() })
	r.m, err = NewManager(Config{Policy: policy, Headroom: headroom, Nova: r.nova, View: r.view, Hosts: inv(entries...), History: hist,
		Credentials: &CredentialFile{Default: &Credentials{"admin", "password"}}, Metrics: NewMetrics(r.reg)})
	noErr(t, err)
	return r
}

func TestOffRefusesAHostWithAnInstance(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1", "c2")
	r.resync(inst("i1", "c1", ""))
	err := r.m.Off(context.Background(), "c1", "cli")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "holds 1 instance") {
		t.Fatalf("Off(c1) = %v, want refused: holds 1 instance", err)
	}
	if got := r.bmc(t, "c1"); got != "Chassis Power is on" {
		t.Errorf("BMC: %q", got)
	}
	if got := r.nova.Log(); got != "" {
		t.Errorf("Nova was called: %s", got)
	}
	// An instance in flight anywhere may be on its way to c2.
	r.resync(inst("i1", "c1", "migrating"))
	if err := r.m.Off(context.Background(), "c2", "cli"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("Off(c2) during a migration = %v", err)
	}
	evs, _ := r.m.History("", 0)
	if len(evs) != 2 || evs[0].Action != ActRefused || evs[1].Action != ActRefused {
		t.Errorf("history %+v, want two refusals", evs)
	}
}

func TestOffDisablesThenPowersOffAndOnWaitsForTheHostToReport(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1", "c2")
	r.resync(inst("i1", "c2", ""))
	r.sample("c1", 120)
	ctx := context.Background()
	noErr(t, r.m.Off(ctx, "c1", "cli"))
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off"; got != want {
		t.Errorf("Nova: %q, want %q", got, want)
	}
	if got := r.bmc(t, "c1"); got != "Chassis Power is off" {
		t.Errorf("BMC after Off: %q", got)
	}
	st, err := r.m.Status(ctx, "c1")
	if err != nil || len(st) != 1 || st[0].State != StateOff || !st[0].OffByECRAE {
		t.Errorf("Status = %+v, %v", st, err)
	}
	// Off for an hour at its measured 120 W: 120 × 3600 = 432000 J saved.
	r.clk.add(time.Hour)
	noErr(t, r.m.On(ctx, "c1", "cli"))
	if got := r.bmc(t, "c1"); got != "Chassis Power is on" {
		t.Errorf("BMC after On: %q", got)
	}
	if got := testutil.ToFloat64(r.m.cfg.Metrics.savedJoules); got != 432000 {
		t.Errorf("energy saved %v J, want 432000", got)
	}
	// Not reporting yet: the service stays disabled.
	r.m.Tick(ctx, false)
	if strings.Contains(r.nova.Log(), "enable") {
		t.Fatalf("enabled before the host reported: %s", r.nova.Log())
	}
	r.clk.add(90 * time.Second)
	r.sample("c1", 80)
	r.m.Tick(ctx, false)
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off; enable c1"; got != want {
		t.Errorf("Nova: %q, want %q", got, want)
	}
	evs, _ := r.m.History("c1", 0)
	if len(evs) != 3 || evs[0].Action != ActEnabled || evs[0].Latency != 90*time.Second || evs[1].Action != ActOn || evs[2].Action != ActOff {
		t.Errorf("history %+v", evs)
	}
}

// TestOffAsksNovaToo: the view may have missed an instance (a lost
// notification); Nova's own list is the last word.
func TestOffAsksNovaToo(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1")
	r.nova.SetBusy("c1", "Nova lists 1 server(s) on c1 (first: i-7)")
	err := r.m.Off(context.Background(), "c1", "cli")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "i-7") {
		t.Fatalf("Off = %v, want refused naming i-7", err)
	}
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off; enable c1"; got != want {
		t.Errorf("Nova: %q, want %q", got, want)
	}
	if r.bmc(t, "c1") != "Chassis Power is on" {
		t.Error("powered off under an instance")
	}
}

func TestOffFailsCleanlyOnAWrongPassword(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1")
	r.m.SetCredentials(&CredentialFile{Default: &Credentials{"admin", "wrong"}})
	err := r.m.Off(context.Background(), "c1", "cli")
	ep := fmt.Sprintf("ipmi://127.0.0.1:%d", r.ports["c1"])
	if err == nil || !strings.Contains(err.Error(), "host c1 ("+ep+")") {
		t.Fatalf("Off with a wrong password = %v, want an error naming the host and %s", err, ep)
	}
	// The service was disabled first, then enabled again: all or nothing.
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off; enable c1"; got != want {
		t.Errorf("Nova: %q, want %q", got, want)
	}
	if r.m.IsOff("c1") {
		t.Error("c1 counted as off")
	}
	st, err := r.m.Status(context.Background(), "")
	if err != nil || len(st) != 1 || st[0].State != StateUnknown || !strings.Contains(st[0].Error, ep) {
		t.Errorf("Status = %+v, %v", st, err)
	}
}

// TestUnreachableBMC: nothing answers at the endpoint: status is
// unknown and power on an error, each naming host and endpoint.
func TestUnreachableBMC(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	noErr(t, err)
	ep := fmt.Sprintf("ipmi://%s", c.LocalAddr()) // bound, never read: requests time out
	defer c.Close()
	r := newRig(t, PolicyAct, Headroom{}, "c1")
	r.m.cfg.Hosts = inv(HostEntry{Name: "c1", Power: fmt.Sprintf("ipmi://127.0.0.1:%d", r.ports["c1"])}, HostEntry{Name: "dead", Power: ep})
	r.m.cfg.Backends.Timeout = 300 * time.Millisecond
	ctx := context.Background()
	st, err := r.m.Status(ctx, "")
	noErr(t, err)
	if len(st) != 2 || st[0].Host != "c1" || st[0].State != StateOn || st[1].State != StateUnknown || !strings.Contains(st[1].Error, "host dead ("+ep+")") {
		t.Errorf("Status = %+v", st)
	}
	if err := r.m.On(ctx, "dead", "cli"); err == nil || !strings.Contains(err.Error(), "host dead ("+ep+")") {
		t.Errorf("On(dead) = %v", err)
	}
}

func TestOffWithoutNovaIsRefused(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1")
	r.m.cfg.Nova = nil
	if err := r.m.Off(context.Background(), "c1", "cli"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cannot be disabled first") {
		t.Fatalf("Off without Nova = %v", err)
	}
	if got := r.bmc(t, "c1"); got != "Chassis Power is on" {
		t.Errorf("BMC: %q", got)
	}
}

func TestPolicyKeepsHeadroomAndWakesOnNoRoom(t *testing.T) {
	// Three empty 8-vCPU hosts; headroom one empty host: two may go off,
	// the third stays (3 empty - 1 - 1 = 1 ≥ 1; then 1 - 1 = 0 < 1).
	r := newRig(t, PolicyAct, Headroom{Hosts: 1}, "c1", "c2", "c3")
	ctx := context.Background()
	r.m.FreedHosts(ctx, []string{"c1", "c2", "c3"})
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off; disable c2 ecrae: powered off"; got != want {
		t.Fatalf("Nova: %q, want %q", got, want)
	}
	if r.bmc(t, "c3") != "Chassis Power is on" || r.bmc(t, "c1") != "Chassis Power is off" {
		t.Fatalf("BMCs: c1 %q, c3 %q", r.bmc(t, "c1"), r.bmc(t, "c3"))
	}
	// The view learns the two are disabled, as Nova's notifications say.
	for _, h := range []string{"c1", "c2"} {
		r.view.Apply(seqOf(&r.seq), &hostview.Event{Kind: hostview.KindService, Type: "service.update", MessageID: msg(&r.seq), Timestamp: r.clk.now(),
			Service: hostview.ServiceChange{Host: h, Binary: "nova-compute", Disabled: true, DisabledReason: DisabledReason}})
	}
	// Headroom holds (c3 empty): nothing wakes.
	r.m.Tick(ctx, false)
	if got := testutil.ToFloat64(r.m.cfg.Metrics.hostsOff); got != 2 {
		t.Errorf("hosts off %v, want 2", got)
	}
	// A pass with no room wakes the host off longest, at once.
	r.m.NoRoom()
	select {
	case <-r.m.noRoom:
	default:
		t.Fatal("NoRoom did not signal")
	}
	r.m.Tick(ctx, true)
	if r.bmc(t, "c1") != "Chassis Power is on" {
		t.Errorf("c1 not woken: %q", r.bmc(t, "c1"))
	}
	// The retried boot lands on c1, another on c3: no empty host is left,
	// the headroom is short, c2 wakes.
	r.clk.add(time.Second)
	r.resync(inst("i1", "c3", ""), inst("i2", "c1", ""))
	r.view.Apply(seqOf(&r.seq), &hostview.Event{Kind: hostview.KindService, Type: "service.update", MessageID: msg(&r.seq), Timestamp: r.clk.now(),
		Service: hostview.ServiceChange{Host: "c2", Binary: "nova-compute", Disabled: true, DisabledReason: DisabledReason}})
	r.m.Tick(ctx, false)
	if r.bmc(t, "c2") != "Chassis Power is on" {
		t.Errorf("c2 not woken for headroom: %q", r.bmc(t, "c2"))
	}
	if got := testutil.ToFloat64(r.m.cfg.Metrics.wakeups.WithLabelValues("no-room")); got != 1 {
		t.Errorf("no-room wake-ups %v", got)
	}
}

// A host woken for headroom is capacity on its way while it boots (its
// nova-compute service stays disabled until it reports): the ticks during
// its boot wake no other host. c1 and c2 off, c3 takes an instance, the
// headroom (one empty host) is short: c1 wakes, and the next ticks leave
// c2 off until c1 has reported, and after.
func TestPolicyCountsABootingHostAsHeadroom(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{Hosts: 1}, "c1", "c2", "c3")
	ctx := context.Background()
	r.m.FreedHosts(ctx, []string{"c1", "c2"})
	disabled := func(hosts ...string) {
		for _, h := range hosts {
			r.view.Apply(seqOf(&r.seq), &hostview.Event{Kind: hostview.KindService, Type: "service.update", MessageID: msg(&r.seq), Timestamp: r.clk.now(),
				Service: hostview.ServiceChange{Host: h, Binary: "nova-compute", Disabled: true, DisabledReason: DisabledReason}})
		}
	}
	r.clk.add(time.Second)
	r.resync(inst("i1", "c3", ""))
	disabled("c1", "c2")
	r.m.Tick(ctx, false)
	if r.bmc(t, "c1") != "Chassis Power is on" {
		t.Fatalf("c1 not woken for headroom: %q", r.bmc(t, "c1"))
	}
	for range 3 { // c1 boots: 30 s of ticks, and it has not reported
		r.clk.add(10 * time.Second)
		r.m.Tick(ctx, false)
	}
	if got := r.bmc(t, "c2"); got != "Chassis Power is off" {
		t.Errorf("c2 woken while c1 boots: %q", got)
	}
	if got := testutil.ToFloat64(r.m.cfg.Metrics.wakeups.WithLabelValues("policy")); got != 1 {
		t.Errorf("policy wake-ups %v, want 1", got)
	}
}

func TestPolicyAdviseOnlyRecords(t *testing.T) {
	r := newRig(t, PolicyAdvise, Headroom{}, "c1")
	r.m.FreedHosts(context.Background(), []string{"c1"})
	if r.bmc(t, "c1") != "Chassis Power is on" || r.nova.Log() != "" {
		t.Fatalf("advise acted: BMC %q, Nova %q", r.bmc(t, "c1"), r.nova.Log())
	}
	evs, _ := r.m.History("c1", 0)
	if len(evs) != 1 || evs[0].Action != ActAdviseOff {
		t.Errorf("history %+v", evs)
	}
}

func TestPolicyAdviseWakeIsRecordedOnce(t *testing.T) {
	// c1 off (by an operator's call), c2 full: the headroom (one empty
	// host) is short at every tick, and advise says so once.
	r := newRig(t, PolicyAct, Headroom{Hosts: 1}, "c1", "c2")
	ctx := context.Background()
	noErr(t, r.m.Off(ctx, "c1", "cli"))
	r.resync(inst("i1", "c2", ""))
	r.m.cfg.Policy = PolicyAdvise
	for range 3 {
		r.m.Tick(ctx, false)
	}
	evs, _ := r.m.History("c1", 0)
	if len(evs) != 2 || evs[0].Action != ActAdviseOn || evs[1].Action != ActOff {
		t.Errorf("history %+v, want off then one advise-on", evs)
	}
	if r.bmc(t, "c1") != "Chassis Power is off" {
		t.Errorf("advise woke c1")
	}
}

func TestStaleViewStopsThePolicy(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1", "c2")
	ctx := context.Background()
	r.clk.add(6 * time.Minute) // past StaleAfter (5m): nothing heard
	r.m.Tick(ctx, false)
	if !r.m.Paused() || testutil.ToFloat64(r.m.cfg.Metrics.paused) != 1 {
		t.Fatal("not paused on a stale view")
	}
	r.m.FreedHosts(ctx, []string{"c1"})
	if err := r.m.Off(ctx, "c2", "cli"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "stale") {
		t.Errorf("Off on a stale host = %v", err)
	}
	if r.nova.Log() != "" || r.bmc(t, "c1") != "Chassis Power is on" {
		t.Errorf("acted on a stale view: %s", r.nova.Log())
	}
	r.resync()
	r.m.Tick(ctx, false)
	if r.m.Paused() {
		t.Error("still paused after a resync")
	}
}

func TestHistoryIsBoundedAndSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "power.db")
	h, err := OpenHistory(path, 3)
	noErr(t, err)
	for i := range 5 {
		noErr(t, h.Append(context.Background(), &Event{Host: fmt.Sprint("c", i), Action: ActOff, By: "cli"}))
	}
	evs, err := h.List("", 0)
	noErr(t, err)
	// 5 appended, limit 3: seqs 5, 4, 3 kept, newest first.
	if len(evs) != 3 || evs[0].Seq != 5 || evs[2].Seq != 3 {
		t.Fatalf("events %+v", evs)
	}
	noErr(t, h.Close())
	h, err = OpenHistory(path, 3)
	noErr(t, err)
	defer h.Close()
	m, err := NewManager(Config{View: hostview.New(hostview.Options{}), Hosts: inv(), History: h})
	noErr(t, err)
	// c2, c3, c4 were powered off by ECRAE before the restart.
	if !m.IsOff("c4") || !m.IsOff("c2") || m.IsOff("c1") {
		t.Errorf("off after restart: %v", m.off)
	}
}

// fenceAfter passes its first n checks, then refuses: a leader that loses
// its lease between two checks of one action.
type fenceAfter struct {
	mu sync.Mutex
	n  int
}

var errLost = errors.New("lease held by r2")

func (f *fenceAfter) Check(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n <= 0 {
		return errLost
	}
	f.n--
	return nil
}

// TestFenceStopsPowerActions: with a fence that refuses, neither Off nor
// On reaches the BMC (fakebmc still says on, then still off); a lease lost
// while Nova disabled the service leaves the host on and its service
// enabled again.
func TestFenceStopsPowerActions(t *testing.T) {
	r := newRig(t, PolicyAct, Headroom{}, "c1")
	ctx := context.Background()
	r.m.cfg.Fence = &fenceAfter{n: 0}
	err := r.m.Off(ctx, "c1", "cli")
	if !errors.Is(err, ErrFenced) || !errors.Is(err, errLost) || errors.Is(err, ErrRefused) {
		t.Fatalf("Off without the lease = %v, want ErrFenced wrapping the lease's reason", err)
	}
	if got := r.nova.Log(); got != "" {
		t.Errorf("Nova was called: %s", got)
	}
	// Lost between the first check (before Nova) and the second (before
	// the BMC): the service is enabled again.
	r.m.cfg.Fence = &fenceAfter{n: 1}
	if err := r.m.Off(ctx, "c1", "cli"); !errors.Is(err, ErrFenced) {
		t.Fatalf("Off losing the lease midway = %v, want ErrFenced", err)
	}
	if got, want := r.nova.Log(), "disable c1 ecrae: powered off; enable c1"; got != want {
		t.Errorf("Nova: %q, want %q", got, want)
	}
	if got := r.bmc(t, "c1"); got != "Chassis Power is on" {
		t.Errorf("BMC after fenced Offs: %q", got)
	}
	ipmitool(t, r.ports["c1"], "power", "off")
	r.m.cfg.Fence = &fenceAfter{n: 0}
	if err := r.m.On(ctx, "c1", "cli"); !errors.Is(err, ErrFenced) {
		t.Fatalf("On without the lease = %v, want ErrFenced", err)
	}
	if got := r.bmc(t, "c1"); got != "Chassis Power is off" {
		t.Errorf("BMC after a fenced On: %q", got)
	}
	evs, _ := r.m.History("c1", 0)
	if len(evs) != 3 || evs[0].Action != ActRefused || evs[1].Action != ActRefused || evs[2].Action != ActRefused {
		t.Errorf("history %+v, want three refusals", evs)
	}
}
