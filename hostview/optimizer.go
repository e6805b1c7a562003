package hostview

import (
	"math"
	"strconv"
	"time"

	"github.com/ecrae/ecrae/optimizer"
)

// LoadFunc gives a workload tag's expected busy share of each vCPU (the KB
// profile's CPULoad); a value outside (0, 1] counts as 1.
type LoadFunc func(tag string) float64

// unknownDiskGB stands for "no disk limit known": 1 PB.
const unknownDiskGB = 1 << 20

// A measured power reading scales the model's curve by at most this factor
// either way: a reading further off is more likely a broken sensor (or a
// host the KB names wrongly) than a host that far from its model.
const (
	minScale = 0.25
	maxScale = 4
)

// allStopped is the UsedCPULoad of a host whose instances are all stopped:
// optimizer.Host reads 0 as "unknown, count as 1".
const allStopped = 1e-3

// Base builds an optimizer host from the view alone: sized by Placement's
// inventory, or by the model when the view has no capacity (the service
// runs on events alone), and loaded with the instances the view knows.
func Base(h *Host, m *optimizer.Model) optimizer.Host {
	oh := optimizer.Host{
		Name: h.Name, Nodename: first(h.Nodename, h.Name), UUID: h.UUID, ISA: h.ISA, Model: m,
		NumInstances: h.Instances, VCPUsUsed: h.Usage.VCPUs,
	}
	if c := h.Capacity; c.Known() {
		oh.VCPUsTotal, oh.CPURatio = c.VCPUs-c.VCPUsReserved, c.CPURatio
		oh.TotalRAMMB, oh.RAMRatio = c.MemoryMB-c.MemoryMBReserved, c.RAMRatio
		oh.TotalDiskGB, oh.DiskRatio = c.DiskGB-c.DiskGBReserved, c.DiskRatio
		if c.DiskGB == 0 {
			oh.TotalDiskGB, oh.DiskRatio = unknownDiskGB, 1
		}
	} else if m != nil {
		oh.VCPUsTotal, oh.CPURatio = m.Cores, 1
		oh.TotalRAMMB, oh.RAMRatio = m.MemoryMB, 1
		oh.TotalDiskGB, oh.DiskRatio = unknownDiskGB, 1
	}
	oh.FreeRAMMB = oh.TotalRAMMB - h.Usage.MemoryMB
	oh.FreeDiskMB = (oh.TotalDiskGB - h.Usage.DiskGB) * 1024
	return oh
}

// Note says what the live view did to one host's inputs, for explanations.
type Note struct {
	Stale bool
	Heard bool
	Since time.Duration
	Limit time.Duration
	// UtilSource names where a measured utilisation came from ("node
	// agent", "nova cpu.percent"); "" when the view set none.
	UtilSource string
	// MeasuredWatts > 0: the node agent's reading; ModelWatts the model's
	// estimate at the same utilisation; Scale the factor applied to the
	// curve (0 = not applied).
	MeasuredWatts, ModelWatts, Scale float64
}

// String is the note as one clause, "" when there is nothing to say. It is
// built with strconv, not fmt: it runs for every host of an explained
// weigher pass.
func (n Note) String() string {
	b := make([]byte, 0, 96)
	switch {
	case n.Stale && n.Heard:
		b = append(b, "live view: stale, last heard "...)
		b = append(b, round(n.Since).String()...)
		b = append(b, " ago (limit "...)
		b = append(b, n.Limit.String()...)
		b = append(b, "): model estimate"...)
	case n.Stale:
		b = append(b, "live view: never heard from the host: model estimate"...)
	case n.MeasuredWatts > 0 && n.Scale > 0:
		b = append(b, "live view: "...)
		b = strconv.AppendFloat(b, n.MeasuredWatts, 'f', 1, 64)
		b = append(b, " W measured vs "...)
		b = strconv.AppendFloat(b, n.ModelWatts, 'f', 1, 64)
		b = append(b, " W modelled at this load: curve scaled x"...)
		b = strconv.AppendFloat(b, n.Scale, 'f', 2, 64)
		if n.Scale == minScale || n.Scale == maxScale {
			b = append(b, " (limit)"...)
		}
	case n.MeasuredWatts > 0:
		b = append(b, "live view: "...)
		b = strconv.AppendFloat(b, n.MeasuredWatts, 'f', 1, 64)
		b = append(b, " W measured (no model estimate to scale)"...)
	}
	if n.UtilSource != "" && !n.Stale {
		if len(b) == 0 {
			b = append(b, "live view: "...)
		} else {
			b = append(b, "; "...)
		}
		b = append(b, "utilisation from "...)
		b = append(b, n.UtilSource...)
	}
	if len(b) == 0 {
		return ""
	}
	return string(b)
}

func round(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// Enrich applies what the view knows of h to oh (a host built from Nova's
// HostState, or by Base): the instance mix (UsedCPULoad), measured
// utilisation and power when fresh, and staleness. A stale host keeps
// only what oh already had: its view measurements are not used.
func Enrich(oh *optimizer.Host, h *Host, fr Freshness, load LoadFunc) Note {
	n := Note{Stale: fr.Stale, Heard: fr.Heard, Since: fr.Since, Limit: fr.Limit}
	oh.Stale = fr.Stale
	// Nova may not know yet what the view knows: the rules refuse a
	// disabled or down host, and one a running plan is emptying.
	oh.Disabled = !h.Service.Placeable()
	oh.Draining = h.Draining
	if h.Usage.VCPUs > 0 && load != nil {
		busy := 0.0
		for _, b := range h.Busy {
			busy += float64(b.VCPUs) * share(load(b.Tag))
		}
		oh.UsedCPULoad = max(allStopped, math.Min(1, busy/float64(h.Usage.VCPUs)))
	}
	switch {
	case fr.Utilization:
		oh.Utilization, oh.UtilizationMeasured = clamp01(h.Utilization.Value), true
		n.UtilSource = "node agent"
	case fr.CPU && !oh.UtilizationMeasured:
		oh.Utilization, oh.UtilizationMeasured = clamp01(h.CPU.Value), true
		n.UtilSource = "nova cpu.percent"
	}
	if fr.Watts && h.Watts.Value > 0 {
		n.MeasuredWatts, oh.MeasuredWatts = h.Watts.Value, h.Watts.Value
		var est float64
		if oh.Model != nil {
			u, _ := oh.CurrentUtilization()
			est = oh.Model.Curve.Watts(u)
			n.ModelWatts = est
		}
		if est > 0 {
			k := math.Min(maxScale, math.Max(minScale, h.Watts.Value/est))
			m := *oh.Model // the catalog's model is shared: scale a copy
			for i := range m.Curve {
				m.Curve[i] *= k
			}
			oh.Model = &m
			n.Scale = k
		}
	}
	return n
}

func share(x float64) float64 {
	if x > 0 && x < 1 {
		return x
	}
	return 1
}

func clamp01(x float64) float64 {
	if !(x > 0) {
		return 0
	}
	return math.Min(1, x)
}
