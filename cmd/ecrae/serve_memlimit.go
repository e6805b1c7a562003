package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/ecrae/ecrae/internal/memlimit"
)

// autoMemoryLimit reports whether serve derives its soft memory limit from
// the live heap: --memory-limit auto and no GOMEMLIMIT in the environment.
func autoMemoryLimit(flag string) bool {
	_, env := os.LookupEnv("GOMEMLIMIT")
	return flag == "auto" && !env
}

// applyMemoryLimit checks --memory-limit and sets a fixed one at once (the
// GOMEMLIMIT variable, when set, wins); "auto" is left to followMemoryLimit.
func applyMemoryLimit(flag string) error {
	if flag == "auto" {
		return nil
	}
	limit, err := parseBytes(flag)
	if err != nil {
		return fmt.Errorf("%w: --memory-limit: %v (a size such as 2GiB, 0, or auto)", errUsage, err)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	return nil
}

// followMemoryLimit keeps the limit at max(1 GiB, 4 × live heap) until ctx
// ends, when --memory-limit is auto; otherwise it returns at once.
func followMemoryLimit(ctx context.Context, flag string, log *slog.Logger) error {
	if !autoMemoryLimit(flag) {
		return nil
	}
	c := &memlimit.Controller{Floor: memlimit.DefaultFloor, Factor: memlimit.DefaultFactor, Interval: memlimit.DefaultInterval, Log: log}
	return c.Run(ctx)
}
