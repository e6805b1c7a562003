package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ecrae/ecrae/optimizer"
)

// packOutput is the one JSON object `ecrae pack` prints.
type packOutput struct {
	File       string   `json:"file"`
	Format     string   `json:"format"`
	Items      int      `json:"items"`
	Dims       int      `json:"dims"`
	Bins       int      `json:"bins"`
	LowerBound int      `json:"lower_bound"`
	Bounds     packLBs  `json:"lower_bounds"`
	Valid      bool     `json:"valid"`
	Invalid    string   `json:"invalid"`
	Seconds    float64  `json:"seconds"`
	Algorithm  string   `json:"algorithm"`
	Seed       uint64   `json:"seed"`
	Stopped    string   `json:"stopped"`
	Iterations int      `json:"iterations"`
	Note       string   `json:"note"`
	Assignment []int    `json:"assignment"`
	BinTypes   []binOut `json:"bin_types"`
}

type packLBs struct {
	Continuous int `json:"continuous"`
	L2         int `json:"l2"`
	Conflicts  int `json:"conflicts"`
}

type binOut struct {
	Capacity []int64 `json:"capacity"`
	Count    int     `json:"count"` // 0 = unlimited
}

const packUsage = `ecrae pack FILE [--algorithm NAME] [--seed N] [--time-limit D]

Solves one vector bin-packing instance (.vbp: VPSolver's format; .vmp: VM
placement with host types) and prints one JSON object: bins, lower_bound,
valid (checked independently of the solver), seconds, algorithm, and
assignment, the bin of each item in file order (.vbp: bins numbered in order
of first use; .vmp: the hosts of the file, numbered in the order it lists
their types).

Algorithms:
`

func runPack(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pack", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, packUsage+optimizer.AlgorithmHelp+"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	algo := fs.String("algorithm", optimizer.DefaultAlgorithm, "algorithm name (see above)")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same packing")
	limit := fs.Duration("time-limit", 2*time.Second, "time budget of the search")
	iters := fs.Int("iterations", 0, "iteration budget of the search (0 = the default)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: pack takes one FILE (.vbp or .vmp)", errUsage)
	}
	if *limit <= 0 {
		return fmt.Errorf("%w: --time-limit must be positive", errUsage)
	}
	file := pos[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	inst, err := optimizer.ParsePackFile(file, data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	start := time.Now()
	// SIGTERM or SIGINT (ctx) stops every phase of the solver, which
	// returns the valid packing it has; it is printed, and the exit is
	// non-zero.
	budget := optimizer.Budget{Now: time.Now, Deadline: start.Add(*limit), MaxIterations: *iters}
	res, err := optimizer.Pack(inst, optimizer.PackOptions{
		Algorithm: *algo, Seed: *seed, Budget: budget.WithContext(ctx),
	})
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	secs := time.Since(start).Seconds()
	out := packOutput{
		File: file, Format: inst.Format, Items: len(inst.Items), Dims: inst.Dims,
		Bins: res.Bins, LowerBound: res.Bounds.Bins,
		Bounds:  packLBs{Continuous: res.Bounds.Continuous, L2: res.Bounds.L2, Conflicts: res.Bounds.Conflicts},
		Seconds: secs, Algorithm: res.Algorithm, Seed: res.Seed, Stopped: res.Stopped,
		Iterations: res.Iterations, Note: res.Note, Assignment: res.Assignment,
	}
	for _, t := range inst.BinTypes {
		out.BinTypes = append(out.BinTypes, binOut{Capacity: t.Capacity, Count: t.Count})
	}
	// The check reads only the parsed file and the assignment.
	used, err := optimizer.CheckPacking(inst, res.Assignment)
	out.Valid = err == nil && used == res.Bins
	if err != nil {
		out.Invalid = err.Error()
	} else if used != res.Bins {
		out.Invalid = fmt.Sprintf("the assignment uses %d bins, the solver said %d", used, res.Bins)
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(out); err != nil {
		return err
	}
	if !out.Valid {
		return fmt.Errorf("%s: invalid packing: %s", file, out.Invalid)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: interrupted after %.1f s, the packing printed is the best found: %w", file, secs, err)
	}
	return nil
}
