package server

import (
	"encoding/json"
	"fmt"
	"github.com/ecrae/ecrae/catalog"
	"math"
	"slices"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// Where a tag can come from, in the order they are tried.
const (
	tagExtraSpec = "ecrae:tag"
	tagHint      = "ecrae_tag"
)

func invalid(field, format string, args ...any) error {
	return catalog.Invalid(field, format, args...)
}

// resolveTag finds the instance's workload tag and says where it came from.
func resolveTag(ir *ecraev1.InstanceRequest, defaultTag string) (tag, source string) {
	if ir.GetTag() != "" {
		return ir.GetTag(), "request"
	}
	if t := ir.GetFlavor().GetExtraSpecs()[tagExtraSpec]; t != "" {
		return t, "flavor extra spec " + tagExtraSpec
	}
	if h := ir.GetSchedulerHints()[tagHint]; h != nil && len(h.GetValues()) > 0 && h.GetValues()[0] != "" {
		return h.GetValues()[0], "scheduler hint " + tagHint
	}
	return defaultTag, "default"
}

// convertInstance validates one request and turns it into optimizer inputs. field
// names the request in errors ("instance", "instances[2]").
func convertInstance(c *catalog.Catalog, ir *ecraev1.InstanceRequest, field, defaultTag string) (optimizer.Request, optimizer.Profile, string, string, error) {
	var none optimizer.Request
	if ir == nil {
		return none, optimizer.Profile{}, "", "", invalid(field, "required")
	}
	fl := ir.GetFlavor()
	if fl == nil {
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor", "required")
	}
	if fl.GetVcpus() == 0 && fl.GetName() != "" {
		// A flavor given by name only is taken from the knowledge base.
		kf, ok := c.Flavor(fl.GetName())
		if !ok {
			return none, optimizer.Profile{}, "", "", invalid(field+".flavor.name", "unknown flavor %s (give vcpus and memory_mb, or a flavor of the knowledge base)", quote.Value(fl.GetName()))
		}
		fl = &ecraev1.Flavor{
			Name: kf.Name, Vcpus: int32(kf.VCPUs), MemoryMb: kf.MemoryMB, RootGb: kf.RootGB,
			EphemeralGb: kf.EphemeralGB, SwapMb: kf.SwapMB, ExtraSpecs: mergeSpecs(kf.ExtraSpecs, fl.GetExtraSpecs()),
		}
		ir = &ecraev1.InstanceRequest{Name: ir.GetName(), Flavor: fl, ImageProperties: ir.GetImageProperties(),
			SchedulerHints: ir.GetSchedulerHints(), Tag: ir.GetTag()}
	}
	switch {
	case fl.GetVcpus() <= 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor.vcpus", "must be positive, got %d", fl.GetVcpus())
	case fl.GetMemoryMb() <= 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor.memory_mb", "must be positive, got %d", fl.GetMemoryMb())
	case fl.GetRootGb() < 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor.root_gb", "must not be negative, got %d", fl.GetRootGb())
	case fl.GetEphemeralGb() < 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor.ephemeral_gb", "must not be negative, got %d", fl.GetEphemeralGb())
	case fl.GetSwapMb() < 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".flavor.swap_mb", "must not be negative, got %d", fl.GetSwapMb())
	case ir.GetNumInstances() < 0:
		return none, optimizer.Profile{}, "", "", invalid(field+".num_instances", "must not be negative, got %d", ir.GetNumInstances())
	}
	tag, source := resolveTag(ir, defaultTag)
	prof, ok := c.Profile(tag)
	if !ok {
		if source != "default" {
			return none, optimizer.Profile{}, "", "", invalid(field+".tag", "unknown tag %s (from %s)", quote.Value(tag), source)
		}
		// No default profile in the KB: every host is a candidate at factor 1.
		prof = optimizer.Profile{Tag: tag}
	}
	req := optimizer.Request{
		Name:     ir.GetName(),
		VCPUs:    int(fl.GetVcpus()),
		MemoryMB: fl.GetMemoryMb(),
		DiskGB:   fl.GetRootGb() + fl.GetEphemeralGb() + (fl.GetSwapMb()+1023)/1024,
		ImageISA: ir.GetImageProperties()["hw_architecture"],
	}
	return req, prof, tag, source, nil
}

func mergeSpecs(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// convertHosts validates Nova's host states (their number is checked by
// Server.resolveHosts) and resolves each one's model, into buf when it is
// large enough. memo (nil, or one per host) holds the conversions of
// remembered states: reused for this KB revision, stored otherwise.
func convertHosts(c *catalog.Catalog, in []*ecraev1.HostState, buf []optimizer.Host, memo []*held) ([]optimizer.Host, error) {
	out := slices.Grow(buf[:0], len(in))[:len(in)]
	// Hosts of one model share their cpu_info string: decode each once.
	arches := map[string]string{}
	for i, h := range in {
		var e *held
		if memo != nil {
			e = memo[i]
		}
		if e != nil {
			if cv := e.conv.Load(); cv != nil && cv.revision == c.Revision() {
				out[i] = cv.host
				continue
			}
		}
		if err := checkHost(h, i); err != nil {
			return nil, err
		}
		isa, seen := arches[h.GetCpuInfo()]
		if !seen {
			isa = cpuInfoArch(h.GetCpuInfo())
			arches[h.GetCpuInfo()] = isa
		}
		oh := &out[i]
		*oh = optimizer.Host{
			Name: h.GetHost(), Nodename: h.GetNodename(), UUID: h.GetUuid(), ISA: isa,
			VCPUsTotal: int(h.GetVcpusTotal()), VCPUsUsed: int(h.GetVcpusUsed()), CPURatio: h.GetCpuAllocationRatio(),
			TotalRAMMB: h.GetTotalUsableRamMb(), FreeRAMMB: h.GetFreeRamMb(), RAMRatio: h.GetRamAllocationRatio(),
			TotalDiskGB: h.GetTotalUsableDiskGb(), FreeDiskMB: h.GetFreeDiskMb(), DiskRatio: h.GetDiskAllocationRatio(),
			NumInstances: int(h.GetNumInstances()),
		}
		if h.DiskMbUsed != nil {
			oh.FreeDiskMB = oh.TotalDiskGB*1024 - h.GetDiskMbUsed()
		}
		oh.Model = c.ModelFor(oh.Name, oh.Nodename, isa, oh.VCPUsTotal)
		if p, ok := h.GetMetrics()["cpu.percent"]; ok {
			// Nova's cpu.virt_driver monitor reports an integer percentage.
			oh.Utilization = math.Min(1, math.Max(0, p/100))
			oh.UtilizationMeasured = true
		}
		if e != nil {
			e.conv.Store(&converted{revision: c.Revision(), host: *oh})
		}
	}
	return out, nil
}

func checkHost(h *ecraev1.HostState, i int) error {
	f := func(name string) string { return fmt.Sprintf("hosts[%d].%s", i, name) }
	switch {
	case h == nil:
		return invalid(fmt.Sprintf("hosts[%d]", i), "required")
	case h.GetHost() == "":
		return invalid(f("host"), "required")
	case h.GetVcpusTotal() < 0:
		return invalid(f("vcpus_total"), "must not be negative, got %d", h.GetVcpusTotal())
	case h.GetVcpusUsed() < 0:
		return invalid(f("vcpus_used"), "must not be negative, got %d", h.GetVcpusUsed())
	case h.GetTotalUsableRamMb() < 0:
		return invalid(f("total_usable_ram_mb"), "must not be negative, got %d", h.GetTotalUsableRamMb())
	case h.GetTotalUsableDiskGb() < 0:
		return invalid(f("total_usable_disk_gb"), "must not be negative, got %d", h.GetTotalUsableDiskGb())
	case h.GetDiskMbUsed() < 0:
		return invalid(f("disk_mb_used"), "must not be negative, got %d", h.GetDiskMbUsed())
	case h.GetNumInstances() < 0:
		return invalid(f("num_instances"), "must not be negative, got %d", h.GetNumInstances())
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"cpu_allocation_ratio", h.GetCpuAllocationRatio()}, {"ram_allocation_ratio", h.GetRamAllocationRatio()}, {"disk_allocation_ratio", h.GetDiskAllocationRatio()}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) || r.v < 0 {
			return invalid(f(r.name), "must be a finite non-negative number, got %v", r.v)
		}
	}
	for k, v := range h.GetMetrics() {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return invalid(f("metrics["+quote.Value(k)+"]"), "must be finite, got %v", v)
		}
	}
	return nil
}

// cpuInfoArch reads "arch" from Nova's cpu_info JSON; an empty or unreadable
// cpu_info means the ISA is unknown.
func cpuInfoArch(ci string) string {
	if ci == "" || !strings.Contains(ci, `"arch"`) {
		return ""
	}
	var v struct {
		Arch string `json:"arch"`
	}
	if json.Unmarshal([]byte(ci), &v) != nil {
		return ""
	}
	return v.Arch
}
