// Package openstack talks to OpenStack through gophercloud v2: it reads
// compute hosts (Placement resource providers, inventories and usages;
// Nova hypervisors for host names and cpu_info) and servers of every
// project, and reconciles the live host view with them at start and
// periodically.
package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	gcopenstack "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"gopkg.in/yaml.v3"
)

// Microversions used. Compute 2.87 is the last that reports a hypervisor's
// cpu_info (its ISA); capacity and usage come from Placement, as the compute
// API stopped reporting them at 2.88. Placement 1.14 adds parent providers.
const (
	ComputeMicroversion   = "2.87"
	PlacementMicroversion = "1.14"
)

// ErrNoCredentials says that neither clouds.yaml (--os-cloud, OS_CLOUD) nor
// OS_* variables name a cloud.
var ErrNoCredentials = errors.New("no OpenStack credentials")

// Options select the cloud.
type Options struct {
	// Cloud is the clouds.yaml entry (--os-cloud); "" = $OS_CLOUD, then the
	// OS_* environment.
	Cloud string
	// Timeout of each HTTP request; 0 = 30s.
	Timeout time.Duration
}

// Client holds a compute and a placement client.
type Client struct {
	Compute   *gophercloud.ServiceClient
	Placement *gophercloud.ServiceClient
	// Baremetal is Ironic, when the catalog has it (power endpoints
	// ironic://NODE); nil otherwise.
	Baremetal *gophercloud.ServiceClient
	// Source says where the credentials came from, for the start-up log.
	Source string
}

// noAuthTypes are the clouds.yaml auth types with no Keystone: the
// endpoints are given (<service>_endpoint_override) and a token, if any,
// is sent as it is (Nova's and Placement's noauth2, or a pre-issued
// token).
var noAuthTypes = map[string]bool{"none": true, "noauth": true, "admin_token": true, "token_endpoint": true}

// cloudExtras is what gophercloud's clouds parser does not return.
type cloudExtras struct {
	AuthType string `yaml:"auth_type"`
	Auth     struct {
		Token string `yaml:"token"`
	} `yaml:"auth"`
	ComputeEndpointOverride   string `yaml:"compute_endpoint_override"`
	PlacementEndpointOverride string `yaml:"placement_endpoint_override"`
}

// Connect builds the clients. Without any credentials it returns
// ErrNoCredentials (the service then runs on events alone).
func Connect(ctx context.Context, o Options) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	cloud := o.Cloud
	if cloud == "" {
		cloud = os.Getenv("OS_CLOUD")
	}
	if cloud != "" {
		return connectCloud(ctx, cloud, o)
	}
	if noAuthTypes[strings.ToLower(os.Getenv("OS_AUTH_TYPE"))] {
		return standalone(os.Getenv("OS_TOKEN"), os.Getenv("OS_COMPUTE_ENDPOINT_OVERRIDE"),
			os.Getenv("OS_PLACEMENT_ENDPOINT_OVERRIDE"), o, "environment (OS_AUTH_TYPE="+os.Getenv("OS_AUTH_TYPE")+")")
	}
	if os.Getenv("OS_AUTH_URL") == "" {
		return nil, ErrNoCredentials
	}
	ao, err := gcopenstack.AuthOptionsFromEnv()
	if err != nil {
		return nil, fmt.Errorf("OS_* environment: %w", err)
	}
	ao.AllowReauth = true // a long-running service outlives its token
	pc, err := config.NewProviderClient(ctx, ao, config.WithHTTPClient(http.Client{Timeout: o.Timeout}))
	if err != nil {
		return nil, fmt.Errorf("authenticate at %s: %w", ao.IdentityEndpoint, err)
	}
	eo := gophercloud.EndpointOpts{Region: os.Getenv("OS_REGION_NAME"), Availability: availability(os.Getenv("OS_INTERFACE"))}
	return clients(pc, eo, os.Getenv("OS_COMPUTE_ENDPOINT_OVERRIDE"), os.Getenv("OS_PLACEMENT_ENDPOINT_OVERRIDE"), "environment (OS_AUTH_URL)")
}

func connectCloud(ctx context.Context, cloud string, o Options) (*Client, error) {
	path, extras, err := readCloud(cloud)
	if err != nil {
		return nil, err
	}
	source := fmt.Sprintf("clouds.yaml %s, cloud %q", path, cloud)
	if noAuthTypes[strings.ToLower(extras.AuthType)] {
		return standalone(extras.Auth.Token, extras.ComputeEndpointOverride, extras.PlacementEndpointOverride, o, source)
	}
	ao, eo, tlsConfig, err := clouds.Parse(clouds.WithCloudName(cloud), clouds.WithLocations(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	ao.AllowReauth = true
	pc, err := config.NewProviderClient(ctx, ao, config.WithTLSConfig(tlsConfig), config.WithHTTPClient(http.Client{Timeout: o.Timeout}))
	if err != nil {
		return nil, fmt.Errorf("%s: authenticate at %s: %w", source, ao.IdentityEndpoint, err)
	}
	return clients(pc, eo, extras.ComputeEndpointOverride, extras.PlacementEndpointOverride, source)
}

// readCloud finds clouds.yaml where gophercloud (and python-openstackclient)
// look, and reads the entry's auth type and endpoint overrides.
func readCloud(cloud string) (string, cloudExtras, error) {
	var locations []string
	if p := os.Getenv("OS_CLIENT_CONFIG_FILE"); p != "" {
		locations = []string{p}
	} else {
		cfg := os.Getenv("XDG_CONFIG_HOME")
		if cfg == "" {
			if home, err := os.UserHomeDir(); err == nil {
				cfg = filepath.Join(home, ".config")
			}
		}
		locations = []string{"clouds.yaml", filepath.Join(cfg, "openstack", "clouds.yaml"), "/etc/openstack/clouds.yaml"}
	}
	for _, p := range locations {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var f struct {
			Clouds map[string]cloudExtras `yaml:"clouds"`
		}
		if err := yaml.Unmarshal(b, &f); err != nil {
			return p, cloudExtras{}, fmt.Errorf("%s: %w", p, err)
		}
		e, ok := f.Clouds[cloud]
		if !ok {
			return p, cloudExtras{}, fmt.Errorf("%s: no cloud %q", p, cloud)
		}
		return p, e, nil
	}
	return "", cloudExtras{}, fmt.Errorf("cloud %q: no clouds.yaml in %s", cloud, strings.Join(locations, ", "))
}

// standalone builds clients for endpoints given directly, without Keystone.
func standalone(token, computeURL, placementURL string, o Options, source string) (*Client, error) {
	if computeURL == "" || placementURL == "" {
		return nil, fmt.Errorf("%s: auth type without Keystone needs both compute_endpoint_override and placement_endpoint_override (OS_COMPUTE_ENDPOINT_OVERRIDE, OS_PLACEMENT_ENDPOINT_OVERRIDE)", source)
	}
	pc := &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: o.Timeout}}
	if token != "" {
		pc.SetToken(token)
	}
	return &Client{
		Compute:   &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: slash(computeURL), ResourceBase: slash(computeURL), Type: "compute", Microversion: ComputeMicroversion},
		Placement: &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: slash(placementURL), ResourceBase: slash(placementURL), Type: "placement", Microversion: PlacementMicroversion},
		Source:    source + " (no Keystone)",
	}, nil
}

func clients(pc *gophercloud.ProviderClient, eo gophercloud.EndpointOpts, computeURL, placementURL, source string) (*Client, error) {
	compute, err := gcopenstack.NewComputeV2(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("%s: compute endpoint: %w", source, err)
	}
	placement, err := gcopenstack.NewPlacementV1(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("%s: placement endpoint: %w", source, err)
	}
	if computeURL != "" {
		compute.Endpoint, compute.ResourceBase = slash(computeURL), slash(computeURL)
	}
	if placementURL != "" {
		placement.Endpoint, placement.ResourceBase = slash(placementURL), slash(placementURL)
	}
	compute.Microversion, placement.Microversion = ComputeMicroversion, PlacementMicroversion
	c := &Client{Compute: compute, Placement: placement, Source: source}
	if bm, err := gcopenstack.NewBareMetalV1(pc, eo); err == nil {
		c.Baremetal = bm // optional: only ironic:// power endpoints need it
	}
	return c, nil
}

func availability(s string) gophercloud.Availability {
	switch strings.TrimSuffix(strings.ToLower(s), "url") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	}
	return gophercloud.AvailabilityPublic
}

func slash(u string) string {
	if strings.HasSuffix(u, "/") {
		return u
	}
	return u + "/"
}
