package openstack

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
)

// FlavorSpec is a flavor as the knowledge base wants it in Nova: sizes
// and the extra specs to set (ecrae:tag among them).
type FlavorSpec struct {
	Name                 string
	VCPUs, RAMMB, DiskGB int
	EphemeralGB, SwapMB  int
	ExtraSpecs           map[string]string
}

// What a flavor sync does to one flavor.
const (
	FlavorCreate    = "create"    // Nova has no flavor of that name
	FlavorSetSpecs  = "set-specs" // same sizes; extra specs missing or different
	FlavorUnchanged = "unchanged" // Nova's flavor is what the KB says
	FlavorConflict  = "conflict"  // same name, other sizes: Nova's flavors are immutable, left alone
)

// FlavorAction is one flavor's part of a sync.
type FlavorAction struct {
	Name   string
	Op     string
	NovaID string
	// Specs are the extra specs set (create, set-specs): only those
	// missing or different in Nova.
	Specs map[string]string
	// Detail says what differs (set-specs, conflict).
	Detail string
	want   FlavorSpec
}

// PlanFlavorSync compares the wanted flavors with Nova's (public and
// private) and says what a sync would do, without changing anything.
func PlanFlavorSync(ctx context.Context, compute *gophercloud.ServiceClient, want []FlavorSpec) ([]FlavorAction, error) {
	pages, err := flavors.ListDetail(compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list Nova flavors: %w", err)
	}
	have, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return nil, fmt.Errorf("list Nova flavors: %w", err)
	}
	byName := map[string]flavors.Flavor{}
	for _, f := range have {
		byName[f.Name] = f
	}
	var out []FlavorAction
	for _, w := range want {
		f, ok := byName[w.Name]
		if !ok {
			out = append(out, FlavorAction{Name: w.Name, Op: FlavorCreate, Specs: w.ExtraSpecs, want: w})
			continue
		}
		a := FlavorAction{Name: w.Name, NovaID: f.ID, want: w}
		var diffs []string
		for _, d := range []struct {
			what     string
			nova, kb int
		}{{"vcpus", f.VCPUs, w.VCPUs}, {"ram MB", f.RAM, w.RAMMB}, {"disk GB", f.Disk, w.DiskGB},
			{"ephemeral GB", f.Ephemeral, w.EphemeralGB}, {"swap MB", f.Swap, w.SwapMB}} {
			if d.nova != d.kb {
				diffs = append(diffs, fmt.Sprintf("%s %d in Nova, %d in the KB", d.what, d.nova, d.kb))
			}
		}
		if len(diffs) > 0 {
			a.Op, a.Detail = FlavorConflict, strings.Join(diffs, ", ")
			out = append(out, a)
			continue
		}
		specs := f.ExtraSpecs
		if specs == nil { // before compute 2.61, or hidden by policy: ask
			if specs, err = flavors.ListExtraSpecs(ctx, compute, f.ID).Extract(); err != nil {
				return nil, fmt.Errorf("extra specs of Nova flavor %s: %w", f.Name, err)
			}
		}
		a.Specs = map[string]string{}
		var changed []string
		for _, k := range slices.Sorted(maps.Keys(w.ExtraSpecs)) {
			if v, ok := specs[k]; !ok || v != w.ExtraSpecs[k] {
				a.Specs[k] = w.ExtraSpecs[k]
				if ok {
					changed = append(changed, fmt.Sprintf("%s %q → %q", k, v, w.ExtraSpecs[k]))
				} else {
					changed = append(changed, fmt.Sprintf("%s = %q", k, w.ExtraSpecs[k]))
				}
			}
		}
		a.Op = FlavorUnchanged
		if len(a.Specs) > 0 {
			a.Op, a.Detail = FlavorSetSpecs, strings.Join(changed, ", ")
		}
		out = append(out, a)
	}
	return out, nil
}

// ApplyFlavorSync does what PlanFlavorSync planned: creates the missing
// flavors (public, with their extra specs) and sets the extra specs of the
// others. Conflicts are left alone. It stops at the first error, which
// names the flavor; what was done before it stays done (each step is one
// Nova call, and running the sync again finishes the rest).
func ApplyFlavorSync(ctx context.Context, compute *gophercloud.ServiceClient, actions []FlavorAction) error {
	for i := range actions {
		a := &actions[i]
		switch a.Op {
		case FlavorCreate:
			w := a.want
			f, err := flavors.Create(ctx, compute, flavors.CreateOpts{Name: w.Name, VCPUs: w.VCPUs, RAM: w.RAMMB, Disk: &w.DiskGB,
				Ephemeral: &w.EphemeralGB, Swap: &w.SwapMB}).Extract()
			if err != nil {
				return fmt.Errorf("create Nova flavor %s: %w", w.Name, err)
			}
			a.NovaID = f.ID
			if len(a.Specs) == 0 {
				continue
			}
			if _, err := flavors.CreateExtraSpecs(ctx, compute, f.ID, flavors.ExtraSpecsOpts(a.Specs)).Extract(); err != nil {
				return fmt.Errorf("extra specs of new Nova flavor %s: %w", w.Name, err)
			}
		case FlavorSetSpecs:
			// POST os-extra_specs adds and overwrites the keys given, and
			// keeps the others.
			if _, err := flavors.CreateExtraSpecs(ctx, compute, a.NovaID, flavors.ExtraSpecsOpts(a.Specs)).Extract(); err != nil {
				return fmt.Errorf("extra specs of Nova flavor %s: %w", a.Name, err)
			}
		}
	}
	return nil
}
