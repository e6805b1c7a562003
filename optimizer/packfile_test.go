package optimizer

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleVBP = `3
100 100 100
3
50 20 10 1
24 -1 26 2

10 10 10 1
`

const sampleVMP = `VMP_T1
90,10
16,32
32,128
3
6 26 2
3 15 10
8 33 1
`

func TestParseVBP(t *testing.T) {
	inst, err := ParseVBP([]byte(sampleVBP))
	if err != nil {
		t.Fatal(err)
	}
	want := &PackInstance{Format: "vbp", Dims: 3,
		BinTypes: []PackBinType{{Capacity: []int64{100, 100, 100}}},
		Items:    [][]int64{{50, 20, 10}, {24, -1, 26}, {24, -1, 26}, {10, 10, 10}},
		Lines:    []int{4, 5, 5, 7}}
	if d := cmp.Diff(want, inst); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestParseVMP(t *testing.T) {
	inst, err := ParseVMP([]byte(sampleVMP))
	if err != nil {
		t.Fatal(err)
	}
	want := &PackInstance{Name: "VMP_T1", Format: "vmp", Dims: 2,
		BinTypes: []PackBinType{{Capacity: []int64{16, 32}, Count: 90}, {Capacity: []int64{32, 128}, Count: 10}},
		Items:    [][]int64{{6, 26}, {3, 15}, {8, 33}},
		Lines:    []int{6, 7, 8}}
	if d := cmp.Diff(want, inst); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	homog, err := ParseVMP([]byte("A\n5\n500\n500\n1\n70 20 8\n"))
	if err != nil || homog.BinTypes[0].Count != 5 || homog.binCount() != 5 {
		t.Errorf("homogeneous: %+v, %v", homog, err)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, file, data, want string
	}{
		{"vbp dims", "x.vbp", "two\n", "line 1"},
		{"vbp caps count", "x.vbp", "2\n10\n", "line 2: want 2 bin capacities, got 1"},
		{"vbp item fields", "x.vbp", "2\n10 10\n1\n3 4\n", "line 4: want 3 numbers"},
		{"vbp negative count", "x.vbp", "1\n10\n1\n3 -1\n", "line 4: item count"},
		{"vbp short", "x.vbp", "1\n10\n2\n3 1\n", "line 5: unexpected end of file: 1 of 2 item types read"},
		{"vbp trailing", "x.vbp", "1\n10\n1\n3 1\n9 9\n", "line 5: unexpected"},
		{"vmp types", "x.vmp", "n\n90,10\n16\n32,128\n1\n1 1 1\n", "line 3: 1 CPU capacities for 2 host types"},
		{"vmp vm", "x.vmp", "n\n1\n16\n32\n2\n1 1 1\n1 x 1\n", "line 7: VM"},
		{"vmp count", "x.vmp", "n\n1\n16\n32\n3\n1 1 1\n", "line 7: unexpected end of file: 1 of 3 VMs read"},
		{"extension", "x.txt", "", "want a .vbp or .vmp file"},
	}
	for _, c := range cases {
		_, err := ParsePackFile(c.file, []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
	}
}

// FuzzParsePack: the parsers never panic, and whatever they accept either
// fails Check with a reason or packs validly.
func FuzzParsePack(f *testing.F) {
	f.Add(".vbp", []byte(sampleVBP))
	f.Add(".vmp", []byte(sampleVMP))
	f.Add(".vbp", []byte("1\n10\n1\n11 1\n"))
	f.Add(".vbp", []byte("2\n10 10\n2\n5 5 3\n-4 9 1\n"))
	f.Add(".vmp", []byte("n\n3\n16\n32\n2\n16 32 0\n1 1 1\n"))
	f.Add(".vmp", []byte("n\n0\n16\n32\n1\n1 1 1\n"))
	f.Fuzz(func(t *testing.T, ext string, data []byte) {
		if ext != ".vbp" && ext != ".vmp" {
			ext = ".vbp"
		}
		inst, err := ParsePackFile("f"+ext, data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse error without ErrMalformed: %v", err)
			}
			return
		}
		if len(inst.Lines) != len(inst.Items) {
			t.Fatalf("%d lines for %d items", len(inst.Lines), len(inst.Items))
		}
		if len(inst.Items) > 40 || inst.binCount() > 200 || inst.Dims > 8 {
			return // packing huge inputs proves nothing more and is slow
		}
		res, err := Pack(inst, PackOptions{Seed: 1, Budget: Budget{MaxIterations: 300}})
		if err != nil {
			if errors.Is(err, ErrItemTooLarge) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrNoRoom) {
				return
			}
			t.Fatalf("pack: %v", err)
		}
		if used, err := CheckPacking(inst, res.Assignment); err != nil || used != res.Bins {
			t.Fatalf("invalid packing: %v (%d used, %d reported)", err, used, res.Bins)
		}
		if res.Bins < res.Bounds.Bins && !hasNegative(inst) {
			t.Fatalf("%d bins below the bound %d", res.Bins, res.Bounds.Bins)
		}
	})
}

func hasNegative(inst *PackInstance) bool {
	for _, it := range inst.Items {
		for _, x := range it {
			if x < 0 {
				return true
			}
		}
	}
	return false
}
