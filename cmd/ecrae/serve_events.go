package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/ecrae/ecrae/events"
)

// eventsServe is the host view ingestion's part of `ecrae serve` (issue
// 11): how far in the future a notification may be dated, and how often
// the view is saved with the stream position it covers.
type eventsServe struct {
	clockSkew  time.Duration
	checkpoint time.Duration
}

func (e *eventsServe) register(fs *flag.FlagSet) {
	fs.DurationVar(&e.clockSkew, "clock-skew", events.DefaultClockSkew, "notifications and samples dated later than now + this are refused (and counted)")
	fs.DurationVar(&e.checkpoint, "view-checkpoint", 10*time.Second, "how often the host view is saved with the stream position it covers (a restart re-reads the stream from there)")
}

// check refuses values the flags cannot mean (a zero config, built without
// the flags, takes the defaults).
func (e *eventsServe) check() error {
	if e.clockSkew <= 0 {
		return fmt.Errorf("%w: --clock-skew %s: want a duration > 0", errUsage, e.clockSkew)
	}
	if e.checkpoint <= 0 {
		return fmt.Errorf("%w: --view-checkpoint %s: want a duration > 0", errUsage, e.checkpoint)
	}
	return nil
}

// config fills the ingestion's part of cfg.
func (e *eventsServe) config(cfg events.Config) events.Config {
	cfg.ClockSkew, cfg.CheckpointEvery = e.clockSkew, e.checkpoint
	return cfg
}
