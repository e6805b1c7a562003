package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Redfish reads the chassis power from a Redfish service over plain HTTP
// and JSON (no maintained Redfish client library is served for Go here):
// the sum of the power supplies' InputPowerWatts under the newer
// Chassis/{id}/PowerSubsystem, else PowerControl[0].PowerConsumedWatts of
// the older Chassis/{id}/Power. It is not safe for concurrent use.
type Redfish struct {
	base    *url.URL // scheme://host[:port]
	chassis string   // "/redfish/v1/Chassis/ID", "" = the first member
	creds   Credentials
	hc      *http.Client

	// The resources found to hold the readings, kept so that a sample
	// costs one GET per power supply (BMCs answer slowly), not the walk
	// from the chassis; any error walks again. Only Watts uses them, and
	// the agent calls it from one goroutine.
	psuMetrics []string // PowerSupplyMetrics paths, or
	power      string   // the legacy Power path
}

// NewRedfish reads the chassis at rawURL: https://BMC[/redfish/v1/Chassis/ID].
// insecure skips TLS verification (BMCs often have self-signed certificates).
func NewRedfish(rawURL string, creds Credentials, insecure bool, timeout time.Duration) (*Redfish, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--redfish %q: want https://BMC[/redfish/v1/Chassis/ID]", truncate(rawURL))
	}
	chassis := strings.TrimSuffix(u.Path, "/")
	if chassis != "" && !strings.HasPrefix(chassis, "/redfish/v1/Chassis/") {
		return nil, fmt.Errorf("--redfish %q: the path must be /redfish/v1/Chassis/ID", truncate(rawURL))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // asked for with --redfish-insecure
	}
	return &Redfish{
		base:    &url.URL{Scheme: u.Scheme, Host: u.Host},
		chassis: chassis, creds: creds,
		hc: &http.Client{Transport: tr, Timeout: timeout},
	}, nil
}

// Name implements WattsSource.
func (r *Redfish) Name() string { return SourceRedfish }

type odataLink struct {
	ID string `json:"@odata.id"`
}

type reading struct {
	Reading *float64 `json:"Reading"`
}

// Watts implements WattsSource.
func (r *Redfish) Watts(ctx context.Context) (float64, error) {
	switch {
	case len(r.psuMetrics) > 0:
		if w, err := r.sumMetrics(ctx, r.psuMetrics); err == nil {
			return w, nil
		}
	case r.power != "":
		if w, err := r.legacyPower(ctx, r.power); err == nil {
			return w, nil
		}
	}
	r.psuMetrics, r.power = nil, ""
	return r.discover(ctx)
}

// discover walks from the chassis to the readings and remembers where
// they are.
func (r *Redfish) discover(ctx context.Context) (float64, error) {
	chassis := r.chassis
	if chassis == "" {
		var coll struct{ Members []odataLink }
		if err := r.get(ctx, "/redfish/v1/Chassis", &coll); err != nil {
			return 0, err
		}
		if len(coll.Members) == 0 {
			return 0, fmt.Errorf("redfish: %s: no chassis", r.base)
		}
		chassis = coll.Members[0].ID
	}
	var ch struct {
		Power          *odataLink
		PowerSubsystem *odataLink
	}
	if err := r.get(ctx, chassis, &ch); err != nil {
		return 0, err
	}
	var subErr error
	if ch.PowerSubsystem != nil {
		w, err := r.powerSubsystem(ctx, ch.PowerSubsystem.ID)
		if err == nil {
			return w, nil
		}
		subErr = err
	}
	if ch.Power != nil {
		w, err := r.legacyPower(ctx, ch.Power.ID)
		if err != nil {
			return 0, errors.Join(subErr, err)
		}
		r.power = ch.Power.ID
		return w, nil
	}
	if subErr != nil {
		return 0, subErr
	}
	return 0, fmt.Errorf("redfish: %s%s: the chassis links neither PowerSubsystem nor Power", r.base, chassis)
}

// powerSubsystem sums InputPowerWatts over the power supplies that report
// metrics (an absent bay has none).
func (r *Redfish) powerSubsystem(ctx context.Context, path string) (float64, error) {
	var ps struct{ PowerSupplies *odataLink }
	if err := r.get(ctx, path, &ps); err != nil {
		return 0, err
	}
	if ps.PowerSupplies == nil {
		return 0, fmt.Errorf("redfish: %s%s: no PowerSupplies", r.base, path)
	}
	var coll struct{ Members []odataLink }
	if err := r.get(ctx, ps.PowerSupplies.ID, &coll); err != nil {
		return 0, err
	}
	var metrics []string
	for _, m := range coll.Members {
		var psu struct{ Metrics *odataLink }
		if err := r.get(ctx, m.ID, &psu); err != nil {
			return 0, err
		}
		if psu.Metrics != nil { // an absent bay has none
			metrics = append(metrics, psu.Metrics.ID)
		}
	}
	if len(metrics) == 0 {
		return 0, fmt.Errorf("redfish: %s%s: no power supply reports metrics", r.base, path)
	}
	w, err := r.sumMetrics(ctx, metrics)
	if err != nil {
		return 0, err
	}
	r.psuMetrics = metrics
	return w, nil
}

// sumMetrics adds the InputPowerWatts of power supply metrics resources.
func (r *Redfish) sumMetrics(ctx context.Context, paths []string) (float64, error) {
	var sum float64
	for _, p := range paths {
		var met struct{ InputPowerWatts reading }
		if err := r.get(ctx, p, &met); err != nil {
			return 0, err
		}
		if met.InputPowerWatts.Reading == nil {
			return 0, fmt.Errorf("redfish: %s%s: no InputPowerWatts reading", r.base, p)
		}
		sum += *met.InputPowerWatts.Reading
	}
	return sum, nil
}

// legacyPower reads PowerControl[0].PowerConsumedWatts of a Power resource.
func (r *Redfish) legacyPower(ctx context.Context, path string) (float64, error) {
	var p struct {
		PowerControl []struct{ PowerConsumedWatts *float64 }
	}
	if err := r.get(ctx, path, &p); err != nil {
		return 0, err
	}
	if len(p.PowerControl) == 0 || p.PowerControl[0].PowerConsumedWatts == nil {
		return 0, fmt.Errorf("redfish: %s%s: no PowerControl[0].PowerConsumedWatts", r.base, path)
	}
	return *p.PowerControl[0].PowerConsumedWatts, nil
}

func (r *Redfish) get(ctx context.Context, path string, v any) error {
	u := r.base.ResolveReference(&url.URL{Path: path})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("redfish: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if r.creds.Username != "" {
		req.SetBasicAuth(r.creds.Username, r.creds.Password)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("redfish: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("redfish: %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("redfish: %s: HTTP %s", u, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("redfish: %s: %w", u, err)
	}
	return nil
}
