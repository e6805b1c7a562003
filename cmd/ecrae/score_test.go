package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// scoreGolden compares got with cmd/ecrae/testdata/NAME; -update rewrites it.
func scoreGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/ecrae -run TestScoreRejectedHostUnscored -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (-update rewrites it):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// TestScoreRejectedHostUnscored: `ecrae score --hosts` over the example
// hosts, against a real service. full-x86 has no vCPU free: the table shows
// no score for it, and in --json its weigh entry says rejected, with no
// score and no breakdown (it used to score 150 while rejected).
func TestScoreRejectedHostUnscored(t *testing.T) {
	c, _ := startServe(t, t.TempDir())
	args := []string{"score", "--server=" + c.grpcAddr, "--hosts=../../examples/nova-hosts.yaml", "--tag=web-frontend", "--vcpus=4", "--ram-mb=4096"}
	out, err := cli(t, args...)
	if err != nil {
		t.Fatalf("score: %v\n%s", err, out)
	}
	scoreGolden(t, "score-nova-hosts.txt", []byte(out))

	out, err = cli(t, append(args, "--json")...)
	if err != nil {
		t.Fatalf("score --json: %v\n%s", err, out)
	}
	scoreGolden(t, "score-nova-hosts.json", []byte(out))
	var doc struct {
		Weigh struct {
			Scores []map[string]any `json:"scores"`
		} `json:"weigh"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range doc.Weigh.Scores {
		if s["host"] != "full-x86" {
			continue
		}
		found = true
		// Every field is present (docs/json.md): a rejected host's score is 0 and its breakdown empty.
		if s["rejected"] != true || s["filter"] != "capacity" || s["score"] != 0.0 || fmt.Sprint(s["breakdown"]) != "[]" || s["marginal_watts"] != 0.0 {
			t.Errorf("full-x86 in --json: %v, want rejected by capacity with no score", s)
		}
	}
	if !found {
		t.Errorf("full-x86 missing from --json:\n%s", out)
	}
}
