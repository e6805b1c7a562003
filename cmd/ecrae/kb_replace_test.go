package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestIsTerminalNotDevNull: /dev/null is a character device but nobody can
// answer on it (stdin under cron or systemd): kb import --replace must ask
// for --yes there, not prompt into the void. A pipe and a non-file reader
// are no terminals either.
func TestIsTerminalNotDevNull(t *testing.T) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, in := range map[string]io.Reader{"/dev/null": null, "pipe": r, "reader": strings.NewReader("y\n")} {
		if isTerminal(in) {
			t.Errorf("%s: taken for a terminal", name)
		}
	}
}
