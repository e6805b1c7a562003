// Command ecrae is ECRAE's one binary: the placement service (serve) and the
// client and offline tools around it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ecrae/ecrae/internal/quote"
	"google.golang.org/grpc/status"
)

const usage = `ecrae: energy-aware placement for OpenStack

Usage:
  ecrae serve [flags]                  run the placement service
  ecrae agent [flags]                  node agent: publish this node's power and CPU samples on NATS
                                       (--containers lxc|podman: and its containers, and migrate them with CRIU)
  ecrae migrate CONTAINER --to HOST [--mode auto|postcopy|precopy|stopcopy]
                                       ask the service to move a container between node agents with CRIU
  ecrae kb show|export|import|validate|history|diff|rollback|host|flavors|calibrate [flags]
                                       read and write the knowledge base (ecrae kb -h)
  ecrae score [flags]                  rank hosts for one instance
  ecrae place FILE [flags]             what-if placement of a batch (YAML)
  ecrae hosts [--json] [--instances]   the live host view: instances, use, power, staleness
  ecrae rebalance plan|execute|show [flags]
                                       plan, run and follow consolidation plans
  ecrae power status|on|off|history [HOST]
                                       host power through BMCs: state, on, off --yes, the recorded events
  ecrae pack FILE [flags]              solve one bin-packing instance (.vbp, .vmp)
  ecrae sim --trace DIR [flags]        simulate a day of traces: energy, SLA, migrations (--compare: side by side)
  ecrae tosca resolve|hot|deploy APP.yaml [flags]   tagged TOSCA → resolved TOSCA → Heat stack
  ecrae audit [--since D] [--json]     who changed what: KB writes, plans, power actions
  ecrae version                        build information (also --version)
  ecrae cluster status --http A,B,C    cluster mode: members, leader, KB revision and view sequence per replica

Run "ecrae COMMAND -h" for the flags of a command.
Exit status: 0 done, 1 failed, 2 usage, 3 done but not fully (see README).
`

// errUsage marks an error that is the caller's fault on the command line.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		code := exitCode(err)
		if code != exitOK {
			fmt.Fprintln(os.Stderr, "ecrae: "+oneLine(err))
		}
		os.Exit(code)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	if wantsHelp(args) {
		// Asked-for usage is the output, not an error: stdout, exit 0.
		stderr = stdout
	}
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stderr)
	case "agent":
		return runAgent(ctx, rest, stdout, stderr)
	case "kb":
		return runKB(ctx, rest, stdin, stdout, stderr)
	case "score":
		return runScore(ctx, rest, stdout, stderr)
	case "place":
		return runPlace(ctx, rest, stdin, stdout, stderr)
	case "hosts":
		return runHosts(ctx, rest, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, stdout, stderr)
	case "pack":
		return runPack(ctx, rest, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "rebalance":
		return runRebalance(ctx, rest, stdin, stdout, stderr)
	case "power":
		return runPower(ctx, rest, stdout, stderr)
	case "tosca":
		return runTosca(ctx, rest, stdin, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		return printVersion(stdout)
	case "cluster":
		return runCluster(ctx, rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %s", errUsage, quote.Value(cmd))
}

// oneLine renders an error as one readable line: a gRPC status shows its
// code and message, not Go's "rpc error: code = ..." wrapping.
func oneLine(err error) string {
	if s, ok := status.FromError(errors.Unwrap(err)); ok && s.Message() != "" && errors.Unwrap(err) != nil {
		prefix := strings.TrimSuffix(err.Error(), errors.Unwrap(err).Error())
		err = fmt.Errorf("%s%s (%s)", prefix, s.Message(), s.Code())
	} else if s, ok := status.FromError(err); ok && s.Message() != "" {
		err = fmt.Errorf("%s (%s)", s.Message(), s.Code())
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", " ")), " ")
}
