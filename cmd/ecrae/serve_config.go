package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/internal/suggest"
	"gopkg.in/yaml.v3"
)

// registerConfig adds --config to fs and returns the function that applies
// the file named by --config in args: each key a flag name without dashes
// ("grpc-addr: 0.0.0.0:50051"), each value as on the command line. It runs
// before fs.Parse, so the flags given on the command line win.
func registerConfig(fs *flag.FlagSet) func(args []string) error {
	fs.String("config", "", "YAML file of serve flags (keys are flag names: grpc-addr, db, ...); flags on the command line win")
	return func(args []string) error {
		file, err := configArg(args)
		if err != nil || file == "" {
			return err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("%w: --config: %w", errUsage, err)
		}
		return applyConfig(fs, file, data)
	}
}

// configArg finds --config's value in args (before any "--").
func configArg(args []string) (string, error) {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val, nil
		}
		if i+1 >= len(args) {
			return "", fmt.Errorf("%w: --config needs a FILE", errUsage)
		}
		return args[i+1], nil
	}
	return "", nil
}

// applyConfig sets fs's flags from a YAML mapping; every error names the
// file and the key; every key is checked before any is set (serve stops
// on any error, so a value that fails to parse leaves nothing running).
func applyConfig(fs *flag.FlagSet, file string, data []byte) error {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%w: --config %s: %w", errUsage, file, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type setting struct{ name, value string }
	var sets []setting
	var errs []string
	for _, k := range keys {
		n := doc[k]
		switch {
		case k == "config":
			errs = append(errs, "config: a config file cannot name another")
			continue
		case fs.Lookup(k) == nil:
			errs = append(errs, fmt.Sprintf("%s: not a serve flag%s", quote.Value(k), suggest.DidYouMean(k, flagNames(fs))))
			continue
		}
		var vals []string
		switch n.Kind {
		case yaml.ScalarNode:
			vals = []string{n.Value}
		case yaml.SequenceNode: // a repeatable flag given several times
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode {
					errs = append(errs, fmt.Sprintf("%s (line %d): want a value or a list of values", k, c.Line))
				}
				vals = append(vals, c.Value)
			}
		default:
			errs = append(errs, fmt.Sprintf("%s (line %d): want a value or a list of values", k, n.Line))
		}
		for _, v := range vals {
			sets = append(sets, setting{k, v})
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: --config %s: %s", errUsage, file, strings.Join(errs, "; "))
	}
	for _, s := range sets {
		if err := fs.Set(s.name, s.value); err != nil {
			return fmt.Errorf("%w: --config %s: %s: %w", errUsage, file, s.name, err)
		}
	}
	return nil
}

func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}
