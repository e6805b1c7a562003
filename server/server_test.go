package server

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// testKB has two host models with simple curves so the arithmetic in the
// tests can be done by hand:
//   - old: x86_64, 10 threads, 100 W idle rising 10 W per 10 % to 200 W.
//   - arm: aarch64, 10 threads, 20 W idle rising 5 W per 10 % to 70 W.
const testKB = `
schema_version: 1
architectures:
  - {name: old, isa: x86_64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,
     power_watts: [100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 200], source: test}
  - {name: arm, isa: aarch64, cores: 10, threads: 10, memory_mb: 65536, disk_gb: 500,
     power_watts: [20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70], source: test}
tags:
  - name: default
    mode: hint
    candidates: [{isa: x86_64, performance_factor: 1}, {isa: aarch64, performance_factor: 1}]
  - name: web
    mode: hint
    candidates: [{architecture: arm, performance_factor: 0.5}, {architecture: old, performance_factor: 1}]
  - name: pinned-old
    mode: exact
    candidates: [{architecture: old, performance_factor: 1}]
  - name: capped
    mode: hint
    candidates: [{isa: x86_64, performance_factor: 1}]
    utilization_ceiling: 0.8
flavors:
  - {name: small, vcpus: 1, memory_mb: 1024, root_gb: 10, tags: [web]}
hosts:
  - {name: h-old, architecture: old}
  - {name: h-arm, architecture: arm}
`

type harness struct {
	srv   *Server
	store *kbstore.Store
	place ecraev1.PlacementServiceClient
	kb    ecraev1.KnowledgeBaseServiceClient
}

// newHarness serves a Server over bufconn on a real bbolt file seeded with
// testKB, and checks the file's integrity when the test ends.
func newHarness(t testing.TB, kbYAML string) *harness {
	t.Helper()
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML("testKB", []byte(kbYAML))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &harness{srv: srv, store: store, place: ecraev1.NewPlacementServiceClient(conn), kb: ecraev1.NewKnowledgeBaseServiceClient(conn)}
}

// novaHost is a host as Nova's HostState would describe it.
func novaHost(name, arch string, vcpusUsed int32, instances int32) *ecraev1.HostState {
	return &ecraev1.HostState{
		Host: name, Nodename: name, VcpusTotal: 10, VcpusUsed: vcpusUsed,
		TotalUsableRamMb: 65536, FreeRamMb: 65536 - int64(vcpusUsed)*1024, TotalUsableDiskGb: 500, FreeDiskMb: 500 * 1024,
		CpuAllocationRatio: 1, RamAllocationRatio: 1, DiskAllocationRatio: 1,
		CpuInfo: `{"arch": "` + arch + `", "model": "test"}`, NumInstances: instances,
	}
}

func small(tag string) *ecraev1.InstanceRequest {
	return &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "small", Vcpus: 1, MemoryMb: 1024, RootGb: 10,
		ExtraSpecs: map[string]string{"ecrae:tag": tag}}}
}

func TestWeighHostsPrefersEfficientArchitecture(t *testing.T) {
	h := newHarness(t, testKB)
	hosts := []*ecraev1.HostState{novaHost("h-old", "x86_64", 5, 5), novaHost("h-arm", "aarch64", 5, 5)}
	resp, err := h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	// Both hosts at 5 of 10 vCPUs (u = 0.5, estimated); one vCPU adds 0.1.
	// old: 160 − 150 = 10 W marginal, factor 1   → 10 W per unit of work.
	// arm: 50 − 45   =  5 W marginal, factor 0.5 → 10 W per unit of work: a tie on energy,
	// so consolidation (equal too) leaves them equal.
	old, arm := resp.GetScores()[0], resp.GetScores()[1]
	if got := old.GetMarginalWatts(); !near(got, 10) {
		t.Errorf("h-old marginal = %v W, want 10", got)
	}
	if got := arm.GetMarginalWatts(); !near(got, 5) {
		t.Errorf("h-arm marginal = %v W, want 5", got)
	}
	if resp.GetTag() != "web" || resp.GetTagSource() != "flavor extra spec ecrae:tag" {
		t.Errorf("tag = %q from %q", resp.GetTag(), resp.GetTagSource())
	}
	if old.GetArchitecture() != "old" || arm.GetArchitecture() != "arm" || old.GetDefaultModel() {
		t.Errorf("models = %s/%s default=%v", old.GetArchitecture(), arm.GetArchitecture(), old.GetDefaultModel())
	}
	if len(arm.GetBreakdown()) == 0 || !strings.Contains(arm.GetBreakdown()[0].GetExplanation(), "W") {
		t.Errorf("breakdown lacks an explanation: %v", arm.GetBreakdown())
	}

	// With the default tag (factor 1 everywhere) the arm host wins on energy:
	// 5 W against 10 W.
	resp, err = h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{Instance: small(""), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTagSource() != "default" {
		t.Errorf("tag source = %q, want default", resp.GetTagSource())
	}
	if a, o := resp.GetScores()[1].GetScore(), resp.GetScores()[0].GetScore(); a <= o {
		t.Errorf("default tag: arm score %v should beat old %v", a, o)
	}
}

func TestUnknownHostGetsDefaultModel(t *testing.T) {
	h := newHarness(t, testKB)
	resp, err := h.place.WeighHosts(context.Background(), &ecraev1.WeighHostsRequest{
		Instance: small(""), Hosts: []*ecraev1.HostState{novaHost("stranger", "aarch64", 0, 0), {Host: "no-cpu-info", VcpusTotal: 4, TotalUsableRamMb: 4096, FreeRamMb: 4096}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := resp.GetScores()[0]
	// The only aarch64 model has 2 W per thread idle: 10 threads → 20 W.
	if !s.GetDefaultModel() || s.GetArchitecture() != "default-aarch64" {
		t.Errorf("stranger: model %q default=%v", s.GetArchitecture(), s.GetDefaultModel())
	}
	if !strings.Contains(s.GetBreakdown()[0].GetExplanation(), "default") {
		t.Errorf("breakdown should say the model is a default: %q", s.GetBreakdown()[0].GetExplanation())
	}
	if got := resp.GetScores()[1].GetArchitecture(); got != "default-x86_64" {
		t.Errorf("host without cpu_info: model %q, want default-x86_64", got)
	}
}

func TestFilterHostsExactTagPinsArchitecture(t *testing.T) {
	h := newHarness(t, testKB)
	hosts := []*ecraev1.HostState{novaHost("h-old", "x86_64", 0, 0), novaHost("h-arm", "aarch64", 0, 0), novaHost("full", "x86_64", 10, 10)}
	inst := small("")
	inst.Flavor.ExtraSpecs = nil
	inst.SchedulerHints = map[string]*ecraev1.HintValues{"ecrae_tag": {Values: []string{"pinned-old"}}}
	resp, err := h.place.FilterHosts(context.Background(), &ecraev1.FilterHostsRequest{Instance: inst, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTagSource() != "scheduler hint ecrae_tag" {
		t.Errorf("tag source %q", resp.GetTagSource())
	}
	want := []bool{true, false, false}
	for i, v := range resp.GetVerdicts() {
		if v.GetPassed() != want[i] {
			t.Errorf("%s passed=%v want %v (%s: %s)", v.GetHost(), v.GetPassed(), want[i], v.GetFilter(), v.GetReason())
		}
		if !v.GetPassed() && v.GetReason() == "" {
			t.Errorf("%s rejected without a reason", v.GetHost())
		}
	}
	if f := resp.GetVerdicts()[2].GetFilter(); f != "capacity" {
		t.Errorf("full host rejected by %q, want capacity", f)
	}
}

// The compact answers Nova's shim asks for carry exactly what the full
// answers do, one value per host in request order, and nothing else.
func TestCompactAnswersMatchFullAnswers(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	hosts := []*ecraev1.HostState{novaHost("h-old", "x86_64", 5, 5), novaHost("h-arm", "aarch64", 2, 2), novaHost("full", "x86_64", 10, 10)}
	full, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	compact, err := h.place.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: small("web"), Hosts: hosts, PassedOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// h-old and h-arm have room, full has none: [true true false].
	if got, want := compact.GetPassed(), []bool{true, true, false}; !slices.Equal(got, want) || len(compact.GetVerdicts()) != 0 {
		t.Errorf("passed_only: passed=%v verdicts=%d, want %v and none", got, len(compact.GetVerdicts()), want)
	}
	for i, v := range full.GetVerdicts() {
		if v.GetPassed() != compact.GetPassed()[i] {
			t.Errorf("%s: full says %v, compact %v", v.GetHost(), v.GetPassed(), compact.GetPassed()[i])
		}
	}
	if compact.GetTag() != "web" || len(full.GetPassed()) != 0 {
		t.Errorf("compact tag %q, full answer has %d flags", compact.GetTag(), len(full.GetPassed()))
	}

	scored, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	values, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: hosts, ScoresOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(values.GetScores()) != 0 || len(values.GetScoreValues()) != len(hosts) || len(scored.GetScoreValues()) != 0 {
		t.Fatalf("scores_only: %d messages, %d values; full: %d values", len(values.GetScores()), len(values.GetScoreValues()), len(scored.GetScoreValues()))
	}
	for i, s := range scored.GetScores() {
		if s.GetScore() != values.GetScoreValues()[i] {
			t.Errorf("%s: full score %v, scores_only %v", s.GetHost(), s.GetScore(), values.GetScoreValues()[i])
		}
	}
}

func TestInvalidArgumentNamesTheField(t *testing.T) {
	h := newHarness(t, testKB)
	ok := novaHost("h-old", "x86_64", 0, 0)
	cases := []struct {
		name  string
		req   *ecraev1.WeighHostsRequest
		field string
	}{
		{"no instance", &ecraev1.WeighHostsRequest{Hosts: []*ecraev1.HostState{ok}}, "instance: required"},
		{"no flavor", &ecraev1.WeighHostsRequest{Instance: &ecraev1.InstanceRequest{}}, "instance.flavor: required"},
		{"zero vcpus", &ecraev1.WeighHostsRequest{Instance: &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{MemoryMb: 1}}}, "instance.flavor.vcpus"},
		{"unknown flavor name", &ecraev1.WeighHostsRequest{Instance: &ecraev1.InstanceRequest{Flavor: &ecraev1.Flavor{Name: "nope"}}}, "instance.flavor.name"},
		{"unknown tag", &ecraev1.WeighHostsRequest{Instance: small("nope")}, "instance.tag: unknown tag \"nope\""},
		{"host without name", &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{ok, {}}}, "hosts[1].host: required"},
		{"negative vcpus", &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{{Host: "x", VcpusTotal: -1}}}, "hosts[0].vcpus_total"},
		{"unknown scorer", &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{ok}, ScorerWeights: map[string]float64{"magic": 1}}, "scorer_weights"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.place.WeighHosts(context.Background(), c.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.field) {
				t.Errorf("err = %v, want InvalidArgument naming %q", err, c.field)
			}
		})
	}
}

func TestWhatIfConsumesCapacityAndCommitsNothing(t *testing.T) {
	h := newHarness(t, testKB)
	// Two 6-vCPU instances on KB hosts of 10 threads each: they cannot share
	// a host, so the second goes to the other one.
	big := &ecraev1.InstanceRequest{Name: "db", Flavor: &ecraev1.Flavor{Vcpus: 6, MemoryMb: 2048}, NumInstances: 2}
	req := &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{big}}
	resp, err := h.place.WhatIf(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.GetPlacements()
	if len(ps) != 2 || ps[0].GetHost() == "" || ps[1].GetHost() == "" || ps[0].GetHost() == ps[1].GetHost() {
		t.Fatalf("placements = %v", ps)
	}
	// Empty hosts pay their idle power: arm 20 W + 6 vCPUs → 50 W; old 100 → 160 W.
	if ps[0].GetHost() != "h-arm" || !near(ps[0].GetMarginalWatts(), 50) || !near(ps[1].GetMarginalWatts(), 160) {
		t.Errorf("got %s %.1f W then %s %.1f W; want h-arm 50 W then h-old 160 W", ps[0].GetHost(), ps[0].GetMarginalWatts(), ps[1].GetHost(), ps[1].GetMarginalWatts())
	}
	if !near(resp.GetTotalMarginalWatts(), 210) {
		t.Errorf("total = %v, want 210", resp.GetTotalMarginalWatts())
	}
	// Nothing was committed: the same question gets the same answer.
	again, err := h.place.WhatIf(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.GetPlacements()[0].GetHost() != ps[0].GetHost() {
		t.Errorf("what-if changed state: %s then %s", ps[0].GetHost(), again.GetPlacements()[0].GetHost())
	}
	// A third one does not fit anywhere.
	big.NumInstances = 3
	resp, err = h.place.WhatIf(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUnplaced() != 1 || resp.GetPlacements()[2].GetError() == "" || len(resp.GetPlacements()[2].GetRejected()) != 2 {
		t.Errorf("third instance: %v", resp.GetPlacements()[2])
	}
}

func TestKnowledgeBaseCRUDOverGRPC(t *testing.T) {
	h := newHarness(t, testKB)
	ctx := context.Background()
	_, err := h.kb.CreateHost(ctx, &ecraev1.CreateHostRequest{Host: &ecraev1.Host{Name: "h-new", Architecture: "arm"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.kb.CreateHost(ctx, &ecraev1.CreateHostRequest{Host: &ecraev1.Host{Name: "h-new", Architecture: "arm"}}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate create: %v", err)
	}
	if _, err := h.kb.CreateHost(ctx, &ecraev1.CreateHostRequest{Host: &ecraev1.Host{Name: "h-bad", Architecture: "nope"}}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "architecture") {
		t.Errorf("host with unknown architecture: %v", err)
	}
	if _, err := h.kb.GetTag(ctx, &ecraev1.GetTagRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("get missing tag: %v", err)
	}
	if _, err := h.kb.DeleteArchitecture(ctx, &ecraev1.DeleteArchitectureRequest{Name: "arm"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("delete architecture in use: %v", err)
	}

	// A write is visible to scoring at once: remap h-old to the arm model.
	if _, err := h.kb.UpdateHost(ctx, &ecraev1.UpdateHostRequest{Host: &ecraev1.Host{Name: "h-old", Architecture: "arm"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := h.place.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: small("web"), Hosts: []*ecraev1.HostState{novaHost("h-old", "aarch64", 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetScores()[0].GetArchitecture(); got != "arm" {
		t.Errorf("after update, h-old is %q, want arm", got)
	}

	// Export → import (replace) round-trips; a dry run changes nothing.
	exp, err := h.kb.ExportKnowledgeBase(ctx, &ecraev1.ExportKnowledgeBaseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rev := h.store.Revision()
	if _, err := h.kb.ImportKnowledgeBase(ctx, &ecraev1.ImportKnowledgeBaseRequest{Yaml: exp.GetYaml(), Replace: true, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if h.store.Revision() != rev {
		t.Error("dry run wrote to the KB")
	}
	imp, err := h.kb.ImportKnowledgeBase(ctx, &ecraev1.ImportKnowledgeBaseRequest{Yaml: exp.GetYaml(), Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	if imp.GetHosts() != 3 || imp.GetArchitectures() != 2 {
		t.Errorf("import counts %v", imp)
	}
	exp2, err := h.kb.ExportKnowledgeBase(ctx, &ecraev1.ExportKnowledgeBaseRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if exp2.GetYaml() != exp.GetYaml() {
		t.Errorf("export after import differs:\n%s\n---\n%s", exp.GetYaml(), exp2.GetYaml())
	}
	// A bad import is refused whole and names the line.
	_, err = h.kb.ImportKnowledgeBase(ctx, &ecraev1.ImportKnowledgeBaseRequest{Yaml: "hosts:\n  - {name: x, architecture: missing}\n"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), ":2") {
		t.Errorf("bad import: %v", err)
	}
	if got, _ := h.kb.ListHosts(ctx, &ecraev1.ListHostsRequest{}); len(got.GetHosts()) != 3 {
		t.Errorf("bad import changed the hosts: %v", got.GetHosts())
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-6 && d > -1e-6 }

func TestDiskCountedFromAllocationsWhenGiven(t *testing.T) {
	h := newHarness(t, testKB)
	// disk_available_least says 0 GB free (thin provisioning), but only
	// 100 of 500 GB are allocated: Placement would accept a 10 GB root disk.
	thin := novaHost("h-old", "x86_64", 0, 0)
	thin.FreeDiskMb = 0
	resp, err := h.place.FilterHosts(context.Background(), &ecraev1.FilterHostsRequest{Instance: small(""), Hosts: []*ecraev1.HostState{thin}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVerdicts()[0].GetPassed() {
		t.Fatal("without disk_mb_used the host's 0 MB free must reject a 10 GB disk")
	}
	used := int64(100 * 1024)
	thin.DiskMbUsed = &used
	resp, err = h.place.FilterHosts(context.Background(), &ecraev1.FilterHostsRequest{Instance: small(""), Hosts: []*ecraev1.HostState{thin}})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVerdicts()[0]; !v.GetPassed() {
		t.Errorf("500 GB − 100 GB allocated should take 10 GB: %s: %s", v.GetFilter(), v.GetReason())
	}
}
