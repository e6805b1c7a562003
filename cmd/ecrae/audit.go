package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// runAudit prints the audit trail.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("audit", stderr)
	cf.register(fs)
	since := fs.String("since", "", `only records since then: a duration back from now ("24h") or an RFC 3339 time`)
	limit := fs.Int("limit", 0, "only the newest N records (0: all kept)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: audit takes no arguments, got %s", errUsage, quote.Value(pos[0]))
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit %d is negative", errUsage, *limit)
	}
	req := &ecraev1.ListAuditRecordsRequest{Limit: int32(*limit)}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return fmt.Errorf("%w: --since: %v", errUsage, err)
		}
		req.Since = timestamppb.New(t)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewAuditServiceClient(conn).ListAuditRecords(cctx, req)
	if err != nil {
		return cf.rpcError("list audit records", err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	// A cluster's trail names the replica of each record; one service's
	// table stays as it was.
	cluster := slices.ContainsFunc(resp.GetRecords(), func(r *ecraev1.AuditRecord) bool { return r.GetReplica() != "" })
	tw := table(stdout)
	if cluster {
		fmt.Fprint(tw, "REPLICA\t")
	}
	fmt.Fprintln(tw, "TIME\tWHO\tROLE\tMETHOD\tTARGET\tOUTCOME")
	for _, r := range resp.GetRecords() {
		outcome := r.GetCode()
		if r.GetMessage() != "" {
			outcome += ": " + r.GetMessage()
		}
		role := r.GetRole()
		if role == "" {
			role = "-"
		}
		if cluster {
			replica := r.GetReplica()
			if r.GetPending() {
				replica += " (pending)"
			}
			fmt.Fprintf(tw, "%s\t", replica)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.GetTime().AsTime().Format(time.RFC3339), r.GetWho(), role, r.GetMethod(), r.GetTarget(), outcome)
	}
	return tw.Flush()
}

// parseSince reads a duration back from now or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%s is negative", quote.Value(s))
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is neither a duration (24h) nor an RFC 3339 time", quote.Value(s))
	}
	return t, nil
}
