package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func configFlagSet() (*flag.FlagSet, *string, *time.Duration, *string, func([]string) error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("grpc-addr", "127.0.0.1:50051", "")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "")
	level := fs.String("log-level", "info", "")
	return fs, addr, grace, level, registerConfig(fs)
}

// The file sets flags; the command line wins over the file.
func TestServeConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ecrae.yaml")
	if err := os.WriteFile(file, []byte("grpc-addr: 0.0.0.0:6000\nshutdown-grace: 3s\nlog-level: warn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, addr, grace, level, apply := configFlagSet()
	args := []string{"--config", file, "--log-level=debug"}
	if err := apply(args); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if *addr != "0.0.0.0:6000" || *grace != 3*time.Second || *level != "debug" {
		t.Errorf("grpc-addr %q, shutdown-grace %v, log-level %q; want the file's address and grace, the flag's level", *addr, *grace, *level)
	}
}

func TestServeConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"typo", "grpc-adr: x\n", `"grpc-adr": not a serve flag (did you mean "grpc-addr"?)`},
		{"every error", "grpc-adr: x\nlog-levle: info\n", `did you mean "log-level"?`},
		{"bad value", "shutdown-grace: soon\n", "shutdown-grace: parse error"},
		{"nested", "grpc-addr: {a: 1}\n", "grpc-addr (line 1): want a value"},
		{"not yaml", "grpc-addr: [\n", "--config"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs, addr, _, _, _ := configFlagSet()
			err := applyConfig(fs, "ecrae.yaml", []byte(c.yaml))
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a usage error containing %q", err, c.want)
			}
			if *addr != "127.0.0.1:50051" {
				t.Errorf("a failed file changed --grpc-addr to %q (all or nothing)", *addr)
			}
		})
	}
	fs, _, _, _, _ := configFlagSet()
	err := applyConfig(fs, "ecrae.yaml", []byte("grpc-adr: x\nlog-levle: info\n"))
	if err == nil || strings.Count(err.Error(), "not a serve flag") != 2 {
		t.Errorf("want both keys reported: %v", err)
	}
}

// ecrae serve --config with an unknown key stops before it creates anything.
func TestServeConfigFileRefusedByServe(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ecrae.yaml")
	db := filepath.Join(dir, "kb.db")
	if err := os.WriteFile(file, []byte("db: "+db+"\nnats-adr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--config=" + file}, nil, &stdout, &stderr)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), `did you mean "nats-addr"?`) {
		t.Fatalf("got %v, want exit 2 naming nats-addr", err)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused start created %s", db)
	}
}

func FuzzServeConfig(f *testing.F) {
	f.Add([]byte("grpc-addr: 0.0.0.0:6000\nshutdown-grace: 3s\n"))
	f.Add([]byte("log-level: [a, b]\n"))
	f.Add([]byte("grpc-adr: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, _, _, _, _ := configFlagSet()
		if err := applyConfig(fs, "f.yaml", data); err != nil && !errors.Is(err, errUsage) {
			t.Fatalf("error is not a usage error: %v", err)
		}
	})
}
