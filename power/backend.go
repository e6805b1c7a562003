package power

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// State is what a BMC reports.
type State string

// States.
const (
	StateOn      State = "on"
	StateOff     State = "off"
	StateUnknown State = "unknown"
)

// Backend drives one host's power through its BMC or Ironic.
type Backend interface {
	Status(ctx context.Context) (State, error)
	On(ctx context.Context) error
	Off(ctx context.Context) error
}

// Backends builds a Backend for an endpoint.
type Backends struct {
	// Baremetal is Ironic's API; nil: ironic:// endpoints fail with an
	// error that says so.
	Baremetal *gophercloud.ServiceClient
	// HTTP is the Redfish client; nil: a client with Timeout.
	HTTP *http.Client
	// Timeout of one BMC exchange; 0 = 5s.
	Timeout time.Duration
}

// For returns the backend of ep with cred (unused by Ironic, which holds
// its own BMC credentials).
func (b Backends) For(ep Endpoint, cred Credentials, haveCred bool) (Backend, error) {
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	switch ep.Scheme {
	case SchemeIPMI:
		if !haveCred {
			return nil, fmt.Errorf("no credentials for %s in --power-credentials", ep)
		}
		return &ipmiBackend{ep: ep, cred: cred, timeout: timeout}, nil
	case SchemeRedfish, SchemeRedfishHTTP:
		if !haveCred {
			return nil, fmt.Errorf("no credentials for %s in --power-credentials", ep)
		}
		c := b.HTTP
		if c == nil {
			c = &http.Client{Timeout: timeout}
		}
		return &redfishBackend{ep: ep, cred: cred, http: c}, nil
	case SchemeIronic:
		if b.Baremetal == nil {
			return nil, fmt.Errorf("%s: no Ironic (baremetal) endpoint in the OpenStack catalog or credentials", ep)
		}
		return &ironicBackend{ep: ep, client: b.Baremetal}, nil
	}
	return nil, fmt.Errorf("%s: unsupported scheme %q", ep, ep.Scheme)
}
