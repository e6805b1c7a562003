package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"golang.org/x/term"
)

// confirmReplace shows what replacing the KB with next deletes and asks,
// unless yes. Nobody to ask (stdin is not a terminal, or carries the file)
// and no --yes is a usage error naming --yes: a script must say so.
func confirmReplace(ctx context.Context, kbc ecraev1.KnowledgeBaseServiceClient, next *kbstore.KB, fileOnStdin, yes bool, stdin io.Reader, stdout io.Writer) error {
	cur, err := kbAt(ctx, kbc, 0)
	if err != nil {
		return fmt.Errorf("read the running KB: %w", err)
	}
	var gone []string
	for _, c := range diffKB(cur, next) {
		for _, n := range c.Removed {
			gone = append(gone, c.Kind+" "+n)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	fmt.Fprintf(stdout, "kb import --replace deletes %s:\n", plural(len(gone), "item"))
	for _, g := range gone {
		fmt.Fprintln(stdout, "  - "+g)
	}
	switch {
	case yes:
		return nil
	case fileOnStdin || !isTerminal(stdin):
		return fmt.Errorf("%w: kb import --replace deletes %s (listed above) and stdin is not a terminal to ask: add --yes to do it",
			errUsage, plural(len(gone), "item"))
	}
	fmt.Fprint(stdout, "delete them? (every write is kept: ecrae kb history, kb rollback) [y/N] ")
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return fmt.Errorf("kb import --replace: not confirmed, nothing changed")
	}
	return nil
}

// isTerminal reports whether r is a terminal someone can answer on: not
// any character device, since /dev/null (stdin under cron or systemd) is one.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
