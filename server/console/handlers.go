package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func (c *Console) routes(static http.Handler) {
	m := c.mux
	m.Handle("GET /static/", http.StripPrefix("/static/", static))
	m.HandleFunc("GET /{$}", c.overview)
	m.HandleFunc("GET /hosts", c.hosts)
	m.HandleFunc("GET /hosts/{name}", c.host)
	m.HandleFunc("GET /plans", c.plans)
	m.HandleFunc("GET /plans/{id}", c.plan)
	m.HandleFunc("GET /plans/{id}/progress", c.progress)
	m.HandleFunc("GET /confirm", c.confirm)
	m.HandleFunc("POST /plans", c.newPlan)
	m.HandleFunc("POST /plans/{id}/{action}", c.planAction)
	m.HandleFunc("GET /power", c.power)
	m.HandleFunc("POST /power/{host}/{action}", c.powerAction)
	m.HandleFunc("GET /kb", c.kb)
	m.HandleFunc("GET /whatif", c.whatif)
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	CSRF  string
	Data  any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	p := page{Title: title, Nav: name, CSRF: c.csrfToken(w, r), Data: data}
	if err := t.Execute(&buf, p); err != nil {
		c.cfg.Log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page; a gRPC status gives its HTTP status.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadRequest
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		code, msg = httpStatus(err), st.Message()
	}
	c.render(w, r, code, "error", "Error", struct {
		Code    int
		Message string
	}{code, msg})
}

func (c *Console) liveHosts(r *http.Request, instances bool) (*ecraev1.ListLiveHostsResponse, error) {
	return call(c, r, mListHosts, &ecraev1.ListLiveHostsRequest{IncludeInstances: instances}, c.cfg.Service.ListLiveHosts)
}

type overviewData struct {
	Chart   any
	Latest  []archRow
	Samples int
	Hosts   int
	Plans   []*ecraev1.Plan
}

type archRow struct {
	Arch string
	Watts
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	// Reading the view first: a caller without the role sees a refusal,
	// not another's data from the ring.
	lh, err := c.liveHosts(r, false)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	samples := c.cfg.Fleet.Samples()
	d := overviewData{Chart: PowerChart(samples), Samples: len(samples), Hosts: len(lh.GetHosts())}
	cur := Summarise(lh.GetAsOf().AsTime(), lh.GetHosts())
	for _, arch := range Architectures([]Sample{cur}) {
		d.Latest = append(d.Latest, archRow{arch, cur.ByArch[arch]})
	}
	if c.cfg.Plans != nil {
		if ps, err := call(c, r, mListPlans, &ecraev1.ListPlansRequest{Limit: 5}, c.cfg.Plans.ListPlans); err == nil {
			d.Plans = ps.GetPlans()
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Fleet", d)
}

func (c *Console) hosts(w http.ResponseWriter, r *http.Request) {
	lh, err := c.liveHosts(r, false)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "hosts", "Hosts", lh)
}

func (c *Console) host(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	lh, err := c.liveHosts(r, true)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	for _, h := range lh.GetHosts() {
		if h.GetHost() == name {
			c.render(w, r, http.StatusOK, "host", "Host "+name, struct {
				Host       *ecraev1.LiveHost
				StaleAfter string
			}{h, lh.GetStaleAfter().AsDuration().String()})
			return
		}
	}
	c.fail(w, r, status.Errorf(codes.NotFound, "host %s: not in the live view", quote.Value(name)))
}

func (c *Console) noPlans(w http.ResponseWriter, r *http.Request) bool {
	if c.cfg.Plans == nil {
		c.fail(w, r, status.Error(codes.FailedPrecondition, "rebalancing is not configured on this service"))
		return true
	}
	return false
}

func (c *Console) plans(w http.ResponseWriter, r *http.Request) {
	if c.noPlans(w, r) {
		return
	}
	ps, err := call(c, r, mListPlans, &ecraev1.ListPlansRequest{Limit: 50}, c.cfg.Plans.ListPlans)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "plans", "Plans", ps.GetPlans())
}

// planView adds to a plan what its page shows.
type planView struct {
	Plan   *ecraev1.Plan
	Status string
	// SavingW: predicted, power before − after − the migrations' own.
	SavingW float64
	Done    int
	// RealisedW: the fleet's power before the start − after the end, when
	// the samples cover both (Fleet.Realised).
	RealisedW   float64
	HasRealised bool
	Executable  bool
	Cancelable  bool
	Abortable   bool
}

func (c *Console) viewPlan(p *ecraev1.Plan) planView {
	v := planView{Plan: p, Status: planStatusWord(p.GetStatus()),
		SavingW: p.GetPowerBeforeWatts() - p.GetPowerAfterWatts() - p.GetMigrationWatts()}
	for _, s := range p.GetSteps() {
		if s.GetStatus() == ecraev1.StepStatus_STEP_STATUS_DONE {
			v.Done++
		}
	}
	if p.GetStartedAt() != nil && p.GetFinishedAt() != nil {
		v.RealisedW, v.HasRealised = c.cfg.Fleet.Realised(p.GetStartedAt().AsTime(), p.GetFinishedAt().AsTime())
	}
	v.Executable = p.GetStatus() == ecraev1.PlanStatus_PLAN_STATUS_PLANNED && len(p.GetSteps()) > 0
	v.Cancelable = p.GetStatus() == ecraev1.PlanStatus_PLAN_STATUS_PLANNED
	v.Abortable = p.GetStatus() == ecraev1.PlanStatus_PLAN_STATUS_EXECUTING && !p.GetAbortRequested()
	return v
}

func (c *Console) getPlan(r *http.Request, id string) (*ecraev1.Plan, error) {
	resp, err := call(c, r, mGetPlan, &ecraev1.GetPlanRequest{PlanId: id}, c.cfg.Plans.GetPlan)
	if err != nil {
		return nil, err
	}
	return resp.GetPlan(), nil
}

func (c *Console) plan(w http.ResponseWriter, r *http.Request) {
	if c.noPlans(w, r) {
		return
	}
	p, err := c.getPlan(r, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "plan", "Plan "+p.GetId(), c.viewPlan(p))
}

// progress is the plan page's live view: polled by console.js while the
// plan executes.
type progress struct {
	ID      string     `json:"id"`
	Status  string     `json:"status"`
	Message string     `json:"message"`
	Done    int        `json:"done"`
	Total   int        `json:"total"`
	Steps   []stepLine `json:"steps"`
}

type stepLine struct {
	Step   int    `json:"step"` // 1-based, as the page numbers them
	Status string `json:"status"`
	Error  string `json:"error"`
}

func (c *Console) progress(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Plans == nil {
		http.Error(w, "rebalancing is not configured", http.StatusConflict)
		return
	}
	p, err := c.getPlan(r, r.PathValue("id"))
	if err != nil {
		http.Error(w, status.Convert(err).Message(), httpStatus(err))
		return
	}
	v := c.viewPlan(p)
	out := progress{ID: p.GetId(), Status: v.Status, Message: p.GetMessage(), Done: v.Done, Total: len(p.GetSteps()), Steps: []stepLine{}}
	for _, s := range p.GetSteps() {
		out.Steps = append(out.Steps, stepLine{Step: int(s.GetIndex()) + 1, Status: stepStatusWord(s.GetStatus()), Error: s.GetError()})
	}
	writeJSON(w, out)
}

// The confirm step: every state-changing action is a GET to this page
// first, which says what will happen and posts the action with the token.
type confirmData struct {
	Action, Question, Detail, PostTo, Back string
	Plan                                   *planView
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request) {
	action, id := r.URL.Query().Get("action"), r.URL.Query().Get("plan")
	if action == "power-on" || action == "power-off" {
		c.confirmPower(w, r, action, r.URL.Query().Get("host"))
		return
	}
	if c.noPlans(w, r) {
		return
	}
	if action == "plan" {
		c.render(w, r, http.StatusOK, "confirm", "Confirm", confirmData{Action: "plan", PostTo: "/plans", Back: "/plans",
			Question: "Plan a rebalance of the live view now?",
			Detail:   "The plan is computed and stored; nothing moves until it is approved."})
		return
	}
	p, err := c.getPlan(r, id)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v := c.viewPlan(p)
	d := confirmData{Action: action, PostTo: "/plans/" + pathID(p.GetId()) + "/" + action, Back: "/plans/" + pathID(p.GetId()), Plan: &v}
	switch action {
	case "execute":
		d.Question = fmt.Sprintf("Approve and execute plan %s?", p.GetId())
		d.Detail = fmt.Sprintf("%d live migrations in %d waves through Nova; predicted saving %.1f W.", len(p.GetSteps()), p.GetWaves(), v.SavingW)
	case "cancel":
		d.Question = fmt.Sprintf("Cancel plan %s?", p.GetId())
		d.Detail = "A cancelled plan can no longer be executed."
	case "abort":
		d.Question = fmt.Sprintf("Abort plan %s?", p.GetId())
		d.Detail = "The migrations in flight finish; no more start."
	default:
		c.fail(w, r, status.Errorf(codes.InvalidArgument, "action: %s is not execute, cancel or abort", quote.Value(action)))
		return
	}
	c.render(w, r, http.StatusOK, "confirm", "Confirm", d)
}

func (c *Console) newPlan(w http.ResponseWriter, r *http.Request) {
	if c.noPlans(w, r) {
		return
	}
	if err := c.checkPost(r); err != nil {
		c.fail(w, r, status.Error(codes.PermissionDenied, err.Error()))
		return
	}
	resp, err := call(c, r, mPlan, &ecraev1.PlanRebalanceRequest{}, c.cfg.Plans.PlanRebalance)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	p := resp.GetPlan()
	if p.GetId() == "" { // nothing to move: not stored
		c.render(w, r, http.StatusOK, "plan", "Plan", c.viewPlan(p))
		return
	}
	http.Redirect(w, r, "/plans/"+pathID(p.GetId()), http.StatusSeeOther)
}

func (c *Console) planAction(w http.ResponseWriter, r *http.Request) {
	if c.noPlans(w, r) {
		return
	}
	if err := c.checkPost(r); err != nil {
		c.fail(w, r, status.Error(codes.PermissionDenied, err.Error()))
		return
	}
	id := r.PathValue("id")
	var err error
	switch a := r.PathValue("action"); a {
	case "execute":
		_, err = call(c, r, mExecutePlan, &ecraev1.ExecutePlanRequest{PlanId: id, Execute: true}, c.cfg.Plans.ExecutePlan)
	case "cancel":
		_, err = call(c, r, mCancelPlan, &ecraev1.CancelPlanRequest{PlanId: id}, c.cfg.Plans.CancelPlan)
	case "abort":
		_, err = call(c, r, mAbortPlan, &ecraev1.AbortPlanRequest{PlanId: id}, c.cfg.Plans.AbortPlan)
	default:
		err = status.Errorf(codes.InvalidArgument, "action: %s is not execute, cancel or abort", quote.Value(a))
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/plans/"+pathID(id), http.StatusSeeOther)
}

type powerData struct {
	Hosts   []powerRow
	Wired   bool
	History []PowerAction
	Err     string
	// Done: the action just done ("on", "off") on DoneHost; ActionErr:
	// why the one just asked for was refused or failed.
	Done, DoneHost, ActionErr string
}

func (c *Console) power(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := powerData{}
	if done := q.Get("done"); done == "on" || done == "off" {
		d.Done, d.DoneHost = done, q.Get("host")
	}
	c.powerPage(w, r, http.StatusOK, d)
}

// powerPage shows the hosts with the actions the power manager would
// allow now, and its history (with the newest action first).
func (c *Console) powerPage(w http.ResponseWriter, r *http.Request, code int, d powerData) {
	lh, err := c.liveHosts(r, false)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.Wired = c.cfg.Power != nil
	var checks []PowerCheck
	if d.Wired {
		names := make([]string, len(lh.GetHosts()))
		for i, h := range lh.GetHosts() {
			names[i] = h.GetHost()
		}
		// A read, authorized (once) as the PowerService's status RPC.
		checks, err = call(c, r, mPowerStatus, names, c.checkPower)
		if err != nil {
			d.Err, d.Wired = status.Convert(err).Message(), false
		}
	}
	for i, h := range lh.GetHosts() {
		row := powerRow{LiveHost: h, State: powerState(h)}
		if d.Wired {
			ck := checks[i]
			if ck.OffByECRAE {
				row.State = "off (by ECRAE)"
			}
			row.CanOn = ck.On == nil && (ck.OffByECRAE || row.State != "on")
			row.CanOff = ck.Off == nil
			if ck.Off != nil {
				row.OffWhy = status.Convert(ck.Off).Message()
			}
		}
		d.Hosts = append(d.Hosts, row)
	}
	if c.cfg.Power != nil {
		// Authorized as the PowerService's history RPC, like `ecrae power history`.
		h, err := call(c, r, mPowerHist, 100, c.cfg.Power.History)
		if err != nil {
			d.Err = status.Convert(err).Message()
		}
		d.History = h
	}
	c.render(w, r, code, "power", "Power", d)
}

func (c *Console) checkPower(ctx context.Context, hosts []string) ([]PowerCheck, error) {
	out := make([]PowerCheck, len(hosts))
	for i, h := range hosts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = c.cfg.Power.Check(ctx, h)
	}
	return out, nil
}

// confirmPower is the confirm step of a power action: an off the manager
// would refuse now is not offered, its refusal is shown instead.
func (c *Console) confirmPower(w http.ResponseWriter, r *http.Request, action, host string) {
	if c.cfg.Power == nil {
		c.fail(w, r, status.Error(codes.FailedPrecondition, "the power manager is not wired into this service"))
		return
	}
	if host == "" || len(host) > 255 {
		c.fail(w, r, status.Errorf(codes.InvalidArgument, "host: %s is not a host name", quote.Value(host)))
		return
	}
	cks, err := call(c, r, mPowerStatus, []string{host}, c.checkPower)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	ck := cks[0]
	d := confirmData{Action: action, PostTo: "/power/" + pathID(host) + "/" + strings.TrimPrefix(action, "power-"), Back: "/power"}
	refused := ck.On
	if action == "power-off" {
		refused = ck.Off
		d.Question = fmt.Sprintf("Power off host %s?", host)
		d.Detail = "Its nova-compute service is disabled first, Nova is asked whether the host is idle, then its BMC powers it off. Nothing runs on it; it takes no boots until powered on."
	} else {
		d.Question = fmt.Sprintf("Power on host %s?", host)
		d.Detail = "Its BMC powers it on; a host ECRAE powered off gets its nova-compute service enabled again once it reports."
	}
	if refused != nil {
		c.fail(w, r, refused)
		return
	}
	c.render(w, r, http.StatusOK, "confirm", "Confirm", d)
}

// powerAction runs a confirmed power action as the PowerService's RPC (the
// operator role, audited) and shows the power page with its result.
func (c *Console) powerAction(w http.ResponseWriter, r *http.Request) {
	if err := c.checkPost(r); err != nil {
		c.fail(w, r, status.Error(codes.PermissionDenied, err.Error()))
		return
	}
	if c.cfg.Power == nil {
		c.fail(w, r, status.Error(codes.FailedPrecondition, "the power manager is not wired into this service"))
		return
	}
	host, action := r.PathValue("host"), r.PathValue("action")
	var err error
	switch action {
	case "on":
		_, err = call(c, r, mPowerOn, &ecraev1.PowerOnRequest{Host: host}, func(ctx context.Context, req *ecraev1.PowerOnRequest) (*ecraev1.PowerOnResponse, error) {
			return &ecraev1.PowerOnResponse{}, c.cfg.Power.On(ctx, req.GetHost())
		})
	case "off":
		_, err = call(c, r, mPowerOff, &ecraev1.PowerOffRequest{Host: host}, func(ctx context.Context, req *ecraev1.PowerOffRequest) (*ecraev1.PowerOffResponse, error) {
			return &ecraev1.PowerOffResponse{}, c.cfg.Power.Off(ctx, req.GetHost())
		})
	default:
		c.fail(w, r, status.Errorf(codes.InvalidArgument, "action: %s is not on or off", quote.Value(action)))
		return
	}
	switch code := status.Code(err); {
	case err == nil:
		http.Redirect(w, r, "/power?done="+action+"&host="+neturl.QueryEscape(host)+"#power-result", http.StatusSeeOther)
	case code == codes.Unauthenticated || code == codes.PermissionDenied:
		c.fail(w, r, err)
	default:
		// The manager's refusal or a BMC's failure, next to the history
		// that records it.
		c.powerPage(w, r, httpStatus(err), powerData{ActionErr: fmt.Sprintf("power %s %s: %s", action, host, status.Convert(err).Message())})
	}
}

type powerRow struct {
	*ecraev1.LiveHost
	State string
	// CanOn, CanOff: the buttons offered; OffWhy: why off is not.
	CanOn, CanOff bool
	OffWhy        string
}

// powerState is what the live view says of a host's power until the power
// manager reports it: a host that runs instances or reports fresh readings
// is on; one that does neither may be off, or only silent.
func powerState(h *ecraev1.LiveHost) string {
	switch {
	case h.GetInstances() > 0 || (h.GetLastSeen() != nil && !h.GetStale()):
		return "on"
	case h.GetServiceState() == "down":
		return "down or off"
	}
	return "unknown (empty and silent)"
}

func (c *Console) kb(w http.ResponseWriter, r *http.Request) {
	revs, err := call(c, r, mRevisions, &ecraev1.ListKnowledgeBaseRevisionsRequest{}, c.cfg.Service.ListKnowledgeBaseRevisions)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	exp, err := call(c, r, mExportKB, &ecraev1.ExportKnowledgeBaseRequest{}, c.cfg.Service.ExportKnowledgeBase)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "kb", "Knowledge base", struct {
		Revisions *ecraev1.ListKnowledgeBaseRevisionsResponse
		YAML      string
	}{revs, exp.GetYaml()})
}

type whatifForm struct {
	Tag, VCPUs, RAMMB, DiskGB, Count, Arch string
}

func (c *Console) whatif(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := whatifForm{Tag: q.Get("tag"), VCPUs: q.Get("vcpus"), RAMMB: q.Get("ram_mb"), DiskGB: q.Get("disk_gb"), Count: q.Get("count"), Arch: q.Get("arch")}
	d := struct {
		Form   whatifForm
		Result *ecraev1.WhatIfResponse
		Err    string
	}{Form: f}
	if f.VCPUs == "" && f.RAMMB == "" {
		c.render(w, r, http.StatusOK, "whatif", "What if", d)
		return
	}
	req, err := f.request()
	if err == nil {
		d.Result, err = call(c, r, mWhatIf, req, c.cfg.Service.WhatIf)
	}
	code := http.StatusOK
	if err != nil {
		d.Err, code = status.Convert(err).Message(), httpStatus(err)
	}
	c.render(w, r, code, "whatif", "What if", d)
}

// request reads the form; a bad number names its field.
func (f whatifForm) request() (*ecraev1.WhatIfRequest, error) {
	num := func(field, v string, def, max int64) (int64, error) {
		if strings.TrimSpace(v) == "" {
			return def, nil
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 || n > max {
			return 0, status.Errorf(codes.InvalidArgument, "%s: %s is not a whole number from 0 to %d", field, quote.Value(v), max)
		}
		return n, nil
	}
	vcpus, err := num("vcpus", f.VCPUs, 1, 4096)
	if err != nil {
		return nil, err
	}
	ram, err := num("ram_mb", f.RAMMB, 1024, 1<<30)
	if err != nil {
		return nil, err
	}
	disk, err := num("disk_gb", f.DiskGB, 0, 1<<30)
	if err != nil {
		return nil, err
	}
	count, err := num("count", f.Count, 1, 1000)
	if err != nil {
		return nil, err
	}
	in := &ecraev1.InstanceRequest{Name: "what-if", Tag: strings.TrimSpace(f.Tag), NumInstances: int32(count),
		Flavor: &ecraev1.Flavor{Name: "what-if", Vcpus: int32(vcpus), MemoryMb: ram, RootGb: disk}}
	if a := strings.TrimSpace(f.Arch); a != "" {
		in.ImageProperties = map[string]string{"hw_architecture": a}
	}
	return &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{in}}, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// pathID escapes a plan id for a URL path.
func pathID(s string) string { return neturl.PathEscape(s) }
