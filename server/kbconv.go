package server

import (
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

func tagToProto(t kbstore.Tag) *ecraev1.Tag {
	p := &ecraev1.Tag{Name: t.Name, Description: t.Description, Mode: ecraev1.TagMode_TAG_MODE_HINT,
		UtilizationCeiling: t.UtilizationCeiling, CpuLoad: t.CPULoad, Source: t.Source}
	if t.Mode == "exact" {
		p.Mode = ecraev1.TagMode_TAG_MODE_EXACT
	}
	for _, c := range t.Candidates {
		p.Candidates = append(p.Candidates, &ecraev1.Candidate{Architecture: c.Architecture, Isa: c.ISA, Flavor: c.Flavor,
			PerformanceFactor: c.PerformanceFactor, UtilizationCeiling: c.UtilizationCeiling, Note: c.Note})
	}
	return p
}

func tagFromProto(p *ecraev1.Tag) kbstore.Tag {
	t := kbstore.Tag{Name: p.GetName(), Description: p.GetDescription(), Mode: "hint",
		UtilizationCeiling: p.GetUtilizationCeiling(), CPULoad: p.GetCpuLoad(), Source: p.GetSource()}
	if p.GetMode() == ecraev1.TagMode_TAG_MODE_EXACT {
		t.Mode = "exact"
	}
	for _, c := range p.GetCandidates() {
		t.Candidates = append(t.Candidates, kbstore.Candidate{Architecture: c.GetArchitecture(), ISA: c.GetIsa(), Flavor: c.GetFlavor(),
			PerformanceFactor: c.GetPerformanceFactor(), UtilizationCeiling: c.GetUtilizationCeiling(), Note: c.GetNote()})
	}
	return t
}

func archToProto(a kbstore.Architecture) *ecraev1.Architecture {
	return &ecraev1.Architecture{Name: a.Name, Isa: a.ISA, Cpu: a.CPU, Sockets: int32(a.Sockets), Cores: int32(a.Cores),
		Threads: int32(a.Threads), CoreMhz: a.CoreMHz, MemoryMb: a.MemoryMB, DiskGb: a.DiskGB,
		PowerWatts: append([]float64(nil), a.PowerWatts...), SsjOps_100: a.SSJOps100, SsjOpsPerWatt: a.SSJOpsPerWatt,
		Year: int32(a.Year), Source: a.Source, Estimate: a.Estimate, Note: a.Note}
}

func archFromProto(p *ecraev1.Architecture) kbstore.Architecture {
	return kbstore.Architecture{Name: p.GetName(), ISA: p.GetIsa(), CPU: p.GetCpu(), Sockets: int(p.GetSockets()),
		Cores: int(p.GetCores()), Threads: int(p.GetThreads()), CoreMHz: p.GetCoreMhz(), MemoryMB: p.GetMemoryMb(),
		DiskGB: p.GetDiskGb(), PowerWatts: append([]float64(nil), p.GetPowerWatts()...), SSJOps100: p.GetSsjOps_100(),
		SSJOpsPerWatt: p.GetSsjOpsPerWatt(), Year: int(p.GetYear()), Source: p.GetSource(), Estimate: p.GetEstimate(), Note: p.GetNote()}
}

func flavorToProto(f kbstore.Flavor) *ecraev1.Flavor {
	return &ecraev1.Flavor{Name: f.Name, Vcpus: int32(f.VCPUs), MemoryMb: f.MemoryMB, RootGb: f.RootGB,
		EphemeralGb: f.EphemeralGB, SwapMb: f.SwapMB, ExtraSpecs: f.ExtraSpecs, Tags: append([]string(nil), f.Tags...)}
}

func flavorFromProto(p *ecraev1.Flavor) kbstore.Flavor {
	return kbstore.Flavor{Name: p.GetName(), VCPUs: int(p.GetVcpus()), MemoryMB: p.GetMemoryMb(), RootGB: p.GetRootGb(),
		EphemeralGB: p.GetEphemeralGb(), SwapMB: p.GetSwapMb(), ExtraSpecs: p.GetExtraSpecs(), Tags: append([]string(nil), p.GetTags()...)}
}

func hostToProto(h kbstore.Host) *ecraev1.Host {
	return &ecraev1.Host{Name: h.Name, Architecture: h.Architecture, Rack: h.Rack, PowerCapWatts: h.PowerCapWatts, Note: h.Note, Power: h.Power}
}

func hostFromProto(p *ecraev1.Host) kbstore.Host {
	return kbstore.Host{Name: p.GetName(), Architecture: p.GetArchitecture(), Rack: p.GetRack(), PowerCapWatts: p.GetPowerCapWatts(), Note: p.GetNote(), Power: p.GetPower()}
}
