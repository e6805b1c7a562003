package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The console in a real browser: Debian's chromium driven by its
// chromedriver over plain WebDriver HTTP calls (no module needed).
// scripts/install-test-deps.sh installs both; without them the test skips
// and says why.

type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:PORT/session/ID
}

func (w *webDriver) call(method, path string, body any) json.RawMessage {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			w.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out struct{ Value json.RawMessage }
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil || resp.StatusCode != 200 {
		w.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return out.Value
}

func (w *webDriver) open(url string) {
	w.t.Helper()
	w.call("POST", "/url", map[string]string{"url": url})
}

func (w *webDriver) click(css string) {
	w.t.Helper()
	var el map[string]string
	if err := json.Unmarshal(w.call("POST", "/element", map[string]string{"using": "css selector", "value": css}), &el); err != nil {
		w.t.Fatal(err)
	}
	for _, id := range el { // the W3C element key
		w.call("POST", "/element/"+id+"/click", map[string]any{})
	}
}

// js runs a script and decodes its return value into out.
func (w *webDriver) js(script string, out any) {
	w.t.Helper()
	if err := json.Unmarshal(w.call("POST", "/execute/sync", map[string]any{"script": script, "args": []any{}}), out); err != nil {
		w.t.Fatal(err)
	}
}

// waitJS polls a script until it returns true.
func (w *webDriver) waitJS(what, script string) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		w.js(script, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var html string
			w.js("return document.body.innerHTML", &html)
			w.t.Fatalf("waiting for %s: still false; page:\n%s", what, html)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consoleErrors returns the browser's SEVERE log entries since the last call.
func (w *webDriver) consoleErrors() []string {
	w.t.Helper()
	var entries []struct{ Level, Message string }
	if err := json.Unmarshal(w.call("POST", "/se/log", map[string]string{"type": "browser"}), &entries); err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Level == "SEVERE" {
			out = append(out, e.Message)
		}
	}
	return out
}

func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (Debian package chromium; scripts/install-test-deps.sh installs it)")
	}
	driver, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Skip("chromedriver is not installed (Debian package chromium-driver; scripts/install-test-deps.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, driver, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(root + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not answer on %s: %v", root, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := &webDriver{t: t, base: root}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		}},
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
	}}}
	var sess struct{ SessionID string }
	if err := json.Unmarshal(w.call("POST", "/session", caps), &sess); err != nil || sess.SessionID == "" {
		t.Fatalf("no session: %v", err)
	}
	w.base = root + "/session/" + sess.SessionID
	t.Cleanup(func() {
		req, _ := http.NewRequest("DELETE", w.base, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return w
}

// TestConsoleInChromium: every page loads without a console error, the
// power chart is drawn with data, and a plan approved through the confirm
// step shows its progress live on its page (no reload) to the end.
func TestConsoleInChromium(t *testing.T) {
	w := startBrowser(t)
	h := newHarness(t, nil)
	for _, p := range []string{"/", "/hosts", "/hosts/h0", "/plans", "/power", "/kb", "/whatif?vcpus=2&ram_mb=2048", "/whatif?vcpus=x"} {
		w.open(h.ts.URL + p)
		var title string
		w.js("return document.title", &title)
		if !strings.HasSuffix(title, "· ECRAE") {
			t.Errorf("%s: title %q", p, title)
		}
		if errs := w.consoleErrors(); len(errs) > 0 && p != "/whatif?vcpus=x" { // a 400 answer is logged as a failed load
			t.Errorf("%s: console errors: %q", p, errs)
		}
	}

	// The chart: both series of architecture old drawn across the plot with three points.
	w.open(h.ts.URL + "/")
	var chart struct {
		Series        int
		Points        string
		Width, Height float64
	}
	w.js(`var m = document.querySelector('#power-chart polyline[data-series="old measured"]');
	      var b = m.getBBox();
	      return {Series: document.querySelectorAll('#power-chart polyline.series').length,
	              Points: m.getAttribute('data-points'), Width: b.width, Height: b.height};`, &chart)
	// Measured 248 → 268 W over the samples: a rising line, not a dot.
	if chart.Series != 2 || chart.Points != "3" || chart.Width < 100 || chart.Height <= 0 {
		t.Errorf("chart: %+v", chart)
	}

	// Plan, approve, watch.
	w.open(h.ts.URL + "/plans")
	w.click("#plan-now")
	w.waitJS("the confirm page", `return !!document.querySelector('#confirm-form')`)
	w.click("#confirm")
	w.waitJS("the new plan's page", `return !!document.querySelector('#approve')`)
	w.click("#approve")
	w.waitJS("the approve confirm page", `return !!document.querySelector('#confirm-form') && document.querySelector('.question')?.textContent.indexOf('Approve') === 0`)
	w.click("#confirm") // a click returns before the navigation it starts: the waits below allow for the old page
	w.waitJS("the plan executing", `return document.getElementById('plan-status')?.textContent === 'executing'`)
	w.js(`window.notReloaded = true; return true`, new(bool))
	w.waitJS("a step running", `return document.querySelector('tr[data-step="1"] .step-status')?.textContent === 'running'`)
	close(h.mig.release)
	w.waitJS("the plan done, shown live", `return window.notReloaded === true &&
		document.getElementById('plan-status')?.textContent === 'succeeded' &&
		document.getElementById('plan-done')?.textContent === '4 of 4 moves done' &&
		document.getElementById('plan-progress')?.value === 4`)
	if errs := w.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors during the plan: %q", errs)
	}
}

// TestConsolePowerOffInChromium: an operator powers off the empty host h4
// from the power panel through its confirm page; the page shows the result
// and the new history entry. The BMC is a Redfish stand-in and Nova's
// services API a recording fake (see the harness): neither runs here.
func TestConsolePowerOffInChromium(t *testing.T) {
	w := startBrowser(t)
	h := newHarnessWith(t, options{power: true})
	w.open(h.ts.URL + "/power")
	var offered struct{ H0, H4 bool }
	w.js(`return {H0: !!document.querySelector('tr[data-host="h0"] a.power-off'),
	              H4: !!document.querySelector('tr[data-host="h4"] a.power-off')};`, &offered)
	if offered.H0 || !offered.H4 {
		t.Fatalf("power off offered: %+v; want h4 (empty) only", offered)
	}
	w.click(`tr[data-host="h4"] a.power-off`)
	w.waitJS("the confirm page", `return !!document.querySelector('#confirm-form') && document.querySelector('.question')?.textContent === 'Power off host h4?'`)
	w.click("#confirm")
	w.waitJS("the result", `return document.getElementById('power-result')?.getAttribute('data-host') === 'h4'`)
	var got struct{ Action, Who, State string }
	w.js(`var row = document.querySelector('#power-history tr[data-host]');
	      return {Action: row.getAttribute('data-host') + ' ' + row.getAttribute('data-action'),
	              Who: row.lastElementChild.textContent,
	              State: document.querySelector('#power-hosts tr[data-host="h4"] .power-state').textContent};`, &got)
	if got.Action != "h4 off" || got.Who != "console" || got.State != "off (by ECRAE)" {
		t.Errorf("after power off: %+v", got)
	}
	if h.bmc.power("h4") != "Off" {
		t.Errorf("the BMC says %s", h.bmc.power("h4"))
	}
	if errs := w.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}
