package kbstore

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrLocked   = errors.New("locked")
	ErrInUse    = errors.New("in use")
)

// maxNameLen bounds names so they stay usable as bbolt keys, Nova names and
// metric labels.
const maxNameLen = 255

// ValidationError is one problem found in a KB or an entity.
type ValidationError struct {
	File string
	Line int
	// Field is a path such as "tags[2].candidates[0].performance_factor", or
	// "tag.candidates[0].architecture" for a single-entity write.
	Field string
	Msg   string
}

// Error formats "file:line: field: msg", leaving out empty parts.
func (e *ValidationError) Error() string {
	var parts []string
	switch {
	case e.File != "" && e.Line > 0:
		parts = append(parts, e.File+":"+strconv.Itoa(e.Line))
	case e.File != "":
		parts = append(parts, e.File)
	case e.Line > 0:
		parts = append(parts, "line "+strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		parts = append(parts, e.Field)
	}
	if e.Msg != "" {
		parts = append(parts, e.Msg)
	}
	return strings.Join(parts, ": ")
}

// Validate checks a whole KB, references included, and returns the first
// problem as a *ValidationError, or nil.
func Validate(kb *KB) error {
	if err := validate(kb, indexPaths); err != nil {
		return err
	}
	return nil
}

// pathFunc names entity i (of kind "architecture", "tag", "flavor" or
// "host") in a field path.
type pathFunc func(kind string, i int, name string) string

// indexPaths names entities by position, which maps back to a YAML line.
func indexPaths(kind string, i int, _ string) string { return fmt.Sprintf("%ss[%d]", kind, i) }

// namePaths names entities by name: positions mean nothing to a caller of
// a store write, whose KB is the store's, not theirs.
func namePaths(kind string, _ int, name string) string {
	return fmt.Sprintf("%ss[%s]", kind, quote.Value(name))
}

// filePaths names the entities of file by their position in it, which maps
// back to a YAML line, and every other entity (of the KB file is merged
// into) by name.
func filePaths(file *KB) pathFunc {
	pos := map[string]int{}
	add := func(kind, name string, i int) { pos[kind+"\x00"+name] = i }
	for i, a := range file.Architectures {
		add("architecture", a.Name, i)
	}
	for i, t := range file.Tags {
		add("tag", t.Name, i)
	}
	for i, f := range file.Flavors {
		add("flavor", f.Name, i)
	}
	for i, h := range file.Hosts {
		add("host", h.Name, i)
	}
	return func(kind string, i int, name string) string {
		if j, ok := pos[kind+"\x00"+name]; ok {
			return indexPaths(kind, j, name)
		}
		return namePaths(kind, i, name)
	}
}

// focusPaths names the entity being written just by its kind ("tag"), so a
// single-entity write reports "tag.candidates[0].architecture".
func focusPaths(focusKind, focusName string) pathFunc {
	return func(kind string, i int, name string) string {
		if kind == focusKind && name == focusName {
			return kind
		}
		return namePaths(kind, i, name)
	}
}

// validate does the work of Validate; paths decides how entities are named
// in ValidationError.Field.
func validate(kb *KB, paths pathFunc) *ValidationError {
	if errs := validateAll(kb, paths, 1); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// validateAll checks every entity and returns up to max errors (max <= 0:
// all): every independent problem of every entity, entity by entity and
// field by field in the order the checks run, so the first is the one
// validate returns. A check that only makes sense once another passed
// (a duplicate of a bad name, an unknown isa against the architecture,
// the 100 % point of a curve of the wrong length) is skipped when that
// one failed.
func validateAll(kb *KB, paths pathFunc, max int) []*ValidationError {
	if kb == nil {
		return []*ValidationError{{Msg: "no knowledge base"}}
	}
	var ps problems
	if kb.SchemaVersion != 0 && kb.SchemaVersion != CurrentSchemaVersion {
		ps.fail("schema_version", "unsupported schema version %d (this binary reads %d; 0 or absent means %d)",
			kb.SchemaVersion, CurrentSchemaVersion, CurrentSchemaVersion)
	}
	// Name sets first: tags and flavors refer to each other.
	archs := make(map[string]*Architecture, len(kb.Architectures))
	for i := range kb.Architectures {
		if _, dup := archs[kb.Architectures[i].Name]; !dup {
			archs[kb.Architectures[i].Name] = &kb.Architectures[i]
		}
	}
	tags := nameSet(kb.Tags, func(t *Tag) string { return t.Name })
	flavors := nameSet(kb.Flavors, func(f *Flavor) string { return f.Name })

	seen := map[string]int{}
	for i := range kb.Architectures {
		a := &kb.Architectures[i]
		p := paths("architecture", i, a.Name)
		ps.add(checkName(p, "architecture", a.Name, i, seen, paths))
		checkArchitecture(&ps, p, a)
	}
	clear(seen)
	for i := range kb.Tags {
		t := &kb.Tags[i]
		p := paths("tag", i, t.Name)
		ps.add(checkName(p, "tag", t.Name, i, seen, paths))
		checkTag(&ps, p, t, archs, flavors)
	}
	clear(seen)
	for i := range kb.Flavors {
		f := &kb.Flavors[i]
		p := paths("flavor", i, f.Name)
		ps.add(checkName(p, "flavor", f.Name, i, seen, paths))
		checkFlavor(&ps, p, f, tags)
	}
	clear(seen)
	for i := range kb.Hosts {
		h := &kb.Hosts[i]
		p := paths("host", i, h.Name)
		ps.add(checkName(p, "host", h.Name, i, seen, paths))
		checkHost(&ps, p, h, archs)
	}
	if max > 0 && len(ps) > max {
		ps = ps[:max]
	}
	return ps
}

// problems collects validation errors in the order they are found.
type problems []*ValidationError

// add appends err unless it is nil, and says whether it did, so a
// dependent check can be skipped.
func (ps *problems) add(err *ValidationError) (failed bool) {
	if err == nil {
		return false
	}
	*ps = append(*ps, err)
	return true
}

func (ps *problems) fail(field, format string, args ...any) {
	ps.add(fail(field, format, args...))
}

func nameSet[T any](items []T, name func(*T) string) map[string]bool {
	set := make(map[string]bool, len(items))
	for i := range items {
		set[name(&items[i])] = true
	}
	return set
}

func fail(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

func idx(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// checkName validates an entity name and records it in seen to catch
// duplicates; a bad name is not recorded, so it is reported once.
func checkName(p, kind, name string, i int, seen map[string]int, paths pathFunc) *ValidationError {
	f := join(p, "name")
	if err := checkNameValue(f, name); err != nil {
		return err
	}
	if first, dup := seen[name]; dup {
		return fail(f, "duplicate %s name %s (first defined at %s)", kind, quote.Value(name), paths(kind, first, name))
	}
	seen[name] = i
	return nil
}

// checkNameValue enforces [A-Za-z0-9._-]+: names are bbolt keys, Nova
// extra_spec values and metric labels, so they stay plain.
func checkNameValue(field, name string) *ValidationError {
	if name == "" {
		return fail(field, "must not be empty")
	}
	if len(name) > maxNameLen {
		return fail(field, "must be at most %d characters, got %d", maxNameLen, len(name))
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fail(field, "%s may only contain letters, digits, '.', '_' and '-'", quote.Value(name))
		}
	}
	return nil
}

func checkISA(field, isa string) *ValidationError {
	if isa == "" {
		return fail(field, "must not be empty; one of %s", strings.Join(ISAs(), ", "))
	}
	if !slices.Contains(ISAs(), isa) {
		return fail(field, "unknown ISA %s; must be one of %s", quote.Value(isa), strings.Join(ISAs(), ", "))
	}
	return nil
}

// checkNonNeg rejects negative and non-finite numbers; NaN would otherwise
// slip through every comparison and cannot be stored as JSON.
func checkNonNeg(field string, v float64) *ValidationError {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fail(field, "must be a finite number, got %v", v)
	}
	if v < 0 {
		return fail(field, "must be >= 0, got %v", v)
	}
	return nil
}

// checkShare accepts [0,1]: utilisation ceilings and CPU loads, where 0
// means "use the default".
func checkShare(field string, v float64) *ValidationError {
	if err := checkNonNeg(field, v); err != nil {
		return err
	}
	if v > 1 {
		return fail(field, "must be between 0 and 1, got %v", v)
	}
	return nil
}

func checkArchitecture(ps *problems, p string, a *Architecture) {
	ps.add(checkISA(join(p, "isa"), a.ISA))
	if a.Sockets < 0 {
		ps.fail(join(p, "sockets"), "must be >= 0, got %d", a.Sockets)
	}
	if a.Cores <= 0 {
		ps.fail(join(p, "cores"), "must be > 0, got %d", a.Cores)
	}
	switch {
	case a.Threads <= 0:
		ps.fail(join(p, "threads"), "must be > 0, got %d", a.Threads)
	case a.Cores > 0 && a.Threads < a.Cores:
		// Against a bad core count the comparison says nothing new.
		ps.fail(join(p, "threads"), "must be >= cores (%d), got %d", a.Cores, a.Threads)
	}
	ps.add(checkNonNeg(join(p, "core_mhz"), a.CoreMHz))
	if a.MemoryMB <= 0 {
		ps.fail(join(p, "memory_mb"), "must be > 0, got %d", a.MemoryMB)
	}
	if a.DiskGB < 0 {
		ps.fail(join(p, "disk_gb"), "must be >= 0, got %d", a.DiskGB)
	}
	checkCurve(ps, join(p, "power_watts"), a.PowerWatts)
	ps.add(checkNonNeg(join(p, "ssj_ops_100"), a.SSJOps100))
	ps.add(checkNonNeg(join(p, "ssj_ops_per_watt"), a.SSJOpsPerWatt))
	if a.Year < 0 {
		ps.fail(join(p, "year"), "must be >= 0, got %d", a.Year)
	}
}

// checkCurve reports a wrong length and then each bad point, at most one
// problem per point. A point is compared only with a previous point that
// is a valid number, and the 100 % point is checked only when it is the
// 11th.
func checkCurve(ps *problems, pw string, curve []float64) {
	if len(curve) != PowerPoints {
		ps.fail(pw, "must have %d values (active idle, then 10 %% ... 100 %% load), got %d", PowerPoints, len(curve))
	}
	prevOK := false
	for i, w := range curve {
		f := idx(pw, i)
		ok := !ps.add(checkNonNeg(f, w))
		switch {
		case !ok:
		case prevOK && w < curve[i-1]:
			ps.fail(f, "%v W is below the previous point %v W; the curve must not decrease", w, curve[i-1])
		case i == PowerPoints-1 && len(curve) == PowerPoints && w == 0:
			ps.fail(f, "power at 100 %% load must be > 0")
		}
		prevOK = ok
	}
}

func checkTag(ps *problems, p string, t *Tag, archs map[string]*Architecture, flavors map[string]bool) {
	switch t.Mode {
	case "", ModeHint, ModeExact:
	default:
		ps.fail(join(p, "mode"), "unknown mode %s; must be %s or %s (empty means %s)", quote.Value(t.Mode), quote.Value(ModeExact), quote.Value(ModeHint), quote.Value(ModeHint))
	}
	cp := join(p, "candidates")
	switch {
	case len(t.Candidates) == 0:
		// A tag with no candidates cannot steer placement; it is a mistake.
		ps.fail(cp, "must list at least one candidate")
	case t.IsExact() && len(t.Candidates) != 1:
		ps.fail(cp, "an exact tag pins one architecture, so it needs exactly 1 candidate, got %d", len(t.Candidates))
	}
	ps.add(checkShare(join(p, "utilization_ceiling"), t.UtilizationCeiling))
	ps.add(checkShare(join(p, "cpu_load"), t.CPULoad))
	seen := map[Candidate]int{}
	for i := range t.Candidates {
		c := &t.Candidates[i]
		cf := idx(cp, i)
		if checkCandidate(ps, cf, c, archs, flavors) {
			continue // a broken candidate is not worth calling a duplicate
		}
		key := Candidate{Architecture: c.Architecture, ISA: c.ISA, Flavor: c.Flavor}
		if first, dup := seen[key]; dup {
			ps.fail(cf, "duplicates %s", idx(cp, first))
			continue
		}
		seen[key] = i
	}
}

// checkCandidate reports the candidate's problems and says whether it had
// any.
func checkCandidate(ps *problems, cf string, c *Candidate, archs map[string]*Architecture, flavors map[string]bool) (failed bool) {
	n := len(*ps)
	if c.Architecture == "" && c.ISA == "" {
		ps.fail(cf, "needs an architecture or an isa")
	}
	isaOK := c.ISA != "" && !ps.add(checkISA(join(cf, "isa"), c.ISA))
	if c.Architecture != "" {
		a, ok := archs[c.Architecture]
		switch {
		case !ok:
			ps.fail(join(cf, "architecture"), "architecture %s does not exist%s", quote.Value(c.Architecture), didYouMean(c.Architecture, archs))
		case isaOK && c.ISA != a.ISA:
			ps.fail(join(cf, "isa"), "%s contradicts architecture %s, whose isa is %s", quote.Value(c.ISA), quote.Value(a.Name), quote.Value(a.ISA))
		}
	}
	if c.Flavor != "" && !flavors[c.Flavor] {
		ps.fail(join(cf, "flavor"), "flavor %s does not exist%s", quote.Value(c.Flavor), didYouMean(c.Flavor, flavors))
	}
	pf := join(cf, "performance_factor")
	if !ps.add(checkNonNeg(pf, c.PerformanceFactor)) && c.PerformanceFactor == 0 {
		ps.fail(pf, "must be > 0 (1 = the tag's reference)")
	}
	ps.add(checkShare(join(cf, "utilization_ceiling"), c.UtilizationCeiling))
	return len(*ps) > n
}

func checkFlavor(ps *problems, p string, f *Flavor, tags map[string]bool) {
	if f.VCPUs <= 0 {
		ps.fail(join(p, "vcpus"), "must be > 0, got %d", f.VCPUs)
	}
	if f.MemoryMB <= 0 {
		ps.fail(join(p, "memory_mb"), "must be > 0, got %d", f.MemoryMB)
	}
	for _, v := range []struct {
		field string
		n     int64
	}{{"root_gb", f.RootGB}, {"ephemeral_gb", f.EphemeralGB}, {"swap_mb", f.SwapMB}} {
		if v.n < 0 {
			ps.fail(join(p, v.field), "must be >= 0, got %d", v.n)
		}
	}
	if _, ok := f.ExtraSpecs[""]; ok {
		ps.fail(join(p, "extra_specs"), "keys must not be empty")
	}
	tp := join(p, "tags")
	for i, t := range f.Tags {
		switch j := slices.Index(f.Tags, t); {
		case t == "":
			ps.fail(idx(tp, i), "must not be empty")
		case !tags[t]:
			ps.fail(idx(tp, i), "tag %s does not exist%s", quote.Value(t), didYouMean(t, tags))
		case j < i:
			ps.fail(idx(tp, i), "duplicates %s", idx(tp, j))
		}
	}
}

func checkHost(ps *problems, p string, h *Host, archs map[string]*Architecture) {
	af := join(p, "architecture")
	if h.Architecture == "" {
		ps.fail(af, "must name an architecture")
	} else if _, ok := archs[h.Architecture]; !ok {
		ps.fail(af, "architecture %s does not exist%s", quote.Value(h.Architecture), didYouMean(h.Architecture, archs))
	}
	ps.add(checkNonNeg(join(p, "power_cap_watts"), h.PowerCapWatts))
	ps.add(checkPowerEndpoint(join(p, "power"), h.Power))
}

// checkPowerEndpoint accepts "" (no power control) or one of the three
// endpoint forms. Credentials are refused outright: the KB is exported and
// shown, so a password in it would leak.
func checkPowerEndpoint(field, s string) *ValidationError {
	if s == "" {
		return nil
	}
	if len(s) > 1024 {
		return fail(field, "is %d bytes long, want at most 1024", len(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return fail(field, "%q is not a URL", clip(s))
	}
	if u.User != nil {
		return fail(field, "must not carry credentials (put them in serve's --power-credentials file)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fail(field, "%q: a power endpoint takes no query or fragment", clip(s))
	}
	switch u.Scheme {
	case "ipmi":
		if u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
			return fail(field, "%q: want ipmi://ADDR[:PORT]", clip(s))
		}
		if err := checkPort(u.Port()); err != "" {
			return fail(field, "%q: %s", clip(s), err)
		}
	case "redfish", "redfish+http":
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if u.Hostname() == "" || len(parts) != 2 || parts[0] != "Systems" || parts[1] == "" {
			return fail(field, "%q: want redfish://ADDR[:PORT]/Systems/ID", clip(s))
		}
		if err := checkPort(u.Port()); err != "" {
			return fail(field, "%q: %s", clip(s), err)
		}
	case "ironic":
		// ironic://NODE: the node's UUID or name, as the host part.
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.Port() != "" {
			return fail(field, "%q: want ironic://NODE_UUID", clip(s))
		}
	default:
		return fail(field, "%q: scheme must be ipmi, redfish or ironic", clip(s))
	}
	return nil
}

func checkPort(p string) string {
	if p == "" {
		return ""
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "port must be 1-65535"
	}
	return ""
}

// clip quotes at most 100 bytes of a bad value.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
