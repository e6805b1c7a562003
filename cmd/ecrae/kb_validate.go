package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// kbValidate checks a KB file the way an import would take it and reports
// every problem of every entity: merged into the running KB (--merge), standing
// alone (--replace), or by default merged into the default KB a fresh
// service starts with, offline.
func kbValidate(ctx context.Context, cf *clientFlags, file string, merge, replace bool, stdin io.Reader, stdout io.Writer) error {
	if merge && replace {
		return fmt.Errorf("%w: --merge and --replace exclude each other", errUsage)
	}
	data, err := readInput(file, stdin)
	if err != nil {
		return err
	}
	var base *kbstore.KB
	against := "standing alone (as kb import --replace takes it)"
	switch {
	case merge:
		conn, cctx, done, err := cf.connect(ctx)
		if err != nil {
			return err
		}
		defer done()
		if base, err = kbAt(cctx, ecraev1.NewKnowledgeBaseServiceClient(conn), 0); err != nil {
			return cf.rpcError("read the running KB", err)
		}
		against = "merged into the running KB"
	case !replace:
		if base, err = kbstore.Default(); err != nil {
			return err
		}
		against = "merged into the default KB (--merge: the running one)"
	}
	errs := kbstore.CheckYAML(file, data, base)
	if cf.json {
		msgs := make([]map[string]any, len(errs))
		for i, e := range errs {
			msgs[i] = map[string]any{"file": e.File, "line": e.Line, "field": e.Field, "message": e.Msg}
		}
		if err := printJSON(stdout, map[string]any{"file": file, "against": against, "valid": len(errs) == 0, "errors": msgs}); err != nil {
			return err
		}
	} else {
		for _, e := range errs {
			fmt.Fprintln(stdout, e.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w (%s in all, %s)", errs[0], plural(len(errs), "error"), against)
	}
	if !cf.json {
		kb, err := kbstore.ParseYAMLMerge(file, data, base) // the file's own entities, to count them
		if base == nil {
			kb, err = kbstore.ParseYAML(file, data)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		fmt.Fprintf(stdout, "%s: valid, %s (%s, %s, %s, %s)\n", file, against,
			plural(len(kb.Architectures), "architecture"), plural(len(kb.Tags), "tag"), plural(len(kb.Flavors), "flavor"), plural(len(kb.Hosts), "host"))
	}
	return nil
}
