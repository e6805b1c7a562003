package hostview

import "time"

// HostInventory is one compute host as Nova and Placement report it.
type HostInventory struct {
	Name           string // the nova-compute service's host
	Nodename       string // hypervisor_hostname, the resource provider's name
	UUID           string // the resource provider (= compute node) uuid
	ISA            string
	HypervisorType string
	// State is the servicegroup's "up" or "down"; "" = unknown.
	State          string
	Disabled       bool
	DisabledReason string
	Capacity       Capacity
	Usage          Usage // Placement's usages
}

// Inventory is a full read of Nova and Placement.
type Inventory struct {
	// At is when the reads began: an event the view applied with a later
	// timestamp is newer than the inventory and wins.
	At        time.Time
	Hosts     []HostInventory
	Instances []Instance // Updated is ignored
}

// Drift is what a resync found different from the view, by kind.
type Drift struct {
	HostsAdded       int `json:"hosts_added"`
	HostsRemoved     int `json:"hosts_removed"`
	HostsChanged     int `json:"hosts_changed"` // capacity, service state, ISA
	InstancesAdded   int `json:"instances_added"`
	InstancesRemoved int `json:"instances_removed"`
	InstancesMoved   int `json:"instances_moved"`
	InstancesChanged int `json:"instances_changed"` // flavor or state
	// UsageMismatch counts hosts whose Placement usage differs from the sum
	// of the instances on them after the resync (migrations in flight hold
	// allocations on two hosts: some of it is expected).
	UsageMismatch int `json:"usage_mismatch"`
}

// Total is the number of differences corrected (UsageMismatch excluded:
// it is reported, not corrected).
func (d Drift) Total() int {
	return d.HostsAdded + d.HostsRemoved + d.HostsChanged + d.InstancesAdded +
		d.InstancesRemoved + d.InstancesMoved + d.InstancesChanged
}

// ByKind lists the counts under stable names (for metrics and logs).
func (d Drift) ByKind() map[string]int {
	return map[string]int{
		"host_added": d.HostsAdded, "host_removed": d.HostsRemoved, "host_changed": d.HostsChanged,
		"instance_added": d.InstancesAdded, "instance_removed": d.InstancesRemoved,
		"instance_moved": d.InstancesMoved, "instance_changed": d.InstancesChanged,
		"usage_mismatch": d.UsageMismatch,
	}
}

// Reconcile makes the view agree with inv, except where an event newer than
// inv.At was applied, and reports what differed.
func (v *View) Reconcile(inv Inventory) Drift {
	v.mu.Lock()
	defer v.mu.Unlock()
	gen := v.version.Load() + 1
	defer v.version.Store(gen)
	at := inv.At
	var d Drift
	// Hosts Nova was known to have before: instances placed below create
	// host records, and those are no less new.
	known := make(map[string]bool, len(v.hosts))
	for name, r := range v.hosts {
		known[name] = r.h.Compute
	}

	listed := make(map[string]bool, len(inv.Instances))
	for k := range inv.Instances {
		n := inv.Instances[k]
		listed[n.UUID] = true
		if t, ok := v.tomb[n.UUID]; ok && t.After(at) {
			continue // deleted by an event after the read began
		}
		old := v.insts[n.UUID]
		if old != nil && old.Updated.After(at) {
			continue // an event after the read began knows better
		}
		n.Updated = at
		switch {
		case old == nil:
			d.InstancesAdded++
			p := n
			v.insts[n.UUID] = &p
			v.account(&p, gen)
			continue
		case old.Host != n.Host:
			d.InstancesMoved++
		case old.Flavor != n.Flavor || old.State != n.State || old.PowerState != n.PowerState || old.Tag != n.Tag:
			d.InstancesChanged++
		}
		v.unaccount(old, gen)
		*old = n
		v.account(old, gen)
	}
	for uuid, i := range v.insts {
		// Containers are the node agents' to report, not Nova's.
		if listed[uuid] || i.Updated.After(at) || i.Kind == KindContainer {
			continue
		}
		d.InstancesRemoved++
		v.unaccount(i, gen)
		delete(v.insts, uuid)
		v.addTomb(uuid, at)
	}

	seen := make(map[string]bool, len(inv.Hosts))
	for k := range inv.Hosts {
		hi := &inv.Hosts[k]
		seen[hi.Name] = true
		existed := known[hi.Name]
		if !existed {
			d.HostsAdded++
		}
		r := v.host(hi.Name, gen)
		r.gen = gen
		before := r.h
		r.h.Compute = true
		r.h.Nodename = first(hi.Nodename, r.h.Nodename)
		r.h.UUID = first(hi.UUID, r.h.UUID)
		r.h.ISA = first(hi.ISA, r.h.ISA)
		r.h.HypervisorType = first(hi.HypervisorType, r.h.HypervisorType)
		r.h.Capacity = hi.Capacity
		r.h.PlacementUsage = hi.Usage
		if !r.svcAt.After(at) {
			r.svcAt = at
			r.h.DisabledReason = ""
			switch {
			case hi.State == "down":
				r.h.Service = StateDown
			case hi.Disabled:
				r.h.Service, r.h.DisabledReason = StateDisabled, hi.DisabledReason
			case hi.State == "up":
				r.h.Service = StateUp
			}
		}
		if hi.State == "up" && at.After(r.h.LastSeen) {
			r.h.LastSeen = at
		}
		if existed && (before.Capacity != r.h.Capacity && before.Capacity.Known() ||
			before.Service != r.h.Service && before.Service != StateUnknown || before.ISA != r.h.ISA && before.ISA != "") {
			d.HostsChanged++
		}
		if r.h.Usage.VCPUs != hi.Usage.VCPUs || r.h.Usage.MemoryMB != hi.Usage.MemoryMB {
			d.UsageMismatch++
		}
	}
	for name, r := range v.hosts {
		// Hosts known only from a node agent's samples are not Nova's to
		// remove; hosts that still hold instances an event placed stay.
		if seen[name] || !r.h.Compute || r.h.Instances > 0 || r.svcAt.After(at) || r.h.LastSeen.After(at) || r.h.Service == StateDeleted {
			continue
		}
		d.HostsRemoved++
		delete(v.hosts, name)
		v.names = nil
	}
	return d
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
