package sim

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func traceText(n int, v string) string {
	return strings.Repeat(v+"\n", n)
}

func TestParseTrace(t *testing.T) {
	tests := []struct {
		name, text string
		err        string // substring; "" = valid
	}{
		{"valid", traceText(288, "42"), ""},
		{"crlf and blanks", strings.ReplaceAll(traceText(288, " 7 "), "\n", "\r\n"), ""},
		{"trailing empty lines", traceText(288, "0") + "\n\n", ""},
		{"short", traceText(287, "5"), "f:287: 287 samples, want 288"},
		{"long", traceText(289, "5"), "f:289: more than 288 samples"},
		{"empty", "", "f:1: empty file"},
		{"over 100", traceText(10, "5") + "101\n" + traceText(277, "5"), "f:11: CPU 101% out of range"},
		{"negative", "-1\n" + traceText(287, "5"), "f:1: CPU -1% out of range"},
		{"not a number", traceText(3, "5") + "4.5\n" + traceText(284, "5"), `f:4: "4.5" is not an integer`},
		{"blank inside", traceText(3, "5") + "\n" + traceText(284, "5"), "f:4: empty line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ParseTrace("f", strings.NewReader(tc.text))
			if tc.err == "" {
				if err != nil || len(tr.Percent) != SamplesPerDay {
					t.Fatalf("err %v, %d samples", err, len(tr.Percent))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrTrace) {
				t.Fatalf("err %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestReadDay(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a c", ".hidden"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(traceText(288, "1")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := ReadDay(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Traces) != 2 || d.Traces[0].Name != "a c" || d.Traces[1].Name != "b" {
		t.Fatalf("traces %v, want [a c] [b] in name order", d.Traces)
	}
	order := "# comment\n0 b 2500\n1 a c 2000\n"
	names, err := ParseVMOrder("order.txt", strings.NewReader(order))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[1] != "a c" {
		t.Fatalf("names %q", names)
	}
	if err := d.Reorder("order.txt", names); err != nil || d.Traces[0].Name != "b" {
		t.Fatalf("reorder: %v %v", err, d.Traces)
	}

	if _, err := ReadDay(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing folder: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short"), []byte(traceText(100, "1")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDay(dir); err == nil || !strings.Contains(err.Error(), "short:100: 100 samples") {
		t.Errorf("short file: %v", err)
	}
	if _, err := ReadDay(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no trace files") {
		t.Errorf("empty folder: %v", err)
	}
}

func TestVMOrderErrors(t *testing.T) {
	for _, tc := range []struct{ text, err string }{
		{"0 a\n", "o:1: want \"INDEX NAME MIPS\""},
		{"1 a 100\n", "o:1: VM index \"1\", want 0"},
		{"0 a x\n", "o:1: MIPS \"x\""},
		{"# nothing\n", "no VMs listed"},
	} {
		if _, err := ParseVMOrder("o", strings.NewReader(tc.text)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %q", tc.text, err, tc.err)
		}
	}
	d := genDay(2, constant(1))
	if err := d.Reorder("o", []string{"vma0", "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown name: %v", err)
	}
	if err := d.Reorder("o", []string{"vma0", "vma0"}); err == nil || !strings.Contains(err.Error(), "second time") {
		t.Errorf("twice: %v", err)
	}
	if err := d.Reorder("o", []string{"vma0"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("short list: %v", err)
	}
}

// FuzzParseTrace: whatever the input, the parser either returns 288
// samples in [0, 100] or an ErrTrace that names the file and a line.
func FuzzParseTrace(f *testing.F) {
	f.Add(traceText(288, "42"))
	f.Add(traceText(287, "1"))
	f.Add(traceText(288, "101"))
	f.Add("0\r\n1\n\n2")
	f.Add(traceText(288, "-0") + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := ParseTrace("fz", strings.NewReader(s))
		if err != nil {
			if !errors.Is(err, ErrTrace) || !strings.Contains(err.Error(), "fz:") {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		if len(tr.Percent) != SamplesPerDay {
			t.Fatalf("%d samples", len(tr.Percent))
		}
		for _, p := range tr.Percent {
			if p > 100 {
				t.Fatalf("sample %d", p)
			}
		}
	})
}

func TestDayRepeat(t *testing.T) {
	d := genDay(2, constant(10))
	r := d.Repeat(3)
	if len(r.Traces) != 6 || r.Dir != d.Dir {
		t.Fatalf("%d traces in %q, want 6 in %q", len(r.Traces), r.Dir, d.Dir)
	}
	// Copy k of trace i is trace k·n + i, named NAME#k from the second on.
	if r.Traces[0].Name != d.Traces[0].Name || r.Traces[3].Name != d.Traces[1].Name+"#1" || r.Traces[5].Name != d.Traces[1].Name+"#2" {
		t.Errorf("names %q %q %q", r.Traces[0].Name, r.Traces[3].Name, r.Traces[5].Name)
	}
	if len(d.Traces) != 2 || d.Traces[1].Name != r.Traces[1].Name {
		t.Errorf("the original day changed: %d traces, %q", len(d.Traces), d.Traces[1].Name)
	}
	if d.Repeat(1) != d {
		t.Error("Repeat(1) is not the day itself")
	}
}
