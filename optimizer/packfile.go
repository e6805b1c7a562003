package optimizer

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
)

// PackInstance is one offline bin-packing instance: the vector bin packing
// (.vbp) and VM placement (.vmp) benchmark formats of ../shared/data.
type PackInstance struct {
	Name   string
	Format string // "vbp" or "vmp"
	Dims   int
	// BinTypes lists the kinds of bin; Count 0 means as many as needed.
	BinTypes []PackBinType
	// Items holds each item's size per dimension, in file order (a .vbp
	// line with a count q > 1 gives q items).
	Items [][]int64
	// Lines holds the line of the file each item comes from.
	Lines []int
}

// PackBinType is one kind of bin.
type PackBinType struct {
	Capacity []int64
	Count    int
}

// Limits that keep a hostile file from exhausting memory.
const (
	maxPackItems = 2_000_000
	maxPackDims  = 1000
	maxPackBins  = 1_000_000
	maxPackValue = 1 << 50 // sizes stay exact as float64
)

// ErrMalformed marks a file that does not follow its format.
var ErrMalformed = errors.New("malformed")

// ParsePackFile parses data by the extension of name: .vbp or .vmp.
func ParsePackFile(name string, data []byte) (*PackInstance, error) {
	switch {
	case strings.HasSuffix(name, ".vbp"):
		return ParseVBP(data)
	case strings.HasSuffix(name, ".vmp"):
		return ParseVMP(data)
	}
	return nil, fmt.Errorf("%s: want a .vbp or .vmp file", name)
}

// lineReader yields the non-blank lines of a file with their numbers.
type lineReader struct {
	data []byte
	no   int
}

func (r *lineReader) next() (fields []string, line int, ok bool) {
	for len(r.data) > 0 {
		var l []byte
		if i := bytes.IndexByte(r.data, '\n'); i >= 0 {
			l, r.data = r.data[:i], r.data[i+1:]
		} else {
			l, r.data = r.data, nil
		}
		r.no++
		if f := strings.Fields(string(l)); len(f) > 0 {
			return f, r.no, true
		}
	}
	return nil, r.no + 1, false
}

func malformed(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrMalformed, line, fmt.Sprintf(format, args...))
}

// ints parses every field as a non-negative integer.
func ints(fields []string, line int, what string) ([]int64, error) {
	return intsFrom(fields, line, what, 0)
}

// intsFrom parses every field as an integer in [lo, 2^50].
func intsFrom(fields []string, line int, what string, lo int64) ([]int64, error) {
	out := make([]int64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil || v < lo || v > maxPackValue {
			if lo < 0 {
				return nil, malformed(line, "%s: %s is not an integer of at most 2^50 in size", what, quote.Value(f))
			}
			return nil, malformed(line, "%s: %s is not a non-negative integer up to 2^50", what, quote.Value(f))
		}
		out[i] = v
	}
	return out, nil
}

// one reads a line holding exactly one non-negative integer.
func (r *lineReader) one(what string) (int64, int, error) {
	f, line, ok := r.next()
	if !ok {
		return 0, line, malformed(line, "unexpected end of file, want %s", what)
	}
	if len(f) != 1 {
		return 0, line, malformed(line, "want one number (%s), got %d fields", what, len(f))
	}
	v, err := ints(f, line, what)
	if err != nil {
		return 0, line, err
	}
	return v[0], line, nil
}

// ParseVBP parses VPSolver's .vbp format: the number of dimensions d, the
// bin capacity per dimension, the number of item types m, then m lines of d
// sizes and a count. Sizes may be negative: the Triplet instances of the
// benchmark have a few (each triplet fills its bin exactly, a negative size
// included), and the packing must take them as they are.
func ParseVBP(data []byte) (*PackInstance, error) {
	r := &lineReader{data: data}
	d, line, err := r.one("the number of dimensions")
	if err != nil {
		return nil, err
	}
	if d < 1 || d > maxPackDims {
		return nil, malformed(line, "the number of dimensions must be 1 to %d, got %d", maxPackDims, d)
	}
	f, line, ok := r.next()
	if !ok {
		return nil, malformed(line, "unexpected end of file, want %d bin capacities", d)
	}
	if len(f) != int(d) {
		return nil, malformed(line, "want %d bin capacities, got %d", d, len(f))
	}
	caps, err := ints(f, line, "bin capacity")
	if err != nil {
		return nil, err
	}
	m, line, err := r.one("the number of item types")
	if err != nil {
		return nil, err
	}
	if m > maxPackItems {
		return nil, malformed(line, "%d item types: more than %d", m, maxPackItems)
	}
	inst := &PackInstance{Format: "vbp", Dims: int(d), BinTypes: []PackBinType{{Capacity: caps}}}
	for t := int64(0); t < m; t++ {
		f, line, ok := r.next()
		if !ok {
			return nil, malformed(line, "unexpected end of file: %d of %d item types read", t, m)
		}
		if len(f) != int(d)+1 {
			return nil, malformed(line, "want %d numbers (%d sizes and a count), got %d", d+1, d, len(f))
		}
		v, err := intsFrom(f[:d], line, "item size", -maxPackValue)
		if err != nil {
			return nil, err
		}
		qs, err := ints(f[d:], line, "item count")
		if err != nil {
			return nil, err
		}
		q := qs[0]
		if q > maxPackItems-int64(len(inst.Items)) {
			return nil, malformed(line, "more than %d items in all", maxPackItems)
		}
		for range q {
			inst.Items = append(inst.Items, v)
			inst.Lines = append(inst.Lines, line)
		}
	}
	if f, line, ok := r.next(); ok {
		return nil, malformed(line, "unexpected %s after the %d item types", quote.Value(strings.Join(f, " ")), m)
	}
	return inst, nil
}

// ParseVMP parses the .vmp format of the VM placement instances: a name,
// the number of hosts (or the count of each host type, "90,10"), the host
// CPU capacity (one per type), the host RAM capacity (one per type), the
// number of VMs, then one line per VM: cpu, ram, and a third column that is
// not used.
func ParseVMP(data []byte) (*PackInstance, error) {
	r := &lineReader{data: data}
	f, line, ok := r.next()
	if !ok {
		return nil, malformed(line, "empty file, want the instance name")
	}
	inst := &PackInstance{Format: "vmp", Dims: 2, Name: strings.Join(f, " ")}
	list := func(what string) ([]int64, int, error) {
		f, line, ok := r.next()
		if !ok {
			return nil, line, malformed(line, "unexpected end of file, want %s", what)
		}
		if len(f) != 1 {
			return nil, line, malformed(line, "want %s as one field (types separated by commas), got %d fields", what, len(f))
		}
		v, err := ints(strings.Split(f[0], ","), line, what)
		return v, line, err
	}
	counts, line, err := list("the number of hosts")
	if err != nil {
		return nil, err
	}
	total := int64(0)
	for _, c := range counts {
		total += c
		if total > maxPackBins {
			return nil, malformed(line, "more than %d hosts", maxPackBins)
		}
	}
	cpu, cline, err := list("the host CPU capacity")
	if err != nil {
		return nil, err
	}
	ram, rline, err := list("the host RAM capacity")
	if err != nil {
		return nil, err
	}
	if len(cpu) != len(counts) {
		return nil, malformed(cline, "%d CPU capacities for %d host types", len(cpu), len(counts))
	}
	if len(ram) != len(counts) {
		return nil, malformed(rline, "%d RAM capacities for %d host types", len(ram), len(counts))
	}
	for t := range counts {
		inst.BinTypes = append(inst.BinTypes, PackBinType{Capacity: []int64{cpu[t], ram[t]}, Count: int(counts[t])})
	}
	n, line, err := r.one("the number of VMs")
	if err != nil {
		return nil, err
	}
	if n > maxPackItems {
		return nil, malformed(line, "%d VMs: more than %d", n, maxPackItems)
	}
	for j := int64(0); j < n; j++ {
		f, line, ok := r.next()
		if !ok {
			return nil, malformed(line, "unexpected end of file: %d of %d VMs read", j, n)
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, malformed(line, "want a VM as cpu ram [x], got %d fields", len(f))
		}
		v, err := ints(f[:2], line, "VM")
		if err != nil {
			return nil, err
		}
		inst.Items = append(inst.Items, v)
		inst.Lines = append(inst.Lines, line)
	}
	if f, line, ok := r.next(); ok {
		return nil, malformed(line, "unexpected %s after the %d VMs", quote.Value(strings.Join(f, " ")), n)
	}
	return inst, nil
}

// binCount is how many bins the instance offers: the sum of the counts,
// with an unlimited type counted as one bin per item.
func (inst *PackInstance) binCount() int {
	n := 0
	for _, t := range inst.BinTypes {
		if t.Count == 0 {
			n += len(inst.Items)
		} else {
			n += t.Count
		}
	}
	return n
}

// binCapacity returns the capacity of bin b (in the expanded list).
func (inst *PackInstance) binCapacity(b int) []int64 {
	for _, t := range inst.BinTypes {
		c := t.Count
		if c == 0 {
			c = len(inst.Items)
		}
		if b < c {
			return t.Capacity
		}
		b -= c
	}
	return nil
}

// ErrItemTooLarge is returned when an item fits no bin at all.
var ErrItemTooLarge = errors.New("no bin can hold an item")

// Check validates the instance: every item has Dims sizes and fits some
// bin type on its own.
func (inst *PackInstance) Check() error {
	if inst.Dims < 1 {
		return fmt.Errorf("%w: no dimensions", ErrMalformed)
	}
	if len(inst.BinTypes) == 0 {
		return fmt.Errorf("%w: no bins", ErrMalformed)
	}
	for _, t := range inst.BinTypes {
		if len(t.Capacity) != inst.Dims {
			return fmt.Errorf("%w: a bin type has %d capacities, want %d", ErrMalformed, len(t.Capacity), inst.Dims)
		}
	}
	for i, it := range inst.Items {
		if len(it) != inst.Dims {
			return fmt.Errorf("%w: item %d has %d sizes, want %d", ErrMalformed, i, len(it), inst.Dims)
		}
		fits := false
		for _, t := range inst.BinTypes {
			ok := true
			for k, x := range it {
				ok = ok && x <= t.Capacity[k]
			}
			fits = fits || ok
		}
		if !fits {
			line := ""
			if i < len(inst.Lines) {
				line = fmt.Sprintf(" (line %d)", inst.Lines[i])
			}
			return fmt.Errorf("%w: item %d%s of size %s is larger than every bin (%s): no packing exists",
				ErrItemTooLarge, i, line, joinInts(it), inst.capacities())
		}
	}
	return nil
}

func (inst *PackInstance) capacities() string {
	var parts []string
	for _, t := range inst.BinTypes {
		parts = append(parts, joinInts(t.Capacity))
	}
	return "capacity " + strings.Join(parts, " or ")
}

func joinInts(v []int64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ",")
}

// PackOptions tunes Pack.
type PackOptions struct {
	Algorithm string // "" = DefaultAlgorithm
	Seed      uint64
	Budget    Budget
}

// PackResult is the answer of Pack.
type PackResult struct {
	Bins       int
	Bounds     Bounds
	Algorithm  string
	Seed       uint64
	Stopped    string
	Iterations int
	Elapsed    time.Duration // on the Budget's clock, 0 without one
	// Note says when the budget ended before the constructor had placed
	// every item (the rest were placed by a quick, cruder rule).
	Note string
	// Assignment holds each item's bin, in file order. Bins of a .vbp file
	// (unlimited, all alike) are numbered 0… in order of first use; bins of
	// a .vmp file are the hosts of the file, numbered in the order the file
	// lists their types, so a bin's index says its capacity.
	Assignment []int
}

// Pack solves one instance: minimise the number of bins.
func Pack(inst *PackInstance, opts PackOptions) (PackResult, error) {
	a, err := parseAlgorithm(opts.Algorithm)
	if err != nil {
		return PackResult{}, err
	}
	if err := inst.Check(); err != nil {
		return PackResult{}, err
	}
	if a.kind == kindCurrent {
		return PackResult{}, fmt.Errorf("algorithm %s needs a current placement; pack has none", quote.Value(a.name))
	}
	m := newMeter(opts.Budget)
	start := m.now()
	p := inst.problem()
	lb := p.lowerBounds()
	s, out, err := solve(p, a, opts.Seed, m, lb.Bins)
	if err != nil {
		return PackResult{}, err
	}
	res := PackResult{
		Bins: s.used, Bounds: lb, Algorithm: a.name, Seed: opts.Seed,
		Stopped: out.stopped, Iterations: out.iterations,
		Assignment: make([]int, p.n),
	}
	if out.cut {
		res.Note = NoteCutShort
	}
	unlimited := len(inst.BinTypes) == 1 && inst.BinTypes[0].Count == 0
	number := make([]int32, p.m) // bin → its number + 1, 0 = not used yet
	used := int32(0)
	for i, b := range s.assign {
		if !unlimited {
			res.Assignment[i] = int(b)
			continue
		}
		if number[b] == 0 {
			used++
			number[b] = used
		}
		res.Assignment[i] = int(number[b] - 1)
	}
	res.Elapsed = m.elapsed(start)
	return res, nil
}

// problem turns the instance into the solver's form.
func (inst *PackInstance) problem() *problem {
	n, m, d := len(inst.Items), inst.binCount(), inst.Dims
	p := &problem{d: d, n: n, m: m, util: -1,
		size: make([]float64, n*d), cap: make([]float64, m*d)}
	for i, it := range inst.Items {
		for k, x := range it {
			p.size[i*d+k] = float64(x)
		}
	}
	for b := range m {
		for k, c := range inst.binCapacity(b) {
			p.cap[b*d+k] = float64(c)
		}
	}
	p.finish()
	return p
}

// CheckPacking verifies an assignment against the instance, independently
// of the solver: every item in a bin that exists, and no bin over its
// capacity in any dimension. It returns the number of bins used.
func CheckPacking(inst *PackInstance, assignment []int) (int, error) {
	if len(assignment) != len(inst.Items) {
		return 0, fmt.Errorf("%d assignments for %d items", len(assignment), len(inst.Items))
	}
	nb := inst.binCount()
	loads := map[int][]int64{}
	for i, b := range assignment {
		if b < 0 || b >= nb {
			return 0, fmt.Errorf("item %d: bin %d does not exist (%d bins)", i, b, nb)
		}
		l := loads[b]
		if l == nil {
			l = make([]int64, inst.Dims)
			loads[b] = l
		}
		for k, x := range inst.Items[i] {
			l[k] += x
		}
	}
	for b, l := range loads {
		c := inst.binCapacity(b)
		for k := range l {
			if l[k] > c[k] {
				return 0, fmt.Errorf("bin %d: dimension %d holds %d, capacity %d", b, k, l[k], c[k])
			}
		}
	}
	return len(loads), nil
}
