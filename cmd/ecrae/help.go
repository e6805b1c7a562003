package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes (README "Exit codes"): 0 done, 1 failed, 2 usage, 3 done but
// not fully (an unplaced instance, a dry run that found problems).
const (
	exitOK      = 0
	exitFailed  = 1
	exitUsage   = 2
	exitPartial = 3
)

// errPartial marks a command that did its work but not all of it: the
// output is valid, and a script must still notice.
var errPartial = errors.New("not fully done")

// exitCode maps a command's error to the process's exit status.
func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errPartial):
		return exitPartial
	}
	return exitFailed
}

// wantsHelp reports whether the command line asks for help (-h, -help,
// --help before any "--"), so usage goes to stdout and the exit is 0.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

// isHelp reports whether one argument is a help flag or word.
func isHelp(a string) bool {
	return a == "help" || wantsHelp([]string{a})
}

// printVersion writes the build information Go embeds in the binary.
func printVersion(w io.Writer) error {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		_, err := fmt.Fprintln(w, "ecrae (no build information)")
		return err
	}
	_, err := io.WriteString(w, versionText(bi))
	return err
}

func versionText(bi *debug.BuildInfo) string {
	s := map[string]string{}
	for _, kv := range bi.Settings {
		s[kv.Key] = kv.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ecrae %s\n", orUnknown(bi.Main.Version))
	fmt.Fprintf(&b, "  revision  %s\n", orUnknown(s["vcs.revision"]))
	fmt.Fprintf(&b, "  time      %s\n", orUnknown(s["vcs.time"]))
	fmt.Fprintf(&b, "  modified  %s\n", orUnknown(s["vcs.modified"]))
	fmt.Fprintf(&b, "  go        %s\n", bi.GoVersion)
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// partialError keeps its message and adds errPartial to what it matches.
type partialError struct{ err error }

func (e partialError) Error() string   { return e.err.Error() }
func (e partialError) Unwrap() []error { return []error{e.err, errPartial} }

// partial marks err as done-but-not-fully (exit 3).
func partial(err error) error { return partialError{err} }

// flagError rewrites a service's InvalidArgument that names a request field
// ("instances[0].flavor.memory_mb: ...") to name the flag the user typed
// ("--ram-mb: ..."); other errors pass unchanged.
func flagError(err error, flags map[string]string) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.InvalidArgument {
		return err
	}
	field, rest, ok := strings.Cut(s.Message(), ": ")
	if !ok {
		return err
	}
	if i := strings.Index(field, "]."); i >= 0 { // drop "instances[0]."
		field = field[i+2:]
	} else if j := strings.Index(field, "."); j >= 0 && strings.HasPrefix(field, "instance") {
		field = field[j+1:]
	}
	flag, ok := flags[field]
	if !ok {
		return err
	}
	return fmt.Errorf("%w: %s: %s", errUsage, flag, fieldsToFlags(rest, flags))
}

// fieldsToFlags names the flags for request fields a message mentions in
// passing ("give vcpus and memory_mb" → "give --vcpus and --ram-mb"). Only
// names no English word can be taken for: snake_case ones and "vcpus".
func fieldsToFlags(msg string, flags map[string]string) string {
	for key, flag := range flags {
		name := key[strings.LastIndex(key, ".")+1:]
		if !strings.Contains(name, "_") && name != "vcpus" {
			continue
		}
		msg = regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).ReplaceAllString(msg, flag)
	}
	return msg
}

// instanceFlags maps InstanceRequest fields to score's flags.
func instanceFlags() map[string]string {
	return map[string]string{
		"flavor.name": "--flavor", "flavor.vcpus": "--vcpus", "flavor.memory_mb": "--ram-mb",
		"flavor.root_gb": "--disk-gb", "tag": "--tag",
	}
}

// planFlags maps PlanRebalanceRequest fields to rebalance plan's flags.
func planFlags() map[string]string {
	return map[string]string{
		"algorithm": "--algorithm", "time_limit": "--time-limit", "max_migrations": "--max-migrations",
		"max_per_host": "--max-per-host", "max_parallel": "--max-parallel", "seed": "--seed", "relieve": "--relieve",
	}
}

// plural writes "1 migration", "2 migrations".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
