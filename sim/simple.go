package sim

// simplePolicy places VMs once and never moves them: npa and dvfs take the
// first suitable host in list order (CloudSim's PowerVmAllocationPolicy-
// Simple); nova-spread takes the suitable host with the most free RAM, as
// Nova's default RAM weigher does (ties to the first host, as Nova with
// host_subset_size = 1 and no shuffling).
type simplePolicy struct {
	npa    bool
	spread bool
	// ramUsed is what Nova's placement sees: the RAM of the VMs on each
	// host, whatever CloudSim's RAM model asks for after start.
	ramUsed []int64
}

func (p *simplePolicy) nonPowerAware() bool { return p.npa }

func (p *simplePolicy) init(e *engine) error {
	p.ramUsed = make([]int64, len(e.hosts))
	return nil
}

func (p *simplePolicy) place(e *engine, vi int32) int {
	if !p.spread {
		for h := range e.hosts {
			if e.suitable(h, vi) {
				return h
			}
		}
		return -1
	}
	best, bestFree := -1, int64(-1)
	for h := range e.hosts {
		if !e.suitable(h, vi) {
			continue
		}
		free := e.hosts[h].model.RAMMB - p.ramUsed[h] - e.vms[vi].ram
		if free < 0 {
			continue
		}
		if free > bestFree {
			best, bestFree = h, free
		}
	}
	if best >= 0 {
		p.ramUsed[best] += e.vms[vi].ram
	}
	return best
}

func (p *simplePolicy) optimize(*engine, float64) ([]move, error) { return nil, nil }
