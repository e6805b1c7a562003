package main

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// kbHistory prints the kept revisions of the KB.
func kbHistory(ctx context.Context, cf *clientFlags, stdout io.Writer) error {
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).ListKnowledgeBaseRevisions(cctx, &ecraev1.ListKnowledgeBaseRevisionsRequest{})
	if err != nil {
		return cf.rpcError("kb history", err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "REVISION\tARCHITECTURES\tTAGS\tFLAVORS\tHOSTS\tREPLACED AT\tBY")
	for _, r := range resp.GetRevisions() {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.GetRevision(), r.GetArchitectures(), r.GetTags(), r.GetFlavors(), r.GetHosts(),
			r.GetUntil().AsTime().Format(time.RFC3339), r.GetChange())
	}
	// The current revision's counts, from the KB itself (blank if it
	// cannot be read: the list above is still right).
	counts := "\t\t\t"
	if kb, err := kbAt(cctx, ecraev1.NewKnowledgeBaseServiceClient(conn), 0); err == nil {
		counts = fmt.Sprintf("%d\t%d\t%d\t%d", len(kb.Architectures), len(kb.Tags), len(kb.Flavors), len(kb.Hosts))
	}
	fmt.Fprintf(tw, "%d (current)\t%s\t-\t-\n", resp.GetCurrent(), counts)
	return tw.Flush()
}

// kbChange is how one revision differs from another, by kind and name.
type kbChange struct {
	Kind    string   `json:"kind"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"`
}

// diffKB lists what going from a to b adds, removes and changes.
func diffKB(a, b *kbstore.KB) []kbChange {
	out := []kbChange{
		diffNamed("architecture", a.Architectures, b.Architectures, func(x kbstore.Architecture) string { return x.Name }),
		diffNamed("tag", a.Tags, b.Tags, func(x kbstore.Tag) string { return x.Name }),
		diffNamed("flavor", a.Flavors, b.Flavors, func(x kbstore.Flavor) string { return x.Name }),
		diffNamed("host", a.Hosts, b.Hosts, func(x kbstore.Host) string { return x.Name }),
	}
	return out
}

func diffNamed[T any](kind string, a, b []T, name func(T) string) kbChange {
	c := kbChange{Kind: kind, Added: []string{}, Removed: []string{}, Changed: []string{}}
	in := make(map[string]T, len(a))
	for _, x := range a {
		in[name(x)] = x
	}
	seen := map[string]bool{}
	for _, y := range b {
		n := name(y)
		seen[n] = true
		x, ok := in[n]
		switch {
		case !ok:
			c.Added = append(c.Added, n)
		case !reflect.DeepEqual(x, y):
			c.Changed = append(c.Changed, n)
		}
	}
	for _, x := range a {
		if !seen[name(x)] {
			c.Removed = append(c.Removed, name(x))
		}
	}
	return c
}

func printKBDiff(w io.Writer, from, to string, changes []kbChange) bool {
	changed := false
	for _, c := range changes {
		for _, l := range []struct {
			sign  string
			names []string
		}{{"+", c.Added}, {"-", c.Removed}, {"~", c.Changed}} {
			for _, n := range l.names {
				fmt.Fprintf(w, "%s %s %s\n", l.sign, c.Kind, n)
				changed = true
			}
		}
	}
	if !changed {
		fmt.Fprintf(w, "%s and %s are the same\n", from, to)
	}
	return changed
}

// kbAt exports the KB at rev (0: current) and parses it.
func kbAt(ctx context.Context, kbc ecraev1.KnowledgeBaseServiceClient, rev uint64) (*kbstore.KB, error) {
	resp, err := kbc.ExportKnowledgeBase(ctx, &ecraev1.ExportKnowledgeBaseRequest{Revision: rev})
	if err != nil {
		return nil, err
	}
	return kbstore.ParseYAML(fmt.Sprintf("revision %d", rev), []byte(resp.GetYaml()))
}

// kbDiff prints what rolling back to rev would change: the current KB
// against revision rev ("+" would be added back, "-" removed).
func kbDiff(ctx context.Context, cf *clientFlags, revArg string, stdout io.Writer) error {
	rev, err := parseRevision(revArg)
	if err != nil {
		return err
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	kbc := ecraev1.NewKnowledgeBaseServiceClient(conn)
	cur, err := kbAt(cctx, kbc, 0)
	if err != nil {
		return cf.rpcError("kb diff: current", err)
	}
	old, err := kbAt(cctx, kbc, rev)
	if err != nil {
		return cf.rpcError(fmt.Sprintf("kb diff: revision %d", rev), err)
	}
	changes := diffKB(cur, old)
	if cf.json {
		return printJSON(stdout, map[string]any{"from": "current", "to": rev, "changes": changes})
	}
	printKBDiff(stdout, "the current KB", fmt.Sprintf("revision %d", rev), changes)
	return nil
}

// kbRollback makes the KB what it was at rev; without --yes it only shows
// what would change.
func kbRollback(ctx context.Context, cf *clientFlags, revArg string, yes bool, stdout io.Writer) error {
	rev, err := parseRevision(revArg)
	if err != nil {
		return err
	}
	if !yes {
		if err := kbDiff(ctx, cf, revArg, stdout); err != nil {
			return err
		}
		return fmt.Errorf("%w: kb rollback %d changes the KB as shown above: add --yes to do it", errUsage, rev)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).RollbackKnowledgeBase(cctx, &ecraev1.RollbackKnowledgeBaseRequest{Revision: rev})
	if err != nil {
		return cf.rpcError(fmt.Sprintf("kb rollback %d", rev), err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	fmt.Fprintf(stdout, "rolled back to revision %d; the KB is now revision %d (undo: ecrae kb rollback %d --yes)\n", rev, resp.GetRevision(), resp.GetRevision()-1)
	return nil
}

func parseRevision(s string) (uint64, error) {
	rev, err := strconv.ParseUint(s, 10, 64)
	if err != nil || rev == 0 {
		return 0, fmt.Errorf("%w: REV %s is not a revision number (see ecrae kb history)", errUsage, quote.Value(s))
	}
	return rev, nil
}
