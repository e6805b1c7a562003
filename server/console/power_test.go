package console_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/audit"
	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/server"
	"github.com/ecrae/ecrae/server/console"
)

// keystone stands in for Keystone's token validation (Keystone does not
// run here): each token has the roles Keystone would list for it.
type keystone map[string][]string

func (k keystone) Validate(_ context.Context, tok string) (server.KeystoneToken, error) {
	roles, ok := k[tok]
	if !ok {
		return server.KeystoneToken{}, errors.New("token not found")
	}
	return server.KeystoneToken{User: tok, Project: "admin", Roles: roles, Expires: time.Now().Add(time.Hour)}, nil
}

// tokenTransport sends the token on every request, as a proxy in front of
// the console would.
type tokenTransport string

func (t tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Auth-Token", string(t))
	return http.DefaultTransport.RoundTrip(r)
}

func clientAs(t *testing.T, token string) *http.Client {
	c := client(t)
	c.Transport = tokenTransport(token)
	return c
}

func historyOf(t *testing.T, h *harness, host string) []string {
	t.Helper()
	evs, err := h.pm.History(host, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Action)+" by "+e.By)
	}
	return out
}

// TestPowerOffNeedsOperator: a viewer (the scheduler role) sees the power
// panel and its confirm page but its power off is refused, changes
// nothing and is audited as refused; an operator's goes through, is
// audited, and the page shows the result and the new history entry.
func TestPowerOffNeedsOperator(t *testing.T) {
	dir := t.TempDir()
	store, err := audit.Open(filepath.Join(dir, "audit.db"), 100)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h := newHarnessWith(t, options{power: true, gate: func(*server.Server) console.Gate {
		ks := keystone{"viewer": {"ecrae-scheduler"}, "ops": {"admin"}}
		return server.HTTPGate{Authz: server.NewAuthorizer(nil, ks, nil, nil), Audit: server.NewAuditor(store, nil)}
	}})
	viewer, ops := clientAs(t, "viewer"), clientAs(t, "ops")
	if code, body := get(t, viewer, h.ts.URL+"/power"); code != 200 || !strings.Contains(body, `href="/confirm?action=power-off&amp;host=h4"`) {
		t.Fatalf("viewer: GET /power: %d, no power off for h4:\n%s", code, body)
	}
	act, tok := confirmForm(t, viewer, h.ts.URL+"/confirm?action=power-off&host=h4")
	if act != "/power/h4/off" {
		t.Fatalf("confirm posts to %q", act)
	}
	if r := post(t, viewer, h.ts.URL+act, tok, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("viewer: POST %s: %d, want 403", act, r.StatusCode)
	}
	if got := h.bmc.power("h4"); got != "On" || h.nova.Log() != "" || len(historyOf(t, h, "")) != 0 {
		t.Fatalf("after the viewer's refused power off: BMC %s, Nova %q, history %q", got, h.nova.Log(), historyOf(t, h, ""))
	}

	act, tok = confirmForm(t, ops, h.ts.URL+"/confirm?action=power-off&host=h4")
	resp := post(t, ops, h.ts.URL+act, tok, map[string]string{"Origin": h.ts.URL})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/power?done=off&host=h4") {
		t.Fatalf("operator: POST %s: %d to %q", act, resp.StatusCode, loc)
	}
	if got := h.bmc.power("h4"); got != "Off" || h.nova.Log() != "disable h4 ecrae: powered off" {
		t.Errorf("after the operator's power off: BMC %s, Nova %q", got, h.nova.Log())
	}
	_, body := get(t, ops, h.ts.URL+resp.Header.Get("Location"))
	for _, want := range []string{
		`id="power-result" data-host="h4" data-action="off"`,
		// The newest entry first: this power off, by the console.
		`<table id="power-history"><tr><th>time</th><th>host</th><th>action</th><th>outcome</th><th>by</th></tr>
<tr data-host="h4" data-action="off">`,
		"nova-compute disabled, then powered off</td><td>console</td>",
		// Off by ECRAE: power on is offered again, power off no longer.
		`<td class="power-state">off (by ECRAE)</td>`,
		`href="/confirm?action=power-on&amp;host=h4"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("power page after the action: no %q in\n%s", want, body)
		}
	}
	recs, err := store.List(context.Background(), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Who+" "+r.Method+" "+r.Target+" "+r.Code)
	}
	want := []string{
		"keystone:viewer@admin /ecrae.v1.PowerService/PowerOff host=h4 PermissionDenied",
		"keystone:ops@admin /ecrae.v1.PowerService/PowerOff host=h4 OK",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") && strings.Join(got, "\n") != want[1]+"\n"+want[0] {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestPowerOffConfirmRequired: a power off is a same-origin post with the
// browser's token after its confirm page; a host the manager would not
// power off gets no button and no confirm page, but the manager's reason.
func TestPowerOffConfirmRequired(t *testing.T) {
	h := newHarnessWith(t, options{power: true})
	c := client(t)
	_, body := get(t, c, h.ts.URL+"/power")
	if strings.Contains(body, "action=power-off&amp;host=h0") || !strings.Contains(body, "refused: host h0 holds 2 instance(s)") {
		t.Errorf("h0 holds instances: want no power off, but the reason:\n%s", body)
	}
	if code, body := get(t, c, h.ts.URL+"/confirm?action=power-off&host=h0"); code != http.StatusConflict || !strings.Contains(body, "refused: host h0 holds 2 instance(s)") {
		t.Errorf("confirm power off h0: %d\n%s", code, body)
	}
	act, tok := confirmForm(t, c, h.ts.URL+"/confirm?action=power-off&host=h4")
	other := client(t)
	get(t, other, h.ts.URL+"/power")
	for name, try := range map[string]func() *http.Response{
		"no cookie":       func() *http.Response { return post(t, &http.Client{}, h.ts.URL+act, tok, nil) },
		"wrong token":     func() *http.Response { return post(t, c, h.ts.URL+act, strings.Repeat("0", 64), nil) },
		"another's token": func() *http.Response { return post(t, other, h.ts.URL+act, tok, nil) },
		"cross-site": func() *http.Response {
			return post(t, c, h.ts.URL+act, tok, map[string]string{"Sec-Fetch-Site": "cross-site"})
		},
		"GET is not enough": func() *http.Response { r, _ := c.Get(h.ts.URL + act); return r },
	} {
		if r := try(); r.StatusCode != http.StatusForbidden && r.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 403 or 405", name, r.StatusCode)
		}
	}
	if got := h.bmc.power("h4"); got != "On" || h.nova.Log() != "" {
		t.Fatalf("without a confirmed post: BMC %s, Nova %q", got, h.nova.Log())
	}
	if r := post(t, c, h.ts.URL+"/power/h4/explode", tok, nil); r.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown action: %d, want 400", r.StatusCode)
	}
	if r := post(t, c, h.ts.URL+act, tok, nil); r.StatusCode != http.StatusSeeOther || h.bmc.power("h4") != "Off" {
		t.Errorf("confirmed: %d, BMC %s", r.StatusCode, h.bmc.power("h4"))
	}
	// And back on, the same way.
	act, tok = confirmForm(t, c, h.ts.URL+"/confirm?action=power-on&host=h4")
	if r := post(t, c, h.ts.URL+act, tok, nil); act != "/power/h4/on" || r.StatusCode != http.StatusSeeOther || h.bmc.power("h4") != "On" {
		t.Errorf("power on via %s: %d, BMC %s", act, r.StatusCode, h.bmc.power("h4"))
	}
	if got := historyOf(t, h, "h4"); strings.Join(got, ", ") != "on by console, off by console" {
		t.Errorf("history %q", got)
	}
}

// TestPowerOffRefusalShown: a boot lands on the host between the confirm
// page and the post; the manager refuses, and the power page says why,
// with the refusal in its history.
func TestPowerOffRefusalShown(t *testing.T) {
	h := newHarnessWith(t, options{power: true})
	c := client(t)
	act, tok := confirmForm(t, c, h.ts.URL+"/confirm?action=power-off&host=h4")
	h.view.Apply(0, &hostview.Event{Kind: hostview.KindInstance, Type: "instance.create.end", MessageID: "boot-h4", Timestamp: time.Now(), Publisher: "h4",
		Instance: hostview.InstanceChange{Instance: hostview.Instance{UUID: "late", Host: "h4", Node: "h4", State: "active", PowerState: "running",
			Flavor: hostview.Flavor{Name: "f", VCPUs: 2, MemoryMB: 2048, RootGB: 10}}}})
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+act, strings.NewReader("csrf="+tok))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("refused power off: %d, want 409", resp.StatusCode)
	}
	for _, want := range []string{
		`<p class="warn" id="power-error">power off h4: refused: host h4 holds 1 instance(s)</p>`,
		`<tr data-host="h4" data-action="refused">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in\n%s", want, body)
		}
	}
	if h.bmc.power("h4") != "On" || h.nova.Log() != "" {
		t.Errorf("refused, yet BMC %s, Nova %q", h.bmc.power("h4"), h.nova.Log())
	}
	if got := historyOf(t, h, "h4"); len(got) != 1 || got[0] != "refused by console" {
		t.Errorf("history %q", got)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
