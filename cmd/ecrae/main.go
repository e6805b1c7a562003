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
  ecrae kb show|export|import FILE|validate FILE [flags]
                                       read and write the knowledge base
  ecrae score [flags]                  rank hosts for one instance
  ecrae place FILE [flags]             what-if placement of a batch (YAML)
  ecrae hosts [--json] [--instances]   the live host view: instances, use, power, staleness
  ecrae rebalance plan|execute|show [flags]
                                       plan, run and follow consolidation plans
  ecrae pack FILE [flags]              solve one bin-packing instance (.vbp, .vmp)
  ecrae sim --trace DIR [flags]        simulate a day of traces: energy, SLA, migrations (--compare: side by side)
  ecrae tosca resolve|hot|deploy APP.yaml [flags]   tagged TOSCA → resolved TOSCA → Heat stack
  ecrae audit [--since D] [--json]     who changed what: KB writes, plans, power actions
  ecrae cluster status --http A,B,C    cluster mode: members, leader, KB revision and view sequence per replica

Run "ecrae COMMAND -h" for the flags of a command.
`

// errUsage marks an error that is the caller's fault on the command line.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ecrae: "+oneLine(err))
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
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
	case "pack":
		return runPack(ctx, rest, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "rebalance":
		return runRebalance(ctx, rest, stdin, stdout, stderr)
	case "tosca":
		return runTosca(ctx, rest, stdin, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "cluster":
		return runCluster(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
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
