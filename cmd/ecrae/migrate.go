package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ecrae/ecrae/agent/container"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// runMigrate is `ecrae migrate CONTAINER --to HOST`: ask the service to
// move a container to another node's agent with CRIU. The service finds
// it, judges the move by the rules a plan keeps, and sends it through its
// own (fenced, audited) mover; the CLI needs no NATS credentials.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("migrate", stderr)
	cf.register(fs)
	to := fs.String("to", "", "destination host (its agent runs with --containers)")
	from := fs.String("from", "", "the host the container runs on; the move is refused if the service's live view disagrees (default: where the view has it)")
	mode := fs.String("mode", container.ModeAuto, "auto, postcopy, precopy or stopcopy")
	wait := fs.Duration("migrate-timeout", 10*time.Minute, "how long to wait for the move (the call's deadline; the service caps it at its --rebalance-step-timeout)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: migrate takes one container name, got %d arguments", errUsage, len(pos))
	}
	name := pos[0]
	if *to == "" {
		return fmt.Errorf("%w: --to: no destination host", errUsage)
	}
	switch *mode {
	case container.ModeAuto, container.ModePostcopy, container.ModePrecopy, container.ModeStopcopy:
	default:
		return fmt.Errorf("%w: --mode %q: want auto, postcopy, precopy or stopcopy", errUsage, truncateArg(*mode))
	}
	if *wait <= 0 {
		return fmt.Errorf("%w: --migrate-timeout %s: want a positive duration", errUsage, *wait)
	}
	conn, err := cf.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	rep, err := ecraev1.NewRebalanceServiceClient(conn).MigrateContainer(cctx, &ecraev1.MigrateContainerRequest{
		Container: name, To: *to, Mode: *mode, From: *from})
	if err != nil {
		// An agent's failure carries its reply: --json prints it.
		st := status.Convert(err)
		for _, d := range st.Details() {
			if r, ok := d.(*ecraev1.MigrateContainerResponse); ok && cf.json {
				if err := printJSON(stdout, migrateOutput(r)); err != nil {
					return err
				}
			}
		}
		if st.Code() == codes.Aborted {
			return errors.New(st.Message())
		}
		return cf.rpcError("migrate "+truncateArg(name), err)
	}
	if cf.json {
		return printJSON(stdout, migrateOutput(rep))
	}
	fmt.Fprintf(stdout, "%s: %s -> %s by %s", name, rep.GetFrom(), rep.GetTo(), rep.GetMode())
	if rep.GetModeNote() != "" {
		fmt.Fprintf(stdout, " (%s)", rep.GetModeNote())
	}
	fmt.Fprintf(stdout, ": %.2f s in all, frozen %.2f s, %.1f MB sent", rep.GetTotal().AsDuration().Seconds(),
		rep.GetFrozen().AsDuration().Seconds(), float64(rep.GetBytesSent())/1e6)
	if d := rep.GetPagesDone().AsDuration(); d > 0 {
		fmt.Fprintf(stdout, ", last page %.2f s after the restore", d.Seconds())
	}
	fmt.Fprintln(stdout)
	return nil
}

// migrateJSON is `ecrae migrate --json` in the CLI's one JSON style
// (docs/json.md): every field present, durations in seconds. The service's
// reply carries durations; the agents' MigrateReply (milliseconds) stays
// their wire format. Fields in key order: the style sorts keys.
type migrateJSON struct {
	BytesSent        int64              `json:"bytes_sent"`
	Container        string             `json:"container"`
	Error            string             `json:"error"`
	From             string             `json:"from"`
	FrozenSeconds    float64            `json:"frozen_seconds"`
	Mode             string             `json:"mode"`
	ModeNote         string             `json:"mode_note"`
	OK               bool               `json:"ok"`
	PagesDoneSeconds float64            `json:"pages_done_seconds"`
	Rounds           []migrateRoundJSON `json:"rounds"`
	RoundsNote       string             `json:"rounds_note"`
	To               string             `json:"to"`
	TotalSeconds     float64            `json:"total_seconds"`
}

type migrateRoundJSON struct {
	FrozenSeconds float64 `json:"frozen_seconds"`
	PagesScanned  int64   `json:"pages_scanned"`
	PagesSkipped  int64   `json:"pages_skipped"`
	PagesWritten  int64   `json:"pages_written"`
}

func migrateOutput(r *ecraev1.MigrateContainerResponse) migrateJSON {
	out := migrateJSON{OK: r.GetError() == "", Error: r.GetError(), Container: r.GetContainer(), From: r.GetFrom(), To: r.GetTo(),
		Mode: r.GetMode(), ModeNote: r.GetModeNote(), TotalSeconds: r.GetTotal().AsDuration().Seconds(),
		FrozenSeconds: r.GetFrozen().AsDuration().Seconds(), PagesDoneSeconds: r.GetPagesDone().AsDuration().Seconds(),
		BytesSent: r.GetBytesSent(), Rounds: []migrateRoundJSON{}, RoundsNote: r.GetRoundsNote()}
	for _, d := range r.GetRounds() {
		out.Rounds = append(out.Rounds, migrateRoundJSON{FrozenSeconds: d.GetFrozen().AsDuration().Seconds(),
			PagesScanned: d.GetPagesScanned(), PagesSkipped: d.GetPagesSkipped(), PagesWritten: d.GetPagesWritten()})
	}
	return out
}
