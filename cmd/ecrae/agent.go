package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ecrae/ecrae/agent"
)

// agentFlags are the flags of `ecrae agent`.
type agentFlags struct {
	nats, host, novaConf, sources string
	raplRoot, procStat            string
	bmc, credentials, redfish     string
	redfishInsecure               bool
	interval, window, timeout     time.Duration
	buffer                        int
	once, json                    bool
	logFormat, logLevel           string
	natsAuth                      natsSecurity
	containers                    containerFlags
}

func (f *agentFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.nats, "nats", "nats://127.0.0.1:4222", "NATS server URL")
	f.natsAuth.registerClient(fs, "")
	fs.StringVar(&f.host, "host", "", "host name in the samples (default: [DEFAULT] host of --nova-conf, else the hostname, as nova-compute)")
	fs.StringVar(&f.novaConf, "nova-conf", "/etc/nova/nova.conf", "nova.conf to read the host name from")
	fs.StringVar(&f.sources, "sources", "rapl,ipmi,redfish,proc", "sources in order of preference: the first that gives a reading wins (proc: utilisation only)")
	fs.StringVar(&f.raplRoot, "rapl-root", "/sys/class/powercap", "Linux powercap tree")
	fs.StringVar(&f.procStat, "proc-stat", "/proc/stat", "kernel CPU statistics")
	fs.StringVar(&f.bmc, "bmc", "", "ipmi://HOST[:PORT] of the BMC (default: the local BMC through /dev/ipmi0)")
	fs.StringVar(&f.credentials, "bmc-credentials", "", "YAML file {username, password} for --bmc and --redfish")
	fs.StringVar(&f.redfish, "redfish", "", "Redfish service: https://BMC[/redfish/v1/Chassis/ID] (default chassis: the first)")
	fs.BoolVar(&f.redfishInsecure, "redfish-insecure", false, "do not verify the Redfish service's TLS certificate")
	fs.DurationVar(&f.interval, "interval", 10*time.Second, "time between samples")
	fs.DurationVar(&f.window, "window", time.Second, "with --once: time between the two readings a rate needs")
	fs.DurationVar(&f.timeout, "source-timeout", 5*time.Second, "time limit of one reading of a BMC")
	fs.IntVar(&f.buffer, "buffer", 360, "samples kept while NATS is away (the oldest are dropped first)")
	fs.BoolVar(&f.once, "once", false, "print one sample and exit (nothing is published)")
	fs.BoolVar(&f.json, "json", false, "with --once: print the sample as published (JSON)")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	f.containers.register(fs)
}

// sourceList checks --sources.
func sourceList(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		switch n {
		case agent.SourceRAPL, agent.SourceIPMI, agent.SourceRedfish, agent.SourceProc:
		default:
			return nil, fmt.Errorf("%w: --sources: unknown source %q (want rapl, ipmi, redfish, proc)", errUsage, truncateArg(n))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

func truncateArg(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// runAgent is `ecrae agent`: sample this node and publish on NATS.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f agentFlags
	fs := newFlagSet("agent", stderr)
	f.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: agent takes no arguments, got %q", errUsage, truncateArg(pos[0]))
	}
	if f.interval <= 0 {
		return fmt.Errorf("%w: --interval %s: want a positive duration", errUsage, f.interval)
	}
	if f.buffer <= 0 {
		return fmt.Errorf("%w: --buffer %d: want at least 1", errUsage, f.buffer)
	}
	if err := f.containers.check(); err != nil {
		return err
	}
	if f.json && !f.once {
		return fmt.Errorf("%w: --json goes with --once", errUsage)
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	names, err := sourceList(f.sources)
	if err != nil {
		return err
	}
	host := f.host
	if host == "" {
		if host, err = agent.HostName(f.novaConf); err != nil {
			return err
		}
	}
	var creds agent.Credentials
	if f.credentials != "" {
		if creds, err = agent.ReadCredentials(f.credentials); err != nil {
			return fmt.Errorf("--bmc-credentials: %w", err)
		}
	}
	cfg := agent.Config{Host: host, Buffer: f.buffer, Log: log}
	for _, n := range names {
		switch n {
		case agent.SourceRAPL:
			cfg.Watts = append(cfg.Watts, agent.NewRAPL(f.raplRoot, nil))
		case agent.SourceIPMI:
			bh, bp, err := agent.ParseBMC(f.bmc)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			if bh != "" && f.credentials == "" {
				return fmt.Errorf("%w: --bmc %s needs --bmc-credentials", errUsage, f.bmc)
			}
			cfg.Watts = append(cfg.Watts, timed{agent.NewIPMI(bh, bp, creds), f.timeout})
		case agent.SourceRedfish:
			if f.redfish == "" {
				log.Debug("redfish: not configured (--redfish)")
				continue
			}
			r, err := agent.NewRedfish(f.redfish, creds, f.redfishInsecure, f.timeout)
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			cfg.Watts = append(cfg.Watts, r)
		case agent.SourceProc:
			cfg.UtilOnly = true
		}
	}
	cfg.ProcStat = f.procStat
	if len(cfg.Watts) == 0 && !cfg.UtilOnly {
		return fmt.Errorf("%w: --sources %s: no source to read (redfish needs --redfish)", errUsage, f.sources)
	}
	a, err := agent.New(cfg)
	if err != nil {
		return fmt.Errorf("%w: --host: %v", errUsage, err)
	}
	if f.once {
		return agentOnce(ctx, a, f, stdout)
	}
	auth, err := f.natsAuth.externalOptions()
	if err != nil {
		return err
	}
	nc, wake, err := agent.Connect(f.nats, "ecrae-agent "+host, log, auth...)
	if err != nil {
		return err
	}
	defer nc.Close()
	log.Info("agent started", "host", host, "subject", agent.Subject(host), "sources", names, "interval", f.interval, "nats", redactURLs(f.nats))
	cctx, cancel := context.WithCancel(ctx)
	wait, err := f.containers.start(cctx, nc, host, f.interval, log)
	if err != nil {
		cancel()
		return err
	}
	defer wait()   // second: the container goroutines have stopped
	defer cancel() // first
	return a.Run(ctx, &agent.NATSPublisher{NC: nc}, f.interval, wake)
}

// agentOnce takes two readings --window apart and prints the sample.
func agentOnce(ctx context.Context, a *agent.Agent, f agentFlags, stdout io.Writer) error {
	a.Prime(ctx)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(f.window):
	}
	s, err := a.Collect(ctx)
	if errors.Is(err, agent.ErrPriming) {
		return errors.New("agent: a source gave no rate after --window: try a longer one")
	}
	if err != nil {
		return err
	}
	if f.json {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(b))
		return err
	}
	watts := "model (no measurement)"
	if s.Watts != nil {
		watts = fmt.Sprintf("%.1f W", *s.Watts)
	}
	util := "?"
	if s.CPUUtilization != nil {
		util = fmt.Sprintf("%.1f %%", 100**s.CPUUtilization)
	}
	_, err = fmt.Fprintf(stdout, "%s  %s  watts %s (%s)  cpu %s  subject %s\n", s.Host, s.Timestamp, watts, s.Source, util, agent.Subject(s.Host))
	return err
}

// timed bounds each reading of a source that talks to a BMC.
type timed struct {
	agent.WattsSource
	d time.Duration
}

func (t timed) Watts(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.WattsSource.Watts(ctx)
}
