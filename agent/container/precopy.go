package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// DumpStats is what `criu (pre-)dump --display-stats` prints of memory.
type DumpStats struct {
	// FrozenUS: how long the tasks were frozen.
	FrozenUS int64 `json:"frozen_us"`
	// PagesScanned: pages looked at; PagesSkipped: unchanged since the
	// parent images; PagesWritten: pages this dump wrote, the dirty set
	// of a pre-dump round after the first.
	PagesScanned int64 `json:"pages_scanned"`
	PagesSkipped int64 `json:"pages_skipped"`
	PagesWritten int64 `json:"pages_written"`
}

// parseDumpStats reads CRIU's "Displaying dump stats:" block (criu/stats.c:
// "Memory pages written: N (0xN)"). The pages written are required: a dump
// that did not print them gives no dirty set to decide on.
func parseDumpStats(out string) (DumpStats, error) {
	var s DumpStats
	written := false
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		var dst *int64
		switch k {
		case "Frozen time":
			dst = &s.FrozenUS
		case "Memory pages scanned":
			dst = &s.PagesScanned
		case "Memory pages skipped from parent":
			dst = &s.PagesSkipped
		case "Memory pages written":
			dst = &s.PagesWritten
		default:
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return DumpStats{}, fmt.Errorf("criu stats: %s %.100q", k, f[0])
		}
		*dst = n
		if dst == &s.PagesWritten {
			written = true
		}
	}
	if !written {
		return DumpStats{}, errors.New(`criu stats: no "Memory pages written" line`)
	}
	return s, nil
}

// PrecopyPolicy bounds the pre-dump rounds.
type PrecopyPolicy struct {
	// MaxRounds is the most pre-dump rounds before the final dump
	// (default 5).
	MaxRounds int
	// DirtyPages: once a round wrote at most this many pages, the final
	// dump follows; it copies about as many while the container is
	// frozen (default 4096: 16 MiB of 4 KiB pages).
	DirtyPages int64
}

func (p PrecopyPolicy) withDefaults() PrecopyPolicy {
	if p.MaxRounds <= 0 {
		p.MaxRounds = 5
	}
	if p.DirtyPages <= 0 {
		p.DirtyPages = 4096
	}
	return p
}

// precopyDir is the images directory of pre-dump round k (1-based), beside
// the final dump's "images": each names the previous one as its parent,
// relative to itself, the same on both nodes.
func precopyDir(k int) string { return "pre-" + strconv.Itoa(k) }

// PreDump runs one pre-dump round of the process tree at pid into dir,
// with the previous round's images (prev, relative to dir) as parent:
// CRIU writes the pages changed since then, and the task runs on.
func (c CRIU) PreDump(ctx context.Context, pid int, dir, prev string, extra ...string) (DumpStats, error) {
	args := []string{"pre-dump", "--tree", strconv.Itoa(pid), "--track-mem", "--images-dir", dir, "--display-stats", "--log-file", "pre-dump.log"}
	if prev != "" {
		args = append(args, "--prev-images-dir", prev)
	}
	args = append(args, extra...)
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		why := logTail(filepath.Join(dir, "pre-dump.log"))
		if why == "" {
			why = ": " + lastLine(stderr.Bytes())
		}
		return DumpStats{}, fmt.Errorf("criu pre-dump: %w%s", err, why)
	}
	return parseDumpStats(stdout.String())
}

// precopyRounds pre-dumps the container's init (pid) into work/pre-1,
// work/pre-2, ... and hands each round's directory to sent (which sends it
// to the destination while the container runs on), until a round's dirty
// set is under the policy's threshold, the round limit is reached, or the
// dirty set stops shrinking (the container writes faster than it is
// copied: more rounds would not help). It returns every round's stats, the
// last round's directory and why it stopped.
func precopyRounds(ctx context.Context, c CRIU, pid int, work string, pol PrecopyPolicy, sent func(dir string) error) (rounds []DumpStats, last, why string, err error) {
	pol = pol.withDefaults()
	for k := 1; ; k++ {
		dir := precopyDir(k)
		if err := os.Mkdir(filepath.Join(work, dir), 0o700); err != nil {
			return rounds, last, "", err
		}
		prev := ""
		if k > 1 {
			prev = "../" + precopyDir(k-1)
		}
		st, err := c.PreDump(ctx, pid, filepath.Join(work, dir), prev)
		if err != nil {
			return rounds, last, "", fmt.Errorf("pre-dump round %d: %w", k, err)
		}
		rounds = append(rounds, st)
		if err := sent(dir); err != nil {
			return rounds, last, "", fmt.Errorf("pre-dump round %d: %w", k, err)
		}
		last = dir
		switch {
		case st.PagesWritten <= pol.DirtyPages:
			return rounds, last, fmt.Sprintf("round %d wrote %d pages, at most the threshold of %d", k, st.PagesWritten, pol.DirtyPages), nil
		case k >= pol.MaxRounds:
			return rounds, last, fmt.Sprintf("round limit %d reached (%d pages in the last round)", pol.MaxRounds, st.PagesWritten), nil
		case k >= 2 && st.PagesWritten >= rounds[k-2].PagesWritten:
			return rounds, last, fmt.Sprintf("dirty set not shrinking (round %d wrote %d pages, round %d %d)", k, st.PagesWritten, k-1, rounds[k-2].PagesWritten), nil
		}
	}
}
