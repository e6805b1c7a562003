package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
	"github.com/ecrae/ecrae/server/console"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// client is a browser-like client: it keeps the console's cookie and does
// not follow redirects (the tests look at them).
func client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestPagesShowTheService(t *testing.T) {
	h := newHarness(t, nil)
	c := client(t)
	for _, tc := range []struct {
		path string
		code int
		want []string
	}{
		// Three samples; h0 and h1 measured 131 + 137 = 268 W; the model
		// says 4 hosts at 40 % (4 of 10 vCPUs) = 4 × 140 W = 560 W.
		{"/", 200, []string{`data-samples="3"`, `data-series="old measured" data-points="3"`, `data-series="old model" data-points="3"`, "268.0 W", "560.0 W", "280.0 W"}},
		{"/hosts", 200, []string{`href="/hosts/h0"`, `href="/hosts/h3"`, "131.0 W measured", "140.0 W model"}},
		{"/hosts/h1", 200, []string{"vm1", "vm5", "4/10 vCPUs", "137.0 W measured"}},
		{"/hosts/nope", 404, []string{`host &#34;nope&#34;: not in the live view`}},
		{"/kb", 200, []string{`id="kb-revision"`, "power_watts"}},
		{"/whatif?vcpus=2&ram_mb=2048&count=2", 200, []string{`id="whatif-summary"`, "0 unplaced"}},
		{"/whatif?vcpus=two", 400, []string{`vcpus: &#34;two&#34; is not a whole number`}},
		{"/plans", 200, []string{"No plans stored.", `href="/confirm?action=plan"`}},
		// h0, h1 report and run instances, h2, h3 run instances: all on.
		{"/power", 200, []string{`<tr data-host="h3"><td>h3</td><td class="power-state">on</td>`, "not wired"}},
		{"/plans/nope", 404, []string{"not found"}},
		{"/confirm?action=explode&plan=nope", 404, nil},
	} {
		code, body := get(t, c, h.ts.URL+tc.path)
		if code != tc.code {
			t.Errorf("GET %s: %d, want %d\n%s", tc.path, code, tc.code, body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: no %q in\n%s", tc.path, w, body)
			}
		}
	}
}

var (
	tokenRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)
	actRE   = regexp.MustCompile(`action="([^"]+)"`)
)

// confirmForm opens a confirm page and returns where it posts and its token.
func confirmForm(t *testing.T, c *http.Client, u string) (string, string) {
	t.Helper()
	code, body := get(t, c, u)
	tok, act := tokenRE.FindStringSubmatch(body), actRE.FindStringSubmatch(body)
	if code != 200 || tok == nil || act == nil {
		t.Fatalf("GET %s: %d, no form in\n%s", u, code, body)
	}
	return act[1], tok[1]
}

func post(t *testing.T, c *http.Client, u, token string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func planStatus(t *testing.T, h *harness, id string) ecraev1.PlanStatus {
	t.Helper()
	p, err := h.rb.GetPlan(context.Background(), &ecraev1.GetPlanRequest{PlanId: id})
	if err != nil {
		t.Fatal(err)
	}
	return p.GetPlan().GetStatus()
}

// TestPlanApproveAndProgress: planning and approving each go through a
// confirm page and a same-origin post with the browser's token; anything
// else changes nothing. The progress endpoint follows the execution.
func TestPlanApproveAndProgress(t *testing.T) {
	h := newHarness(t, nil)
	c := client(t)
	act, tok := confirmForm(t, c, h.ts.URL+"/confirm?action=plan")
	resp := post(t, c, h.ts.URL+act, tok, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/plans/") {
		t.Fatalf("plan: %d to %q", resp.StatusCode, loc)
	}
	id := strings.TrimPrefix(loc, "/plans/")
	if _, body := get(t, c, h.ts.URL+loc); !strings.Contains(body, `id="approve"`) || !strings.Contains(body, `data-step="4"`) {
		t.Fatalf("plan page has no approve button or no 4 steps:\n%s", body)
	}
	act, tok = confirmForm(t, c, h.ts.URL+"/confirm?action=execute&plan="+id)
	if act != "/plans/"+id+"/execute" {
		t.Fatalf("confirm posts to %q", act)
	}
	other := client(t) // another browser: its own cookie, so h's token is not its own
	get(t, other, h.ts.URL+"/plans")
	for name, try := range map[string]func() *http.Response{
		"no cookie":       func() *http.Response { return post(t, &http.Client{}, h.ts.URL+act, tok, nil) },
		"wrong token":     func() *http.Response { return post(t, c, h.ts.URL+act, strings.Repeat("0", 64), nil) },
		"another's token": func() *http.Response { return post(t, other, h.ts.URL+act, tok, nil) },
		"cross-site": func() *http.Response {
			return post(t, c, h.ts.URL+act, tok, map[string]string{"Sec-Fetch-Site": "cross-site"})
		},
		"other origin": func() *http.Response {
			return post(t, c, h.ts.URL+act, tok, map[string]string{"Origin": "http://evil.example"})
		},
		"GET is not enough": func() *http.Response { r, _ := c.Get(h.ts.URL + act); return r },
	} {
		if r := try(); r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 403 or 405", name, r.StatusCode)
		}
		if s := planStatus(t, h, id); s != ecraev1.PlanStatus_PLAN_STATUS_PLANNED {
			t.Fatalf("%s: plan is %v", name, s)
		}
	}
	resp = post(t, c, h.ts.URL+act, tok, map[string]string{"Origin": h.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("execute: %d", resp.StatusCode)
	}
	var p struct {
		Status      string
		Done, Total int
		Steps       []struct{ Step int }
	}
	read := func() {
		code, body := get(t, c, h.ts.URL+"/plans/"+id+"/progress")
		if code != 200 {
			t.Fatalf("progress: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
	}
	read()
	if p.Status != "executing" || p.Done != 0 || p.Total != 4 || p.Steps[0].Step != 1 {
		t.Fatalf("before any move: %+v", p)
	}
	close(h.mig.release)
	for deadline := time.Now().Add(20 * time.Second); p.Status == "executing"; read() {
		if time.Now().After(deadline) {
			t.Fatalf("still executing: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p.Status != "succeeded" || p.Done != 4 {
		t.Fatalf("after: %+v", p)
	}
	// A sample after the end: the page and the metrics say what was
	// realised next to what was predicted.
	h.fleet.SampleOnce(context.Background(), h.srv, nil)
	if _, body := get(t, c, h.ts.URL+"/plans/"+id); !strings.Contains(body, `id="plan-realised"`) {
		t.Errorf("no realised saving on the plan page:\n%s", body)
	}
	if n := counterValue(t, h, "ecrae_rebalance_migrations_total", "done"); n != 4 {
		t.Errorf("migrations done: %v", n)
	}
	got, err := testutil.GatherAndCount(h.reg, "ecrae_rebalance_last_saving_watts")
	if err != nil || got != 2 {
		t.Errorf("last saving series: %d, %v", got, err)
	}
}

// counterValue reads one series of a counter vector in the harness's
// registry.
func counterValue(t *testing.T, h *harness, name, label string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if mf.GetName() == name && l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// TestRefusedWithoutRole: with authorization on, a browser without a
// client certificate or token reads nothing and changes nothing, even with
// a valid form token (server.HTTPGate decides; its roles are tested in
// server).
func TestRefusedWithoutRole(t *testing.T) {
	h := newHarness(t, func(*server.Server) console.Gate {
		return server.HTTPGate{Authz: server.NewAuthorizer(server.RoleNames{"ops": server.RoleOperator}, nil, nil, nil)}
	})
	resp, err := h.rb.PlanRebalance(context.Background(), &ecraev1.PlanRebalanceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetPlan().GetId()
	c := client(t)
	for _, p := range []string{"/", "/hosts", "/plans", "/plans/" + id, "/kb", "/confirm?action=execute&plan=" + id} {
		if code, body := get(t, c, h.ts.URL+p); code != http.StatusUnauthorized || !strings.Contains(body, "no client certificate with a role") {
			t.Errorf("GET %s: %d\n%s", p, code, body)
		}
	}
	// The form token is valid for this browser (the plan confirm page reads
	// nothing); the role is still missing.
	_, tok := confirmForm(t, c, h.ts.URL+"/confirm?action=plan")
	for _, act := range []string{"/plans/" + id + "/execute", "/plans/" + id + "/cancel", "/plans"} {
		if r := post(t, c, h.ts.URL+act, tok, nil); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s: %d", act, r.StatusCode)
		}
	}
	if s := planStatus(t, h, id); s != ecraev1.PlanStatus_PLAN_STATUS_PLANNED {
		t.Fatalf("plan is %v", s)
	}
	if ps, _ := h.rb.ListPlans(context.Background(), &ecraev1.ListPlansRequest{}); len(ps.GetPlans()) != 1 {
		t.Errorf("%d plans stored, want the one", len(ps.GetPlans()))
	}
}
