package power

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// redfishBackend drives a DMTF Redfish ComputerSystem: its PowerState, and
// the ComputerSystem.Reset action (ResetType On / ForceOff) at the target
// the resource advertises.
type redfishBackend struct {
	ep   Endpoint
	cred Credentials
	http *http.Client
}

func (b *redfishBackend) base() string {
	scheme := "https"
	if b.ep.Scheme == SchemeRedfishHTTP {
		scheme = "http"
	}
	host := b.ep.Host
	if b.ep.Port != 0 {
		host = fmt.Sprintf("%s:%d", b.ep.Host, b.ep.Port)
	}
	return (&url.URL{Scheme: scheme, Host: host}).String()
}

func (b *redfishBackend) systemPath() string {
	return "/redfish/v1/Systems/" + url.PathEscape(b.ep.System)
}

// system is the part of a ComputerSystem resource used here.
type system struct {
	PowerState string `json:"PowerState"`
	Actions    struct {
		Reset struct {
			Target string `json:"target"`
		} `json:"#ComputerSystem.Reset"`
	} `json:"Actions"`
}

func (b *redfishBackend) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base()+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(b.cred.Username, b.cred.Password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, clip(string(bytes.TrimSpace(data))))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func (b *redfishBackend) get(ctx context.Context) (*system, error) {
	var s system
	if err := b.do(ctx, http.MethodGet, b.systemPath(), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func (b *redfishBackend) Status(ctx context.Context) (State, error) {
	s, err := b.get(ctx)
	if err != nil {
		return StateUnknown, err
	}
	switch s.PowerState {
	case "On", "PoweringOff":
		return StateOn, nil
	case "Off", "PoweringOn":
		return StateOff, nil
	}
	return StateUnknown, nil
}

func (b *redfishBackend) On(ctx context.Context) error  { return b.reset(ctx, "On") }
func (b *redfishBackend) Off(ctx context.Context) error { return b.reset(ctx, "ForceOff") }

func (b *redfishBackend) reset(ctx context.Context, typ string) error {
	s, err := b.get(ctx)
	if err != nil {
		return err
	}
	target := s.Actions.Reset.Target
	if target == "" {
		// The schema's conventional location, for a BMC that omits it.
		target = b.systemPath() + "/Actions/ComputerSystem.Reset"
	}
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		target = u.RequestURI() // the BMC's view of its own address may differ
	}
	return b.do(ctx, http.MethodPost, target, map[string]string{"ResetType": typ}, nil)
}
