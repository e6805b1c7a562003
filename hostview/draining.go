package hostview

// SetDraining marks hosts as being emptied by rebalance plan planID, so that
// placement refuses them until ClearDraining. Hosts the view does not know
// are skipped: they cannot be chosen anyway.
func (v *View) SetDraining(planID string, hosts []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	gen := v.version.Load() + 1
	changed := false
	for _, n := range hosts {
		if r := v.hosts[n]; r != nil && r.h.Draining != planID {
			r.h.Draining, r.gen, changed = planID, gen, true
		}
	}
	if changed {
		v.version.Store(gen)
	}
}

// ClearDraining unmarks every host that plan planID marked.
func (v *View) ClearDraining(planID string) {
	if planID == "" {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	gen := v.version.Load() + 1
	changed := false
	for _, r := range v.hosts {
		if r.h.Draining == planID {
			r.h.Draining, r.gen, changed = "", gen, true
		}
	}
	if changed {
		v.version.Store(gen)
	}
}
