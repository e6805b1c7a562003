package sim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SamplesPerDay is the length of a PlanetLab trace: one CPU percentage
// every 300 s for 24 h.
const SamplesPerDay = 288

// ErrTrace marks a trace folder, trace file or VM-order file that cannot be
// used. The message names the file and, when it is about one line, the line.
var ErrTrace = errors.New("bad trace")

// Trace is one VM's CPU demand: a percentage of its MIPS per sample.
type Trace struct {
	Name string
	// Percent holds SamplesPerDay integers in [0, 100].
	Percent []uint8
}

// Day is a trace folder: one trace per VM, in VM order.
type Day struct {
	Dir    string
	Traces []Trace
}

// ParseTrace reads one trace file: exactly SamplesPerDay lines, each one
// integer in [0, 100] (surrounding blanks and a final newline allowed, as
// CRLF line ends). name is only used in errors, which say "name:line: ...".
func ParseTrace(name string, r io.Reader) (Trace, error) {
	t := Trace{Name: filepath.Base(name), Percent: make([]uint8, 0, SamplesPerDay)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64), 1<<16)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" {
			// A blank line is an error unless only blanks follow: editors
			// leave a trailing empty line, and that is not a sample.
			if rest, err := onlyBlanksFollow(sc); err != nil {
				return t, fmt.Errorf("%w: %s:%d: %v", ErrTrace, name, line, err)
			} else if rest {
				break
			}
			return t, fmt.Errorf("%w: %s:%d: empty line (want one integer CPU %% per line)", ErrTrace, name, line)
		}
		if len(t.Percent) == SamplesPerDay {
			return t, fmt.Errorf("%w: %s:%d: more than %d samples", ErrTrace, name, line, SamplesPerDay)
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return t, fmt.Errorf("%w: %s:%d: %q is not an integer CPU percentage", ErrTrace, name, line, shorten(s))
		}
		if v < 0 || v > 100 {
			return t, fmt.Errorf("%w: %s:%d: CPU %d%% out of range [0, 100]", ErrTrace, name, line, v)
		}
		t.Percent = append(t.Percent, uint8(v))
	}
	if err := sc.Err(); err != nil {
		return t, fmt.Errorf("%w: %s:%d: %v", ErrTrace, name, line+1, err)
	}
	if len(t.Percent) == 0 {
		return t, fmt.Errorf("%w: %s:1: empty file, want %d samples (one every 300 s for 24 h)", ErrTrace, name, SamplesPerDay)
	}
	if len(t.Percent) != SamplesPerDay {
		return t, fmt.Errorf("%w: %s:%d: %d samples, want %d (one every 300 s for 24 h)", ErrTrace, name, line, len(t.Percent), SamplesPerDay)
	}
	return t, nil
}

// onlyBlanksFollow consumes the rest of the scanner and reports whether
// every remaining line is blank.
func onlyBlanksFollow(sc *bufio.Scanner) (bool, error) {
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			return false, nil
		}
	}
	return true, sc.Err()
}

func shorten(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// ReadDay reads every regular file of dir as a trace, in name order.
// Hidden files (".name") are skipped.
func ReadDay(dir string) (*Day, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%w: trace folder %s: %w", ErrTrace, dir, err)
	}
	d := &Day{Dir: dir}
	for _, e := range ents { // os.ReadDir sorts by name
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		t, err := readTraceFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		d.Traces = append(d.Traces, t)
	}
	if len(d.Traces) == 0 {
		return nil, fmt.Errorf("%w: trace folder %s: no trace files", ErrTrace, dir)
	}
	return d, nil
}

func readTraceFile(path string) (Trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Trace{}, fmt.Errorf("%w: %w", ErrTrace, err)
	}
	return ParseTrace(path, bytes.NewReader(data))
}

// ParseVMOrder reads a VM-order file (CloudSim's directory order in the
// reference runs): one VM a line, "INDEX NAME MIPS", where NAME may contain
// spaces (the first field is the index, the last the MIPS, all between is
// the name). Lines starting with '#' and blank lines are skipped. Indices
// must run 0, 1, 2, ... in order. It returns the names, in VM order.
func ParseVMOrder(name string, r io.Reader) ([]string, error) {
	var names []string
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) < 3 {
			return nil, fmt.Errorf("%w: %s:%d: want \"INDEX NAME MIPS\", got %q", ErrTrace, name, line, shorten(s))
		}
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx != len(names) {
			return nil, fmt.Errorf("%w: %s:%d: VM index %q, want %d", ErrTrace, name, line, f[0], len(names))
		}
		if _, err := strconv.ParseFloat(f[len(f)-1], 64); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: MIPS %q is not a number", ErrTrace, name, line, f[len(f)-1])
		}
		// The name is the text between the first and the last field,
		// blanks inside it kept as they are.
		rest := strings.TrimSpace(s[len(f[0]):])
		rest = strings.TrimSpace(rest[:len(rest)-len(f[len(f)-1])])
		names = append(names, rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrace, name, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: %s: no VMs listed", ErrTrace, name)
	}
	return names, nil
}

// ReadVMOrder reads a VM-order file, see ParseVMOrder.
func ReadVMOrder(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: VM order: %w", ErrTrace, err)
	}
	return ParseVMOrder(path, bytes.NewReader(data))
}

// Reorder puts the traces in the order of names (a VM-order file). Every
// name must be a trace of the day and every trace must be named once.
// orderFile is only used in errors.
func (d *Day) Reorder(orderFile string, names []string) error {
	byName := make(map[string]int, len(d.Traces))
	for i, t := range d.Traces {
		byName[t.Name] = i
	}
	out := make([]Trace, 0, len(names))
	used := make([]bool, len(d.Traces))
	for i, n := range names {
		j, ok := byName[n]
		if !ok {
			return fmt.Errorf("%w: %s: VM %d names %q, which is not a file of %s", ErrTrace, orderFile, i, n, d.Dir)
		}
		if used[j] {
			return fmt.Errorf("%w: %s: VM %d names %q a second time", ErrTrace, orderFile, i, n)
		}
		used[j] = true
		out = append(out, d.Traces[j])
	}
	if k := slices.Index(used, false); k >= 0 {
		return fmt.Errorf("%w: %s lists %d VMs, %s has %d traces (%q is missing)", ErrTrace, orderFile, len(names), d.Dir, len(d.Traces), d.Traces[k].Name)
	}
	d.Traces = out
	return nil
}

// Repeat is the day with its VMs copied n times over (copy k's traces named
// "NAME#k"), for runs at a multiple of the data center's size.
func (d *Day) Repeat(n int) *Day {
	if n <= 1 {
		return d
	}
	out := &Day{Dir: d.Dir, Traces: make([]Trace, 0, n*len(d.Traces))}
	for k := range n {
		for _, t := range d.Traces {
			if k > 0 {
				t.Name += "#" + strconv.Itoa(k)
			}
			out.Traces = append(out.Traces, t)
		}
	}
	return out
}
