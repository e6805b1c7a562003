package hostview

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ecrae/ecrae/powerfit"
)

// stateVersion is the format of a saved view.
const stateVersion = 1

// saved is a view on disk: enough to rebuild it exactly, with the stream
// sequence it covers so that a restart resumes after it.
type saved struct {
	Version    int         `json:"version"`
	AppliedSeq uint64      `json:"applied_seq"`
	SavedAt    time.Time   `json:"saved_at"`
	Hosts      []savedHost `json:"hosts"`
	Instances  []Instance  `json:"instances"`
	Tombstones []tombstone `json:"tombstones"`
	Seen       []string    `json:"seen"` // oldest first
}

type savedHost struct {
	Host
	ServiceAt time.Time `json:"service_at"`
	// PowerFit: the sums behind `ecrae kb calibrate`.
	PowerFit *powerfit.Stats `json:"power_fit,omitempty"`
}

type tombstone struct {
	UUID string    `json:"uuid"`
	At   time.Time `json:"at"`
}

// Save writes the view. The copy is taken under the lock; the encoding is
// done after it is released.
func (v *View) Save(w io.Writer) error {
	v.mu.Lock()
	st := saved{Version: stateVersion, AppliedSeq: v.appliedSeq, SavedAt: v.now().UTC(),
		Hosts: make([]savedHost, 0, len(v.hosts)), Instances: make([]Instance, 0, len(v.insts))}
	for _, r := range v.hosts {
		h := r.h
		// Derived from the instances: rebuilt by Load.
		h.Usage, h.Instances, h.Busy = Usage{}, 0, nil
		// A running plan does not survive a restart (the plan store marks
		// it interrupted): its draining marks must not either.
		h.Draining = ""
		sh := savedHost{Host: h, ServiceAt: r.svcAt}
		if r.fit != nil {
			f := *r.fit
			sh.PowerFit = &f
		}
		st.Hosts = append(st.Hosts, sh)
	}
	for _, i := range v.insts {
		st.Instances = append(st.Instances, *i)
	}
	for _, u := range v.tombs.ordered() {
		if t, ok := v.tomb[u]; ok {
			st.Tombstones = append(st.Tombstones, tombstone{u, t})
		}
	}
	st.Seen = v.seen.ordered()
	v.mu.Unlock()
	if err := json.NewEncoder(w).Encode(&st); err != nil {
		return fmt.Errorf("encode host view: %w", err)
	}
	return nil
}

// Load replaces the view's content with a saved one.
func (v *View) Load(r io.Reader) error {
	var st saved
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return fmt.Errorf("decode host view: %w", err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("host view format %d, want %d", st.Version, stateVersion)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	gen := v.version.Load() + 1
	defer v.version.Store(gen)
	v.hosts, v.insts, v.names = map[string]*hostRec{}, map[string]*Instance{}, nil
	v.tomb = map[string]time.Time{}
	v.tombs = newRing(cap(v.tombs.items))
	v.seen = newRing(cap(v.seen.items))
	v.appliedSeq = st.AppliedSeq
	for _, sh := range st.Hosts {
		r := v.host(sh.Name, gen)
		r.h, r.svcAt, r.fit = sh.Host, sh.ServiceAt, sh.PowerFit
	}
	for k := range st.Instances {
		i := st.Instances[k]
		v.insts[i.UUID] = &i
		v.account(&i, gen)
	}
	for _, t := range st.Tombstones {
		v.addTomb(t.UUID, t.At)
	}
	for _, id := range st.Seen {
		if !v.seen.has(id) {
			v.seen.add(id)
		}
	}
	return nil
}

// SaveFile writes the view to path atomically (a temporary file renamed
// over it, synced first), so a crash leaves the old or the new file whole.
func (v *View) SaveFile(path string) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save host view: %w", err)
	}
	tmp := f.Name()
	err = v.Save(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save host view to %s: %w", path, err)
	}
	return nil
}

// LoadFile loads a view saved by SaveFile; a missing file is not an error
// (found is false).
func (v *View) LoadFile(path string) (found bool, err error) {
	// A SaveFile cut short by a crash leaves its temporary file: only one
	// process uses the directory (the KB's lock), so any left is garbage.
	if left, _ := filepath.Glob(path + ".tmp*"); len(left) > 0 {
		for _, p := range left {
			os.Remove(p)
		}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load host view: %w", err)
	}
	defer f.Close()
	if err := v.Load(f); err != nil {
		return true, fmt.Errorf("load host view from %s: %w", path, err)
	}
	return true, nil
}
