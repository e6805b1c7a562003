package power

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Scheme of a power endpoint.
type Scheme string

// Schemes. redfish+http is plain HTTP, for a BMC (or test peer) without TLS.
const (
	SchemeIPMI        Scheme = "ipmi"
	SchemeRedfish     Scheme = "redfish"
	SchemeRedfishHTTP Scheme = "redfish+http"
	SchemeIronic      Scheme = "ironic"
)

// DefaultIPMIPort is RMCP's UDP port.
const DefaultIPMIPort = 623

// Endpoint is a parsed KB power endpoint. It never holds credentials.
type Endpoint struct {
	Raw    string
	Scheme Scheme
	Host   string // ipmi, redfish: address
	Port   int    // ipmi, redfish: 0 = the scheme's default
	System string // redfish: the ComputerSystem id
	Node   string // ironic: the node UUID or name
}

func (e Endpoint) String() string { return e.Raw }

// ParseEndpoint reads ipmi://ADDR[:PORT], redfish://ADDR[:PORT]/Systems/ID
// (redfish+http:// for plain HTTP) or ironic://NODE. The KB validates the
// same forms on write; this is the reader that turns one into a backend.
func ParseEndpoint(s string) (Endpoint, error) {
	bad := func(want string) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("power endpoint %q: want %s", clip(s), want)
	}
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return bad("ipmi://ADDR[:PORT], redfish://ADDR/Systems/ID or ironic://NODE_UUID")
	}
	if u.User != nil {
		return Endpoint{}, fmt.Errorf("power endpoint %q: must not carry credentials", clip(u.Redacted()))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("no query or fragment")
	}
	e := Endpoint{Raw: s, Scheme: Scheme(u.Scheme), Host: u.Hostname()}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return bad("a port in 1-65535")
		}
		e.Port = n
	}
	switch e.Scheme {
	case SchemeIPMI:
		if e.Host == "" || (u.Path != "" && u.Path != "/") {
			return bad("ipmi://ADDR[:PORT]")
		}
		if e.Port == 0 {
			e.Port = DefaultIPMIPort
		}
	case SchemeRedfish, SchemeRedfishHTTP:
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if e.Host == "" || len(parts) != 2 || parts[0] != "Systems" || parts[1] == "" {
			return bad("redfish://ADDR[:PORT]/Systems/ID")
		}
		e.System = parts[1]
	case SchemeIronic:
		if u.Host == "" || e.Port != 0 || (u.Path != "" && u.Path != "/") {
			return bad("ironic://NODE_UUID")
		}
		e.Node, e.Host = u.Host, ""
	default:
		return bad("scheme ipmi, redfish or ironic")
	}
	return e, nil
}

// clip keeps at most 100 bytes of a bad value for an error message.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
