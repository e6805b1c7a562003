package openstack

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/migrations"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/services"
)

// Services disables and enables a host's nova-compute service (the power
// manager's Nova side). Needs compute microversion 2.53 or later, where a
// service is addressed by its UUID.
type Services struct {
	compute *gophercloud.ServiceClient
}

// NewServices wraps a compute client.
func NewServices(compute *gophercloud.ServiceClient) *Services { return &Services{compute: compute} }

// DisableService disables host's nova-compute with reason: Nova's
// scheduler stops offering it.
func (s *Services) DisableService(ctx context.Context, host, reason string) error {
	return s.update(ctx, host, services.UpdateOpts{Status: services.ServiceDisabled, DisabledReason: reason})
}

// EnableService enables host's nova-compute again.
func (s *Services) EnableService(ctx context.Context, host string) error {
	return s.update(ctx, host, services.UpdateOpts{Status: services.ServiceEnabled})
}

func (s *Services) update(ctx context.Context, host string, opts services.UpdateOpts) error {
	pages, err := services.List(s.compute, services.ListOpts{Binary: "nova-compute", Host: host}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("list nova-compute services of %s: %w", host, err)
	}
	list, err := services.ExtractServices(pages)
	if err != nil {
		return fmt.Errorf("list nova-compute services of %s: %w", host, err)
	}
	var id string
	for _, sv := range list {
		if sv.Host == host && sv.Binary == "nova-compute" {
			id = sv.ID
		}
	}
	if id == "" {
		return fmt.Errorf("host %s: Nova has no nova-compute service on it", host)
	}
	if _, err := services.Update(ctx, s.compute, id, opts).Extract(); err != nil {
		return fmt.Errorf("host %s: set nova-compute %s: %w", host, opts.Status, err)
	}
	return nil
}

// settled are the migration statuses after which a migration holds nothing
// on its hosts ("finished" is a resize waiting to be confirmed: it does).
var settled = map[string]bool{"completed": true, "error": true, "failed": true, "cancelled": true,
	"confirmed": true, "reverted": true, "done": true}

// HostBusy asks Nova itself whether host holds any server (of any project,
// in any state) or takes part in an unsettled migration; "" means neither.
// It is the last check before a power off, independent of the live view.
func (s *Services) HostBusy(ctx context.Context, host string) (string, error) {
	pages, err := servers.List(s.compute, servers.ListOpts{AllTenants: true, Host: host}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("list servers on %s: %w", host, err)
	}
	list, err := servers.ExtractServers(pages)
	if err != nil {
		return "", fmt.Errorf("list servers on %s: %w", host, err)
	}
	if len(list) > 0 {
		return fmt.Sprintf("Nova lists %d server(s) on %s (first: %s)", len(list), host, list[0].ID), nil
	}
	mpages, err := migrations.List(s.compute, migrations.ListOpts{Host: &host}).AllPages(ctx)
	if err != nil {
		return "", fmt.Errorf("list migrations of %s: %w", host, err)
	}
	ms, err := migrations.ExtractMigrations(mpages)
	if err != nil {
		return "", fmt.Errorf("list migrations of %s: %w", host, err)
	}
	for _, m := range ms {
		if !settled[m.Status] {
			return fmt.Sprintf("migration %d of %s (%s → %s) is %s", m.ID, m.InstanceID, m.SourceCompute, m.DestCompute, m.Status), nil
		}
	}
	return "", nil
}
