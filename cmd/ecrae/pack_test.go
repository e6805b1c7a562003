package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestPackPrintsOneCheckedJSONObject(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "t.vbp")
	// Two triplets that fill (almost) a bin each, in 2 dimensions: 199 of
	// 200 in all, so the bound is 2 too.
	writeFile(t, file, "2\n100 100\n4\n50 50 2\n26 26 1\n25 25 1\n24 24 2\n")
	out, err := cli(t, "pack", file, "--seed", "3", "--time-limit", "2s")
	if err != nil {
		t.Fatalf("pack: %v\n%s", err, out)
	}
	var res struct {
		Bins       int     `json:"bins"`
		LowerBound int     `json:"lower_bound"`
		Valid      bool    `json:"valid"`
		Seconds    float64 `json:"seconds"`
		Algorithm  string  `json:"algorithm"`
		Seed       uint64  `json:"seed"`
		Assignment []int   `json:"assignment"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("more than one line:\n%s", out)
	}
	if res.Bins != 2 || res.LowerBound != 2 || !res.Valid || res.Algorithm == "" || res.Seed != 3 || len(res.Assignment) != 6 {
		t.Errorf("result %+v", res)
	}
}

func TestPackVMP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.vmp")
	writeFile(t, file, "T\n9,1\n16,32\n32,128\n3\n16 32 0\n30 100 0\n2 20 1\n")
	out, err := cli(t, "pack", file, "--algorithm", "ffd-l1")
	if err != nil || !strings.Contains(out, `"valid":true`) || !strings.Contains(out, `"bins":2`) {
		t.Fatalf("pack: %v\n%s", err, out)
	}
}

func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.vbp")
	writeFile(t, bad, "2\n100 100\n1\n50 x 1\n")
	big := filepath.Join(dir, "big.vbp")
	writeFile(t, big, "2\n100 100\n2\n50 50 1\n101 1 1\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"pack", bad}, "line 4"},
		{[]string{"pack", big}, "item 1 (line 5) of size 101,1 is larger than every bin"},
		{[]string{"pack", big, "--algorithm", "nope"}, "unknown algorithm"},
		{[]string{"pack"}, "pack takes one FILE"},
		{[]string{"pack", filepath.Join(dir, "none.vbp")}, "no such file"},
	}
	for _, c := range cases {
		out, err := cli(t, c.args...)
		if err == nil || !strings.Contains(err.Error()+out, c.want) {
			t.Errorf("%v: err %v, output %q; want %q", c.args, err, out, c.want)
		}
	}
}

// TestPackInterrupted: a cancelled context (SIGTERM or SIGINT in main)
// stops the solver in construction; the valid packing it has is printed,
// with a note, and the command fails with one line saying so.
func TestPackInterrupted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "t.vbp")
	var b strings.Builder
	b.WriteString("2\n100 100\n3\n")
	b.WriteString("30 20 2000\n20 30 2000\n45 45 1000\n")
	writeFile(t, file, b.String())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	err := run(ctx, []string{"pack", file, "--time-limit", "1h"}, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want interrupted", err)
	}
	var res struct {
		Bins    int    `json:"bins"`
		Valid   bool   `json:"valid"`
		Stopped string `json:"stopped"`
		Note    string `json:"note"`
		Items   int    `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out.String())
	}
	if !res.Valid || res.Items != 5000 || res.Stopped != "cancelled" || res.Note == "" || res.Bins == 0 {
		t.Errorf("result %+v", res)
	}
}
