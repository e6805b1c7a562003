package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/bougou/go-ipmi/pkg/client"
	"gopkg.in/yaml.v3"
)

// Credentials are a BMC's user name and password, read from a file so that
// they are not on the command line (visible in ps) nor in the unit file.
type Credentials struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// ReadCredentials reads a YAML file {username: ..., password: ...}.
func ReadCredentials(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	c, err := ParseCredentials(b)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %s: %w", path, err)
	}
	return c, nil
}

// ParseCredentials reads YAML {username: ..., password: ...}.
func ParseCredentials(b []byte) (Credentials, error) {
	var c Credentials
	if err := yaml.Unmarshal(b, &c); err != nil {
		return Credentials{}, err
	}
	if c.Username == "" {
		return Credentials{}, errors.New("no username")
	}
	return c, nil
}

// IPMI reads the BMC's DCMI power reading (DCMI Get Power Reading, the
// average over the BMC's sampling period), over RMCP+ (lanplus) to a remote
// BMC or through the local /dev/ipmi0 when no address is given. It uses
// github.com/bougou/go-ipmi, a pure-Go IPMI v2 client: no ipmitool process
// per sample and no parsing of its text output.
type IPMI struct {
	host  string // "" = the local BMC through the OpenIPMI driver
	port  int
	creds Credentials
}

// ParseBMC reads --bmc: "" (local), or ipmi://HOST[:PORT] (port 623).
func ParseBMC(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "ipmi" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", 0, fmt.Errorf("--bmc %q: want ipmi://HOST[:PORT]", truncate(s))
	}
	host, p := u.Hostname(), u.Port()
	port = 623
	if p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return "", 0, fmt.Errorf("--bmc %q: port %q is not a port number", truncate(s), p)
		}
	}
	return host, port, nil
}

// NewIPMI reads a BMC at host:port (host "" = the local BMC).
func NewIPMI(host string, port int, creds Credentials) *IPMI {
	return &IPMI{host: host, port: port, creds: creds}
}

// Name implements WattsSource.
func (i *IPMI) Name() string { return SourceIPMI }

func (i *IPMI) endpoint() string {
	if i.host == "" {
		return "local BMC (/dev/ipmi0)"
	}
	return "ipmi://" + net.JoinHostPort(i.host, strconv.Itoa(i.port))
}

// Watts implements WattsSource. A session is opened per reading: BMCs drop
// idle sessions after about a minute, and a fresh one costs four round
// trips every --interval, which is nothing.
func (i *IPMI) Watts(ctx context.Context) (float64, error) {
	var c *client.Client
	var err error
	if i.host == "" {
		c, err = client.NewOpenClient()
	} else {
		c, err = client.NewClient(i.host, i.port, i.creds.Username, i.creds.Password)
	}
	if err != nil {
		return 0, fmt.Errorf("ipmi: %s: %w", i.endpoint(), err)
	}
	if err := c.Connect(ctx); err != nil {
		return 0, fmt.Errorf("ipmi: %s: connect: %w", i.endpoint(), err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	r, err := c.GetDCMIPowerReading(ctx)
	if err != nil {
		return 0, fmt.Errorf("ipmi: %s: DCMI power reading: %w", i.endpoint(), err)
	}
	if !r.PowerMeasurementActive {
		return 0, fmt.Errorf("ipmi: %s: DCMI power measurement is not active", i.endpoint())
	}
	return float64(r.AveragePower), nil
}
