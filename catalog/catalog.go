// Package catalog turns the knowledge base into the optimizer's inputs (host
// models, workload profiles, flavors) and builds the optimizer's cluster from
// a request snapshot or the live host view: what placement and rebalancing
// both read, so that neither depends on the other.
package catalog

import (
	"fmt"
	"sort"
	"sync"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/optimizer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Catalog is the KB turned into optimizer inputs. It is rebuilt only when the
// store's revision changes, so the hot path reads maps, not bbolt.
type Catalog struct {
	revision   uint64
	kb         *kbstore.KB
	profiles   map[string]optimizer.Profile
	archModels map[string]*optimizer.Model
	hostModels map[string]*optimizer.Model // KB host name → its architecture's model
	flavors    map[string]kbstore.Flavor
	// perThread is the default power curve per hardware thread for an ISA,
	// averaged over the KB's architectures of that ISA (all of them when the
	// KB has none of it), for hosts the KB does not know.
	perThread    map[string]optimizer.PowerCurve
	perThreadAll optimizer.PowerCurve
	defaults     sync.Map // defaultKey → *optimizer.Model
}

// unknownDiskGB stands for "no disk limit known" on KB-sized hosts: 1 PB.
const unknownDiskGB = 1 << 20

type defaultKey struct {
	isa     string
	threads int
}

// genericPerThread is used only when the KB has no architecture at all: an
// assumption of 1.5 W idle to 4 W at full load per hardware thread, in the
// range of the 2019–2024 SPECpower results of the default KB.
var genericPerThread = optimizer.PowerCurve{1.5, 1.9, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2, 3.45, 3.7, 4.0}

// New builds the catalog of KB revision rev.
func New(rev uint64, kb *kbstore.KB) (*Catalog, error) {
	c := &Catalog{
		revision:   rev,
		kb:         kb,
		profiles:   make(map[string]optimizer.Profile, len(kb.Tags)),
		archModels: make(map[string]*optimizer.Model, len(kb.Architectures)),
		hostModels: make(map[string]*optimizer.Model, len(kb.Hosts)),
		flavors:    make(map[string]kbstore.Flavor, len(kb.Flavors)),
		perThread:  map[string]optimizer.PowerCurve{},
	}
	sums := map[string]*[optimizer.CurvePoints + 1]float64{} // per ISA: curve sums, then count
	all := [optimizer.CurvePoints + 1]float64{}
	for _, a := range kb.Architectures {
		m, err := modelOf(a)
		if err != nil {
			return nil, err
		}
		c.archModels[a.Name] = m
		s := sums[m.ISA]
		if s == nil {
			s = &[optimizer.CurvePoints + 1]float64{}
			sums[m.ISA] = s
		}
		for i, w := range m.Curve {
			s[i] += w / float64(m.Cores)
			all[i] += w / float64(m.Cores)
		}
		s[optimizer.CurvePoints]++
		all[optimizer.CurvePoints]++
	}
	for isa, s := range sums {
		var pc optimizer.PowerCurve
		for i := range pc {
			pc[i] = s[i] / s[optimizer.CurvePoints]
		}
		c.perThread[isa] = pc
	}
	c.perThreadAll = genericPerThread
	if n := all[optimizer.CurvePoints]; n > 0 {
		for i := range c.perThreadAll {
			c.perThreadAll[i] = all[i] / n
		}
	}
	for _, t := range kb.Tags {
		c.profiles[t.Name] = profileOf(t)
	}
	for _, h := range kb.Hosts {
		if m := c.archModels[h.Architecture]; m != nil {
			c.hostModels[h.Name] = m
		}
	}
	for _, f := range kb.Flavors {
		c.flavors[f.Name] = f
	}
	return c, nil
}

func modelOf(a kbstore.Architecture) (*optimizer.Model, error) {
	if len(a.PowerWatts) != optimizer.CurvePoints {
		return nil, fmt.Errorf("architecture %s: power curve has %d points, want %d", quote.Value(a.Name), len(a.PowerWatts), optimizer.CurvePoints)
	}
	m := &optimizer.Model{Name: a.Name, ISA: a.ISA, Cores: a.Threads, MemoryMB: a.MemoryMB}
	if m.Cores <= 0 {
		m.Cores = a.Cores
	}
	copy(m.Curve[:], a.PowerWatts)
	return m, nil
}

func profileOf(t kbstore.Tag) optimizer.Profile {
	p := optimizer.Profile{
		Tag:                t.Name,
		Mode:               optimizer.ModeHint,
		UtilizationCeiling: t.UtilizationCeiling,
		CPULoad:            t.CPULoad,
		Candidates:         make([]optimizer.Candidate, 0, len(t.Candidates)),
	}
	if t.Mode == "exact" {
		p.Mode = optimizer.ModeExact
	}
	for _, cd := range t.Candidates {
		p.Candidates = append(p.Candidates, optimizer.Candidate{
			Architecture:       cd.Architecture,
			ISA:                cd.ISA,
			Flavor:             cd.Flavor,
			PerformanceFactor:  cd.PerformanceFactor,
			UtilizationCeiling: cd.UtilizationCeiling,
		})
	}
	return p
}

// ModelFor says which model a Nova host is: the KB's entry for its host name
// (or node name), else a default model for its ISA sized to its vCPUs.
func (c *Catalog) ModelFor(host, nodename, isa string, threads int) *optimizer.Model {
	if m := c.hostModels[host]; m != nil {
		return m
	}
	if m := c.hostModels[nodename]; m != nil {
		return m
	}
	if isa == "" {
		isa = "x86_64"
	}
	if threads <= 0 {
		threads = 1
	}
	key := defaultKey{isa, threads}
	if m, ok := c.defaults.Load(key); ok {
		return m.(*optimizer.Model)
	}
	per, ok := c.perThread[isa]
	if !ok {
		per = c.perThreadAll
	}
	m := &optimizer.Model{Name: "default-" + isa, ISA: isa, Cores: threads, Default: true}
	for i, w := range per {
		m.Curve[i] = w * float64(threads)
	}
	actual, _ := c.defaults.LoadOrStore(key, m)
	return actual.(*optimizer.Model)
}

// KnownHosts turns the KB's host entries into empty hosts sized by their
// architecture: what WhatIf places on when the caller gives no hosts.
func (c *Catalog) KnownHosts() []optimizer.Host {
	names := make([]string, 0, len(c.kb.Hosts))
	byName := map[string]kbstore.Host{}
	for _, h := range c.kb.Hosts {
		names = append(names, h.Name)
		byName[h.Name] = h
	}
	sort.Strings(names)
	hosts := make([]optimizer.Host, 0, len(names))
	for _, n := range names {
		h := byName[n]
		a, ok := c.archByName(h.Architecture)
		m := c.archModels[h.Architecture]
		if !ok || m == nil {
			continue
		}
		diskGB := a.DiskGB
		if diskGB <= 0 {
			// The model does not say (SPECpower results rarely do): leave
			// disk unconstrained rather than refuse every instance.
			diskGB = unknownDiskGB
		}
		hosts = append(hosts, optimizer.Host{
			Name: h.Name, Nodename: h.Name, ISA: a.ISA, Model: m,
			VCPUsTotal: m.Cores, CPURatio: 1,
			TotalRAMMB: a.MemoryMB, FreeRAMMB: a.MemoryMB, RAMRatio: 1,
			TotalDiskGB: diskGB, FreeDiskMB: diskGB * 1024, DiskRatio: 1,
		})
	}
	return hosts
}

func (c *Catalog) archByName(name string) (kbstore.Architecture, bool) {
	for _, a := range c.kb.Architectures {
		if a.Name == name {
			return a, true
		}
	}
	return kbstore.Architecture{}, false
}

// Revision is the KB revision the catalog was built from.
func (c *Catalog) Revision() uint64 { return c.revision }

// Profile is the KB profile of a tag, if the KB has it.
func (c *Catalog) Profile(tag string) (optimizer.Profile, bool) {
	p, ok := c.profiles[tag]
	return p, ok
}

// Flavor is the KB flavor of that name, if any.
func (c *Catalog) Flavor(name string) (kbstore.Flavor, bool) {
	f, ok := c.flavors[name]
	return f, ok
}

// HostModel is the model the KB maps a host name to, nil when none.
func (c *Catalog) HostModel(name string) *optimizer.Model { return c.hostModels[name] }

// Invalid is a gRPC InvalidArgument error naming the field.
func Invalid(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// Load returns the busy share of a vCPU for each workload tag (the KB
// profile's CPULoad; an instance without a tag runs the default profile).
func (c *Catalog) Load(defaultTag string) hostview.LoadFunc {
	return func(tag string) float64 {
		if tag == "" {
			tag = defaultTag
		}
		if p, ok := c.profiles[tag]; ok {
			return p.CPULoad
		}
		return c.profiles[defaultTag].CPULoad
	}
}
