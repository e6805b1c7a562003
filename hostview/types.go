package hostview

import (
	"time"
)

// ServiceState is the state of a host's nova-compute service.
type ServiceState string

// Service states. Nova's notifications report disabled and forced_down
// changes (not heartbeats); a resync reads the servicegroup's up/down.
const (
	StateUnknown  ServiceState = ""         // known only from instances or samples
	StateUp       ServiceState = "up"       // enabled and not forced down
	StateDown     ServiceState = "down"     // forced down, or down at the last resync
	StateDisabled ServiceState = "disabled" // disabled by an operator
	StateDeleted  ServiceState = "deleted"  // the compute service was deleted
)

// Placeable reports whether Nova could schedule to a host in this state.
func (s ServiceState) Placeable() bool { return s == StateUp || s == StateUnknown }

// Flavor is the part of a Nova flavor the view needs.
type Flavor struct {
	Name        string `json:"name,omitempty"`
	VCPUs       int    `json:"vcpus"`
	MemoryMB    int64  `json:"memory_mb"`
	RootGB      int64  `json:"root_gb"`
	EphemeralGB int64  `json:"ephemeral_gb"`
	SwapMB      int64  `json:"swap_mb"`
}

// DiskGB is what Placement allocates for the flavor: root + ephemeral +
// swap rounded up to GB.
func (f Flavor) DiskGB() int64 { return f.RootGB + f.EphemeralGB + (f.SwapMB+1023)/1024 }

// Instance is one Nova instance as the view knows it.
type Instance struct {
	UUID    string `json:"uuid"`
	Name    string `json:"name,omitempty"`
	Host    string `json:"host,omitempty"` // "" when it has no host (shelved offloaded, not scheduled yet)
	Node    string `json:"node,omitempty"`
	Project string `json:"project,omitempty"`
	Flavor  Flavor `json:"flavor"`
	// Tag is the flavor's extra spec ecrae:tag, "" when none.
	Tag        string `json:"tag,omitempty"`
	State      string `json:"state,omitempty"`       // Nova vm_state
	PowerState string `json:"power_state,omitempty"` // Nova power_state, "" = unknown
	TaskState  string `json:"task_state,omitempty"`
	// Kind is KindContainer for a node agent's container, "" for a Nova
	// instance (a VM).
	Kind string `json:"kind,omitempty"`
	// Updated is the notification time of the last change applied (or the
	// start of the resync that last set it): later events for the instance
	// with an older time are stale.
	Updated time.Time `json:"updated"`
}

// consumes reports whether the instance holds resources on its host.
func (i *Instance) consumes() bool {
	return i.Host != "" && i.State != "deleted" && i.State != "shelved_offloaded"
}

// busy reports whether the instance's vCPUs are expected to do work: it is
// running (or, when the power state is unknown, in a running vm_state).
func (i *Instance) busy() bool {
	if !i.consumes() {
		return false
	}
	if i.PowerState != "" {
		return i.PowerState == "running"
	}
	switch i.State {
	case "active", "building", "rescued", "resized", "":
		return true
	}
	return false
}

// Capacity is a host's inventory, as Placement reports it.
type Capacity struct {
	VCPUs            int     `json:"vcpus"`
	VCPUsReserved    int     `json:"vcpus_reserved,omitempty"`
	CPURatio         float64 `json:"cpu_ratio,omitempty"`
	MemoryMB         int64   `json:"memory_mb"`
	MemoryMBReserved int64   `json:"memory_mb_reserved,omitempty"`
	RAMRatio         float64 `json:"ram_ratio,omitempty"`
	DiskGB           int64   `json:"disk_gb"`
	DiskGBReserved   int64   `json:"disk_gb_reserved,omitempty"`
	DiskRatio        float64 `json:"disk_ratio,omitempty"`
}

// Known reports whether the capacity was ever read (Placement or Nova).
func (c Capacity) Known() bool { return c.VCPUs > 0 || c.MemoryMB > 0 }

// Usage is what instances hold on a host.
type Usage struct {
	VCPUs    int   `json:"vcpus"`
	MemoryMB int64 `json:"memory_mb"`
	DiskGB   int64 `json:"disk_gb"`
}

// TagVCPUs is the number of running vCPUs of one workload tag on a host.
type TagVCPUs struct {
	Tag   string `json:"tag"`
	VCPUs int    `json:"vcpus"`
}

// Measurement is one measured value and when it was taken; a zero At means
// none.
type Measurement struct {
	Value float64   `json:"value"`
	At    time.Time `json:"at"`
}

// Has reports whether there is a measurement.
func (m Measurement) Has() bool { return !m.At.IsZero() }

// Host is one compute host as the view knows it. In a Snapshot every field
// is a copy: nothing in it changes afterwards.
type Host struct {
	Name           string       `json:"name"`
	Nodename       string       `json:"nodename,omitempty"`
	UUID           string       `json:"uuid,omitempty"` // Placement resource provider
	ISA            string       `json:"isa,omitempty"`  // from Nova's cpu_info arch
	HypervisorType string       `json:"hypervisor_type,omitempty"`
	Service        ServiceState `json:"service,omitempty"`
	DisabledReason string       `json:"disabled_reason,omitempty"`
	// Compute is true when Nova knows the host as a compute node (service,
	// instance or metrics event, or a resync), not only a node agent's
	// samples.
	Compute bool `json:"compute,omitempty"`
	// Containers is true once a node agent has reported its containers
	// here, even none: the node runs a container runtime and can receive
	// a container move while empty.
	Containers bool `json:"containers,omitempty"`
	// Draining is the ID of the running rebalance plan that is emptying
	// the host, "" when none: the filter chain sends nothing there (boots
	// and plan moves alike).
	Draining string `json:"draining,omitempty"`

	// Capacity from Placement at the last resync; zero when unknown (the
	// service runs on events alone): the KB's model stands in.
	Capacity Capacity `json:"capacity"`
	// PlacementUsage is Placement's usage at the last resync.
	PlacementUsage Usage `json:"placement_usage"`
	// Usage, Instances and Busy are summed live from the instances the view
	// knows on this host.
	Usage     Usage      `json:"usage"`
	Instances int        `json:"instances"`
	Busy      []TagVCPUs `json:"busy,omitempty"` // running vCPUs by tag, sorted by tag

	// CPU is the CPU utilisation share in [0,1] from Nova's metrics.update
	// (cpu.percent), Utilization, Demand and Watts from the node agent's
	// samples. Demand is the CPU asked for, a share that exceeds 1 when the
	// host is asked for more than it has.
	CPU         Measurement `json:"cpu"`
	Utilization Measurement `json:"utilization"`
	Demand      Measurement `json:"demand,omitzero"`
	Watts       Measurement `json:"watts"`

	// LastSeen is when the host was last heard from.
	LastSeen time.Time `json:"last_seen"`
}

// Kind of an Event: which of its fields is set.
type Kind uint8

// Event kinds.
const (
	KindNone       Kind = iota // nothing to apply (a no-op, e.g. live_migration_post.end)
	KindInstance               // Instance
	KindService                // Service
	KindMetrics                // Metrics: Nova's metrics.update
	KindPower                  // Power: a node agent's sample
	KindContainers             // Containers: a node agent's container list
)

// KindContainer is Instance.Kind of a container reported by a node agent
// (ecrae agent --containers); it is moved by the agents, not Nova.
const KindContainer = "container"

// ContainerReport is a node agent's list of the containers running on its
// host: it replaces the host's containers in the view (one that is not in
// it has stopped or left).
type ContainerReport struct {
	Host string
	At   time.Time
	// Arch is the node's ISA (uname -m), the host's when Nova gave none.
	Arch string
	// Instances have Kind KindContainer and Host set.
	Instances []Instance
}

// InstanceOp says what an instance event does.
type InstanceOp uint8

// Instance operations.
const (
	// OpUpsert sets the instance's host, node, flavor and states from the
	// payload (create, move, resize, rebuild, shelve, power on/off).
	OpUpsert InstanceOp = iota
	// OpDelete removes the instance.
	OpDelete
)

// InstanceChange is an instance notification reduced to what the view
// keeps.
type InstanceChange struct {
	Op       InstanceOp
	Instance Instance // Updated is ignored: the Event's Timestamp is used
	// HasFlavor is false when the payload carried no flavor: the one the
	// view has is kept.
	HasFlavor bool
}

// ServiceChange is a service notification (service.create/update/delete).
type ServiceChange struct {
	Host           string
	Binary         string
	Disabled       bool
	DisabledReason string
	ForcedDown     bool
	Deleted        bool
}

// MetricsSample is Nova's metrics.update: cpu.percent as a share.
type MetricsSample struct {
	Host     string
	Nodename string
	CPU      float64
	HasCPU   bool
	At       time.Time // the metric's own time; the Event's when absent
}

// PowerSample is a node agent's sample on ecrae.metrics.<host>.
type PowerSample struct {
	Host        string
	At          time.Time
	Watts       float64
	HasWatts    bool
	Utilization float64
	HasUtil     bool
	// Demand: the CPU asked for, a share of the CPUs that may exceed 1
	// (events.Sample.CPUDemand).
	Demand    float64
	HasDemand bool
	// Source is where the agent read the watts ("" = not said).
	Source string
}

// SourceRAPL is the sample source whose watts cover the CPU packages and
// DRAM only, not the whole node: they are not fitted into a host's power
// curve, which is wall power.
const SourceRAPL = "rapl"

// Event is one decoded notification or sample.
type Event struct {
	Kind Kind
	// Type is Nova's event_type, or "ecrae.metrics" for a power sample.
	Type string
	// MessageID identifies the message for de-duplication; "" = none.
	MessageID string
	// Timestamp is when Nova (or the agent) emitted it: it orders events.
	Timestamp time.Time
	// Publisher is the host of the nova-compute service that emitted it, ""
	// when another service did: a compute's own event shows it is alive.
	Publisher string

	Instance   InstanceChange
	Service    ServiceChange
	Metrics    MetricsSample
	Power      PowerSample
	Containers ContainerReport
}

// Outcome is what Apply did with an event.
type Outcome uint8

// Outcomes.
const (
	Applied     Outcome = iota
	Duplicate           // its message_id was applied already
	Stale               // older than what the view has for its instance or host
	Ignored             // not about a compute host (another binary), or nothing to do
	UnknownHost         // a node sample for a host the view does not know: not created
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Ignored:
		return "ignored"
	case UnknownHost:
		return "unknown_host"
	}
	return "unknown"
}
