package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Service is what the console reads of the placement service
// (server.Server), called in-process.
type Service interface {
	HostLister
	ExportKnowledgeBase(ctx context.Context, req *ecraev1.ExportKnowledgeBaseRequest) (*ecraev1.ExportKnowledgeBaseResponse, error)
	ListKnowledgeBaseRevisions(ctx context.Context, req *ecraev1.ListKnowledgeBaseRevisionsRequest) (*ecraev1.ListKnowledgeBaseRevisionsResponse, error)
	WhatIf(ctx context.Context, req *ecraev1.WhatIfRequest) (*ecraev1.WhatIfResponse, error)
}

// Plans is the rebalance service (server.Rebalancer), called in-process.
type Plans interface {
	PlanRebalance(ctx context.Context, req *ecraev1.PlanRebalanceRequest) (*ecraev1.PlanRebalanceResponse, error)
	ListPlans(ctx context.Context, req *ecraev1.ListPlansRequest) (*ecraev1.ListPlansResponse, error)
	GetPlan(ctx context.Context, req *ecraev1.GetPlanRequest) (*ecraev1.GetPlanResponse, error)
	ExecutePlan(ctx context.Context, req *ecraev1.ExecutePlanRequest) (*ecraev1.ExecutePlanResponse, error)
	CancelPlan(ctx context.Context, req *ecraev1.CancelPlanRequest) (*ecraev1.CancelPlanResponse, error)
	AbortPlan(ctx context.Context, req *ecraev1.AbortPlanRequest) (*ecraev1.AbortPlanResponse, error)
}

// Gate authorizes and audits a call made for an HTTP request as the gRPC
// method it stands for (server.HTTPGate).
type Gate interface {
	Call(r *http.Request, fullMethod string, req any, h grpc.UnaryHandler) (any, error)
}

// PowerAction is one power action of the power manager's history.
type PowerAction struct {
	At      time.Time
	Host    string
	Action  string // "on", "off"
	Outcome string
	Who     string
}

// PowerManager is the power manager (package power/, wired by serve
// through server.NewConsolePower): its history, what it would allow now,
// and the actions. Errors are gRPC statuses; a refusal carries the
// manager's own words. Without one the power panel shows the hosts' state
// from the live view only, and says so.
type PowerManager interface {
	History(ctx context.Context, limit int) ([]PowerAction, error)
	// Check answers without acting: the panel offers an action only when
	// it is allowed now (the action checks again).
	Check(ctx context.Context, host string) PowerCheck
	On(ctx context.Context, host string) error
	Off(ctx context.Context, host string) error
}

// PowerCheck is what the power manager would answer now for one host.
type PowerCheck struct {
	// On, Off: nil when the action would go ahead, else its refusal.
	On, Off error
	// OffByECRAE: ECRAE powered the host off and has not woken it.
	OffByECRAE bool
}

// Config wires a Console.
type Config struct {
	Service Service
	// Plans nil: the plan pages say rebalancing is not configured.
	Plans Plans
	// Gate nil: every request may do everything (no authorization).
	Gate Gate
	// Power nil: not wired yet (see PowerManager).
	Power PowerManager
	// Fleet is the ring of fleet power samples the chart draws.
	Fleet *Fleet
	Log   *slog.Logger
	// Registerer receives ecrae_rebalance_last_saving_watts (nil: none).
	Registerer prometheus.Registerer
}

// Console is the web console: server-rendered pages over the service's
// own handlers, its assets embedded.
type Console struct {
	cfg   Config
	pages map[string]*template.Template
	key   []byte // CSRF tokens are HMACs of a per-browser cookie under it
	mux   *http.ServeMux
}

// New parses the templates and builds the routes.
func New(cfg Config) (*Console, error) {
	if cfg.Service == nil || cfg.Fleet == nil {
		return nil, errors.New("console: Service and Fleet are required")
	}
	if cfg.Gate == nil {
		cfg.Gate = openGate{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}, key: make([]byte, 32), mux: http.NewServeMux()}
	if _, err := rand.Read(c.key); err != nil {
		return nil, fmt.Errorf("console: CSRF key: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", base, err)
		}
		c.pages[strings.TrimSuffix(base, ".html")] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("console: static: %w", err)
	}
	c.routes(http.FileServerFS(static))
	if cfg.Registerer != nil && cfg.Plans != nil {
		if err := cfg.Registerer.Register(savingsCollector{c}); err != nil {
			return nil, fmt.Errorf("console: metrics: %w", err)
		}
	}
	return c, nil
}

// ServeHTTP serves the console; mount it at "/".
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything comes from this origin; nothing may frame the console.
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// openGate runs every call: authorization is off.
type openGate struct{}

func (openGate) Call(r *http.Request, _ string, req any, h grpc.UnaryHandler) (any, error) {
	return h(r.Context(), req)
}

// call runs one in-process handler through the gate as method.
func call[Req, Resp any](c *Console, r *http.Request, method string, req Req, f func(context.Context, Req) (Resp, error)) (Resp, error) {
	out, err := c.cfg.Gate.Call(r, method, req, func(ctx context.Context, req any) (any, error) { return f(ctx, req.(Req)) })
	if err != nil {
		var zero Resp
		return zero, err
	}
	return out.(Resp), nil
}

// The gRPC methods the console's actions stand for (server's methodAccess
// decides who may call them).
const (
	mListHosts   = "/ecrae.v1.HostViewService/ListLiveHosts"
	mExportKB    = "/ecrae.v1.KnowledgeBaseService/ExportKnowledgeBase"
	mRevisions   = "/ecrae.v1.KnowledgeBaseService/ListKnowledgeBaseRevisions"
	mWhatIf      = "/ecrae.v1.PlacementService/WhatIf"
	mPlan        = "/ecrae.v1.RebalanceService/PlanRebalance"
	mListPlans   = "/ecrae.v1.RebalanceService/ListPlans"
	mGetPlan     = "/ecrae.v1.RebalanceService/GetPlan"
	mExecutePlan = "/ecrae.v1.RebalanceService/ExecutePlan"
	mCancelPlan  = "/ecrae.v1.RebalanceService/CancelPlan"
	mAbortPlan   = "/ecrae.v1.RebalanceService/AbortPlan"
	mPowerHist   = "/ecrae.v1.PowerService/ListPowerEvents"
	mPowerStatus = "/ecrae.v1.PowerService/GetPowerStatus"
	mPowerOn     = "/ecrae.v1.PowerService/PowerOn"
	mPowerOff    = "/ecrae.v1.PowerService/PowerOff"
)

// httpStatus maps a gRPC status to the HTTP one the page answers with.
func httpStatus(err error) int {
	switch status.Code(err) {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition, codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// CSRF: a random cookie per browser, and forms carry its HMAC under the
// console's key; a cross-site page can neither read the cookie nor compute
// the token. Origin and Sec-Fetch-Site are checked as well.

const csrfCookie = "ecrae_csrf"

func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 32 {
		v = ck.Value
	} else {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return ""
		}
		v = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	return c.sign(v)
}

func (c *Console) sign(v string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// checkPost refuses a state-changing request that is not a same-origin
// form post carrying the browser's token.
func (c *Console) checkPost(r *http.Request) error {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return fmt.Errorf("refused: a %s request (Sec-Fetch-Site) may not change anything", site)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errors.New("refused: the request comes from another origin")
		}
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil {
		return errors.New("refused: no console cookie; reload the page and confirm again")
	}
	if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.sign(ck.Value))) {
		return errors.New("refused: the form's token does not match; reload the page and confirm again")
	}
	return nil
}

var funcs = template.FuncMap{
	"watts": func(w float64) string {
		if w >= 1000 {
			return fmt.Sprintf("%.2f kW", w/1000)
		}
		return fmt.Sprintf("%.1f W", w)
	},
	"pct": func(u float64) string { return fmt.Sprintf("%.0f %%", u*100) },
	"when": func(t *timestamppb.Timestamp) string {
		if t == nil {
			return "-"
		}
		return t.AsTime().UTC().Format(time.RFC3339)
	},
	"planStatus": planStatusWord,
	"stepStatus": stepStatusWord,
	"inc":        func(i int32) int32 { return i + 1 },
}

func planStatusWord(s ecraev1.PlanStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PLAN_STATUS_"))
}

func stepStatusWord(s ecraev1.StepStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATUS_"))
}

var lastSaving = prometheus.NewDesc("ecrae_rebalance_last_saving_watts",
	"The newest succeeded rebalance plan's saving: kind=predicted (power before - after - migrations, as planned), realised (fleet power before its start - after its end, from the console's samples; every cause counts).",
	[]string{"kind"}, nil)

// savingsCollector reads the newest succeeded plan at each scrape.
type savingsCollector struct{ c *Console }

func (s savingsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lastSaving }

func (s savingsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ps, err := s.c.cfg.Plans.ListPlans(ctx, &ecraev1.ListPlansRequest{})
	if err != nil {
		return
	}
	for _, p := range ps.GetPlans() { // newest first
		if p.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED {
			continue
		}
		v := s.c.viewPlan(p)
		ch <- prometheus.MustNewConstMetric(lastSaving, prometheus.GaugeValue, v.SavingW, "predicted")
		if v.HasRealised {
			ch <- prometheus.MustNewConstMetric(lastSaving, prometheus.GaugeValue, v.RealisedW, "realised")
		}
		return
	}
}
