package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/instanceactions"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/migrations"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servergroups"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// The live-migration executor's side of Nova (issue 5): start one live
// migration to a named host, and follow it to its end through the server's
// record (host, status, task state) and its migration record, polling.
// Nothing is retried: a migration that fails is reported with Nova's
// reason, and the caller decides.

// MigrateMicroversion is the compute API microversion of the executor's
// calls: at least 2.25 for block_migration "auto", 2.59 to filter
// migrations by instance, 2.64 for a server group's single policy. 2.87,
// as the rest of the package.
const MigrateMicroversion = ComputeMicroversion

// Migrator live-migrates servers through Nova.
type Migrator struct {
	compute *gophercloud.ServiceClient
	poll    time.Duration
}

// NewMigrator returns a Migrator on compute (copied, with
// MigrateMicroversion), polling every poll (0 = 1s).
func NewMigrator(compute *gophercloud.ServiceClient, poll time.Duration) *Migrator {
	c := *compute
	c.Microversion = MigrateMicroversion
	if poll <= 0 {
		poll = time.Second
	}
	return &Migrator{compute: &c, poll: poll}
}

// liveMigrateAuto is the os-migrateLive body with block_migration "auto":
// gophercloud's LiveMigrateOpts has it as a *bool, which cannot say auto.
// Auto lets Nova block-migrate local disks and not shared ones.
type liveMigrateAuto struct{ host string }

func (o liveMigrateAuto) ToLiveMigrateMap() (map[string]any, error) {
	return map[string]any{"os-migrateLive": map[string]any{"host": o.host, "block_migration": "auto"}}, nil
}

var _ servers.LiveMigrateOptsBuilder = liveMigrateAuto{}

// Locate returns the host a server runs on now.
func (m *Migrator) Locate(ctx context.Context, id string) (string, error) {
	s, err := servers.Get(ctx, m.compute, id).Extract()
	if err != nil {
		return "", fmt.Errorf("read server %s: %w", id, err)
	}
	return s.Host, nil
}

// Settle waits until Nova has no task in progress on server id (a live
// migration another replica started) and returns its host.
func (m *Migrator) Settle(ctx context.Context, id string) (string, error) {
	for {
		s, err := servers.Get(ctx, m.compute, id).Extract()
		if err != nil {
			return "", fmt.Errorf("read server %s: %w", id, err)
		}
		if s.TaskState == "" {
			return s.Host, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("server %s still %s: %w", id, s.TaskState, ctx.Err())
		case <-time.After(m.poll):
		}
	}
}

// Failed migration statuses (nova.objects.migration: "error" and "failed"
// from the compute and conductor, "cancelled" by an operator's abort).
var failedStatus = []string{"error", "failed", "cancelled"}

// LiveMigrate moves server id to host target and returns when Nova shows it
// there, ACTIVE with no task, or an error saying why not: the API refused
// it, the migration record ended in error (the scheduler's filters refused
// the host, the compute failed), the server went to ERROR, Nova completed
// it elsewhere, or ctx ended first (its deadline is the step timeout).
func (m *Migrator) LiveMigrate(ctx context.Context, id, target string) error {
	// Migrations of this server that exist already are not ours.
	seen, err := m.migrationIDs(ctx, id)
	if err != nil {
		return err
	}
	if err := servers.LiveMigrate(ctx, m.compute, id, liveMigrateAuto{host: target}).ExtractErr(); err != nil {
		return fmt.Errorf("Nova refused the live migration of %s to %s: %w", id, target, err)
	}
	var last string
	for {
		// The migration record first: Nova marks it completed after it has
		// moved the server, so a server read after it is never older.
		mig, err := m.ours(ctx, id, seen)
		if err != nil {
			return m.timedOut(ctx, err, last)
		}
		s, err := servers.Get(ctx, m.compute, id).Extract()
		if err != nil {
			return m.timedOut(ctx, fmt.Errorf("read server %s: %w", id, err), last)
		}
		last = fmt.Sprintf("server %s on %s, task %q", s.Status, s.Host, s.TaskState)
		if mig != nil {
			last += fmt.Sprintf(", migration %d %s", mig.ID, mig.Status)
		}
		switch {
		case s.Status == "ERROR":
			return fmt.Errorf("server %s went to ERROR during its live migration to %s%s", id, target, m.reason(ctx, id))
		case mig != nil && slices.Contains(failedStatus, mig.Status):
			return fmt.Errorf("Nova's live migration %d of %s to %s ended %q; the server is on %s%s",
				mig.ID, id, target, mig.Status, s.Host, m.reason(ctx, id))
		case s.Host == target && s.TaskState == "" && (s.Status == "ACTIVE" || s.Status == "PAUSED"):
			return nil
		case mig != nil && mig.Status == "completed" && s.TaskState == "" && s.Host != target:
			return fmt.Errorf("Nova completed the live migration of %s on %s, not on %s", id, s.Host, target)
		}
		select {
		case <-ctx.Done():
			return m.timedOut(ctx, ctx.Err(), last)
		case <-time.After(m.poll):
		}
	}
}

func (m *Migrator) timedOut(ctx context.Context, err error, last string) error {
	if ctx.Err() == nil || last == "" {
		return err
	}
	return fmt.Errorf("no outcome before the step's deadline (%w); last seen: %s", ctx.Err(), last)
}

// migrationIDs lists the ids of the server's live migrations.
func (m *Migrator) migrationIDs(ctx context.Context, id string) (map[int64]bool, error) {
	ms, err := m.migrations(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ms))
	for _, x := range ms {
		out[x.ID] = true
	}
	return out, nil
}

// ours is the newest live migration of the server that was not in seen.
func (m *Migrator) ours(ctx context.Context, id string, seen map[int64]bool) (*migrations.Migration, error) {
	ms, err := m.migrations(ctx, id)
	if err != nil {
		return nil, err
	}
	var best *migrations.Migration
	for i := range ms {
		if !seen[ms[i].ID] && (best == nil || ms[i].ID > best.ID) {
			best = &ms[i]
		}
	}
	return best, nil
}

func (m *Migrator) migrations(ctx context.Context, id string) ([]migrations.Migration, error) {
	typ := "live-migration"
	pages, err := migrations.List(m.compute, migrations.ListOpts{InstanceID: &id, MigrationType: &typ}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list migrations of %s: %w", id, err)
	}
	ms, err := migrations.ExtractMigrations(pages)
	if err != nil {
		return nil, fmt.Errorf("list migrations of %s: %w", id, err)
	}
	return ms, nil
}

// reason is the message of the server's latest live-migration action (Nova
// records the failure's cause there: "No valid host was found", ...), as
// ": <message>", or "" when none can be read.
func (m *Migrator) reason(ctx context.Context, id string) string {
	pages, err := instanceactions.List(m.compute, id, nil).AllPages(ctx)
	if err != nil {
		return ""
	}
	acts, err := instanceactions.ExtractInstanceActions(pages)
	if err != nil {
		return ""
	}
	for _, a := range acts { // newest first
		if a.Action != "live-migration" {
			continue
		}
		if a.Message != "" {
			return ": " + a.Message
		}
		d, err := instanceactions.Get(ctx, m.compute, id, a.RequestID).Extract()
		if err != nil {
			return ""
		}
		if d.Events == nil {
			return ""
		}
		for _, e := range *d.Events {
			if e.Result == "Error" && e.Traceback != "" {
				lines := strings.Split(strings.TrimSpace(e.Traceback), "\n")
				return ": " + e.Event + ": " + strings.TrimSpace(lines[len(lines)-1])
			}
		}
		return ""
	}
	return ""
}

// ServerGroup is a Nova server group: its rule and its members.
type ServerGroup struct {
	ID, Name string
	// Policy is affinity, anti-affinity, soft-affinity or soft-anti-affinity.
	Policy  string
	Members []string // server uuids
}

// ServerGroups lists the server groups of every project (admin).
func (m *Migrator) ServerGroups(ctx context.Context) ([]ServerGroup, error) {
	pages, err := servergroups.List(m.compute, servergroups.ListOpts{AllProjects: true}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list server groups: %w", err)
	}
	gs, err := servergroups.ExtractServerGroups(pages)
	if err != nil {
		return nil, fmt.Errorf("list server groups: %w", err)
	}
	out := make([]ServerGroup, 0, len(gs))
	for _, g := range gs {
		sg := ServerGroup{ID: g.ID, Name: g.Name, Members: g.Members}
		switch {
		case g.Policy != nil:
			sg.Policy = *g.Policy
		case len(g.Policies) > 0:
			sg.Policy = g.Policies[0]
		}
		out = append(out, sg)
	}
	return out, nil
}
