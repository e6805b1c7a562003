package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A taken port stops serve before it creates anything: no KB file, no NATS
// store, and the error names the flag.
func TestServeTakenPortCreatesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--nats-addr", "--grpc-addr", "--http-addr"} {
		t.Run(flag, func(t *testing.T) {
			dir := t.TempDir()
			a := freeAddrs(t, 3)
			c := serveConfig{grpcAddr: a[0], httpAddr: a[1], natsURL: "embedded", natsAddr: a[2],
				dbPath: filepath.Join(dir, "ecrae.db"), defaultTag: "default", shutdownGrace: time.Second}
			switch flag {
			case "--nats-addr":
				c.natsAddr = taken.Addr().String()
			case "--grpc-addr":
				c.grpcAddr = taken.Addr().String()
			case "--http-addr":
				c.httpAddr = taken.Addr().String()
			}
			err := serve(context.Background(), c, nil, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), flag+" "+taken.Addr().String()) {
				t.Fatalf("got %v, want an error naming %s", err, flag)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("serve created %v", entries)
			}
			if _, err := os.Stat(c.dbPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("KB file: %v", err)
			}
		})
	}
}
