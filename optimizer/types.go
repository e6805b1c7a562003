package optimizer

// CurvePoints is the number of points of a SPECpower-style curve: active idle,
// then 10 %, 20 %, ... 100 % load.
const CurvePoints = 11

// PowerCurve holds average watts at active idle and at each 10 % load step.
type PowerCurve [CurvePoints]float64

// Model is a host model: an architecture entry of the knowledge base, or a
// default model for an ISA when the KB does not know a host.
type Model struct {
	Name     string
	ISA      string
	Cores    int // hardware threads that utilisation is measured against
	MemoryMB int64
	Curve    PowerCurve
	// Default is true when the model is the service's stand-in for an ISA,
	// not a KB entry for this host.
	Default bool
}

// Mode says how a tag's candidate list binds (seed §4.2.1).
type Mode int

const (
	// ModeHint: candidates are a preference list; if none of them can take
	// the instance, other hosts may.
	ModeHint Mode = iota
	// ModeExact: the tag pins one architecture; nothing else passes.
	ModeExact
)

// Candidate is one architecture (by KB name) or, when Architecture is empty,
// any host of ISA, that a tag may run on.
type Candidate struct {
	Architecture       string
	ISA                string
	Flavor             string
	PerformanceFactor  float64 // work per core-second relative to the tag's reference
	UtilizationCeiling float64 // 0 = the profile's ceiling
}

// Profile is a resolved workload tag.
type Profile struct {
	Tag                string
	Mode               Mode
	Candidates         []Candidate // in order of preference
	UtilizationCeiling float64     // 0 = none
	CPULoad            float64     // expected busy share of each vCPU; 0 = 1
}

// Host is one candidate compute node as the optimizer sees it.
type Host struct {
	Name     string
	Nodename string
	UUID     string
	ISA      string // from Nova's cpu_info arch; "" = unknown
	Model    *Model // never nil: the caller resolves a default

	VCPUsTotal   int
	VCPUsUsed    int
	CPURatio     float64 // 0 = 1
	TotalRAMMB   int64
	FreeRAMMB    int64
	RAMRatio     float64
	TotalDiskGB  int64
	FreeDiskMB   int64
	DiskRatio    float64
	NumInstances int

	// Utilization is the host's CPU utilisation in [0,1]. When not
	// UtilizationMeasured, it is estimated from vCPUs in use.
	Utilization         float64
	UtilizationMeasured bool
	// UsedCPULoad is the expected busy share of the vCPUs already in use,
	// when the caller knows it (from the tags of the instances on the host);
	// 0 = unknown, counted as 1. It only feeds the utilisation estimate.
	UsedCPULoad float64

	// MeasuredWatts is the host's power draw from a fresh node-agent sample
	// (RAPL or IPMI over NATS, through the live view, package hostview);
	// 0 = none. The live view has already scaled Model's curve (a private
	// copy) to agree with it at the current utilisation, so scorers need
	// only report it. Added for the live view (issue 4).
	MeasuredWatts float64
	// Stale marks a host the live view has not heard from within its
	// staleness limit: its measurements were dropped, and its utilisation
	// and power are the model's estimate. Added for the live view (issue 4).
	Stale bool
	// Disabled marks a host Nova would not schedule to: its compute service
	// is disabled, forced down or down. Nothing new arrives there.
	Disabled bool
	// Draining is the ID of the running rebalance plan that is emptying the
	// host, "" when none: nothing new arrives there while it runs.
	Draining string
}

// Request is one instance to place, reduced to what the optimizer needs.
type Request struct {
	Name     string
	VCPUs    int
	MemoryMB int64
	DiskGB   int64  // root + ephemeral (+ swap rounded up)
	ImageISA string // image hw_architecture, "" = any

	// Relax says how a hint-mode tag may be relaxed; the zero value judges
	// it among the hosts of the call, right for a boot. A move (a live or
	// cold migration, a resize, an evacuation, a plan step) sets it with
	// MoveRelax. See HintRelax.
	Relax HintRelax
	// Group is the instance's server group rule; the zero value has none.
	Group GroupRule
	// Busy is the busy cores the instance is known to use (a running
	// instance's measured share × its vCPUs) when BusyKnown; otherwise
	// VCPUs × the profile's CPU load stands in. It feeds the ceiling.
	Busy      float64
	BusyKnown bool
}

// HintRelax says whether a hint-mode tag may let an instance go to a host
// that is not one of its candidates.
type HintRelax int

const (
	// RelaxInCall: relaxed when no candidate host of the call can take the
	// instance (a boot: Nova's call holds every host it considers).
	RelaxInCall HintRelax = iota
	// RelaxNever: only candidates pass. Right for a move of an instance on
	// a candidate, and for a move when some candidate of the cluster can
	// take it: a move's call may hold one requested host, so "no other host
	// in the call" says nothing (see MoveRelax).
	RelaxNever
	// RelaxAllowed: non-candidates pass too; for a move when no candidate
	// host of the cluster can take the instance (see MoveRelax).
	RelaxAllowed
)

// GroupRule is a server group's hard policy as one request sees it: the
// hosts the group's other members run on (Nova's RequestSpec
// instance_group.hosts, less the moving instance's own host).
type GroupRule struct {
	Policy GroupPolicy
	Hosts  []string
}
