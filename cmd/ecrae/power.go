package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

const powerUsage = `ecrae power status|on|off|history [flags]

  status [HOST]          the power state each BMC reports (on, off, unknown with the reason)
  on HOST                power a host on; its nova-compute is enabled once it reports
  off HOST --yes         disable the host's nova-compute, then power it off; refused for a host
                         with any instance, during any migration, or on a stale view
  history [HOST] [--limit N]
                         recorded power events, newest first

The endpoint is the KB host entry's (ecrae kb host set NAME --power URL);
credentials are serve's --power-credentials file. Add --json for JSON.
`

func runPower(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, powerUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: power needs status, on, off or history", errUsage)
		}
		return nil
	}
	sub := args[0]
	var cf clientFlags
	fs := newFlagSet("power "+sub, stderr)
	cf.register(fs)
	yes := fs.Bool("yes", false, "off: really power the host off")
	limit := fs.Int("limit", 50, "history: at most this many events")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	switch sub {
	case "status", "history":
		if len(pos) > 1 {
			return fmt.Errorf("%w: power %s takes at most one HOST", errUsage, sub)
		}
	case "on", "off":
		if len(pos) != 1 {
			return fmt.Errorf("%w: power %s takes one HOST", errUsage, sub)
		}
		if sub == "off" && !*yes {
			return fmt.Errorf("%w: power off %s needs --yes (it disables the host's nova-compute and cuts its power)", errUsage, pos[0])
		}
	default:
		fmt.Fprint(stderr, powerUsage)
		return fmt.Errorf("%w: unknown power command %q", errUsage, sub)
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit %d: must not be negative", errUsage, *limit)
	}
	host := ""
	if len(pos) == 1 {
		host = pos[0]
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	c := ecraev1.NewPowerServiceClient(conn)
	switch sub {
	case "status":
		r, err := c.GetPowerStatus(cctx, &ecraev1.GetPowerStatusRequest{Host: host})
		if err != nil {
			return cf.rpcError("power status", err)
		}
		if cf.json {
			return printJSON(stdout, r)
		}
		fmt.Fprintf(stdout, "policy %s", r.GetPolicy())
		if r.GetPaused() {
			fmt.Fprint(stdout, " (stopped acting: the live view is stale)")
		}
		fmt.Fprintln(stdout)
		printHostPower(stdout, r.GetHosts()...)
		return nil
	case "on", "off":
		var hp *ecraev1.HostPower
		if sub == "on" {
			r, err := c.PowerOn(cctx, &ecraev1.PowerOnRequest{Host: host})
			if err != nil {
				return cf.rpcError("power on "+host, err)
			}
			hp = r.GetHost()
			if cf.json {
				return printJSON(stdout, r)
			}
		} else {
			r, err := c.PowerOff(cctx, &ecraev1.PowerOffRequest{Host: host})
			if err != nil {
				return cf.rpcError("power off "+host, err)
			}
			hp = r.GetHost()
			if cf.json {
				return printJSON(stdout, r)
			}
		}
		printHostPower(stdout, hp)
		return nil
	}
	r, err := c.ListPowerEvents(cctx, &ecraev1.ListPowerEventsRequest{Host: host, Limit: int32(min(*limit, 1<<20))})
	if err != nil {
		return cf.rpcError("power history", err)
	}
	if cf.json {
		return printJSON(stdout, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tHOST\tACTION\tBY\tDETAIL")
	for _, e := range r.GetEvents() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.GetSeq(), e.GetAt().AsTime().Format(time.RFC3339), e.GetHost(), e.GetAction(), e.GetBy(), e.GetDetail())
	}
	return tw.Flush()
}

func printHostPower(w io.Writer, hs ...*ecraev1.HostPower) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tENDPOINT\tNOTE")
	for _, h := range hs {
		note := h.GetError()
		switch {
		case note != "":
		case h.GetOffByEcrae():
			note = "powered off by ECRAE"
		case h.GetWaking():
			note = "woken: nova-compute enabled once it reports"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.GetHost(), h.GetState(), h.GetEndpoint(), note)
	}
	tw.Flush()
}
