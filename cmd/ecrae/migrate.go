package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ecrae/ecrae/agent/container"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// runMigrate is `ecrae migrate CONTAINER --to HOST`: ask the container's
// node agent to move it to another node's agent with CRIU.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	var auth natsSecurity
	fs := newFlagSet("migrate", stderr)
	cf.register(fs)
	auth.registerClient(fs, "")
	to := fs.String("to", "", "destination host (its agent runs with --containers)")
	from := fs.String("from", "", "the host the container runs on (default: where the service's live view has it)")
	mode := fs.String("mode", container.ModeAuto, "auto, postcopy, precopy or stopcopy")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server the agents use")
	wait := fs.Duration("migrate-timeout", 10*time.Minute, "how long to wait for the agents")
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
	src := *from
	if src == "" {
		if src, err = locateContainer(ctx, &cf, name, *to); err != nil {
			return err
		}
	}
	opts, err := auth.externalOptions()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*natsURL, append(opts, nats.Name("ecrae migrate"))...)
	if err != nil {
		return fmt.Errorf("--nats %q: %w", redactURLs(*natsURL), err)
	}
	defer nc.Close()
	b, _ := json.Marshal(container.MigrateRequest{Container: name, To: *to, Mode: *mode})
	rctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, container.MigrateSubject(src), b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("--from: no agent with --containers answers for host %q (%s)", src, container.MigrateSubject(src))
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", name, err)
	}
	var rep container.MigrateReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("migrate %s: agent answered %.100q", name, msg.Data)
	}
	if cf.json {
		if err := printJSON(stdout, migrateOutput(rep)); err != nil {
			return err
		}
	}
	if rep.Error != "" {
		return fmt.Errorf("migrate %s: %s", name, rep.Error)
	}
	if cf.json {
		return nil
	}
	fmt.Fprintf(stdout, "%s: %s -> %s by %s", name, rep.From, rep.To, rep.Mode)
	if rep.ModeNote != "" {
		fmt.Fprintf(stdout, " (%s)", rep.ModeNote)
	}
	fmt.Fprintf(stdout, ": %.2f s in all, frozen %.2f s, %.1f MB sent", rep.TotalMS/1000, rep.FrozenMS/1000, float64(rep.BytesSent)/1e6)
	if rep.PagesDoneMS > 0 {
		fmt.Fprintf(stdout, ", last page %.2f s after the restore", rep.PagesDoneMS/1000)
	}
	fmt.Fprintln(stdout)
	return nil
}

// locateContainer finds the host of a container in the service's live
// view, and refuses a destination the view knows to be of another ISA.
func locateContainer(ctx context.Context, cf *clientFlags, name, to string) (string, error) {
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	resp, err := ecraev1.NewHostViewServiceClient(conn).ListLiveHosts(cctx, &ecraev1.ListLiveHostsRequest{IncludeInstances: true})
	if err != nil {
		return "", cf.rpcError("list live hosts", err)
	}
	src, isa := "", map[string]string{}
	for _, h := range resp.GetHosts() {
		isa[h.GetHost()] = h.GetIsa()
		for _, in := range h.GetInstanceList() {
			if in.GetKind() == "container" && (in.GetName() == name || in.GetUuid() == name) {
				src = h.GetHost()
			}
		}
	}
	if src == "" {
		return "", fmt.Errorf("container %q: not in the service's live view (ecrae hosts --instances; or say --from)", truncateArg(name))
	}
	if a, b := isa[src], isa[to]; a != "" && b != "" && a != b {
		return "", fmt.Errorf("--to: %s is %s, container %q runs on %s (%s): CRIU restores on the same ISA only", to, b, name, src, a)
	}
	return src, nil
}

// migrateJSON is `ecrae migrate --json` in the CLI's one JSON style
// (docs/json.md): every field present, durations in seconds. The agents'
// own MigrateReply (milliseconds, fields omitted when empty) stays their
// wire format. Fields in key order: the style sorts keys.
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

func migrateOutput(r container.MigrateReply) migrateJSON {
	out := migrateJSON{OK: r.Error == "", Error: r.Error, Container: r.Container, From: r.From, To: r.To,
		Mode: r.Mode, ModeNote: r.ModeNote, TotalSeconds: r.TotalMS / 1000, FrozenSeconds: r.FrozenMS / 1000,
		PagesDoneSeconds: r.PagesDoneMS / 1000, BytesSent: r.BytesSent, Rounds: []migrateRoundJSON{}, RoundsNote: r.RoundsNote}
	for _, d := range r.Rounds {
		out.Rounds = append(out.Rounds, migrateRoundJSON{FrozenSeconds: float64(d.FrozenUS) / 1e6,
			PagesScanned: d.PagesScanned, PagesSkipped: d.PagesSkipped, PagesWritten: d.PagesWritten})
	}
	return out
}
