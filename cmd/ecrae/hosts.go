package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
)

// runHosts prints the service's live host view.
func runHosts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("hosts", stderr)
	cf.register(fs)
	instances := fs.Bool("instances", false, "list each host's instances too")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: hosts takes no arguments, got %s", errUsage, quote.Value(pos[0]))
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := fetchLiveHosts(cctx, ecraev1.NewHostViewServiceClient(conn), *instances)
	if err != nil {
		return cf.rpcError("list live hosts", err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	return printHosts(stdout, resp, *instances)
}

// fetchLiveHosts reads the view as a stream of bounded messages, so that
// no number of instances meets the message limit, and puts it back
// together.
func fetchLiveHosts(ctx context.Context, c ecraev1.HostViewServiceClient, instances bool) (*ecraev1.ListLiveHostsResponse, error) {
	stream, err := c.StreamLiveHosts(ctx, &ecraev1.ListLiveHostsRequest{IncludeInstances: instances})
	if err != nil {
		return nil, err
	}
	var msgs []*ecraev1.ListLiveHostsResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return server.MergeLiveHosts(msgs), nil
		}
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
}

func printHosts(w io.Writer, resp *ecraev1.ListLiveHostsResponse, instances bool) error {
	tw := table(w)
	fmt.Fprintln(tw, "HOST\tARCHITECTURE\tISA\tSERVICE\tINSTANCES\tVCPUS\tRAM GB\tUTIL\tWATTS\tSEEN")
	asOf := resp.GetAsOf().AsTime()
	for _, h := range resp.GetHosts() {
		arch := h.GetArchitecture()
		switch {
		case arch == "":
			arch = "?"
		case h.GetDefaultModel():
			arch += " (default)"
		}
		vcpus := fmt.Sprintf("%d/%d", h.GetVcpusUsed(), h.GetVcpusTotal())
		if r := h.GetCpuAllocationRatio(); r > 0 && r != 1 {
			vcpus += fmt.Sprintf("×%g", r)
		}
		ram := fmt.Sprintf("%.1f/%.1f", float64(h.GetMemoryMbUsed())/1024, float64(h.GetMemoryMbTotal())/1024)
		if h.GetCapacitySource() == "unknown" {
			vcpus, ram = fmt.Sprintf("%d/?", h.GetVcpusUsed()), fmt.Sprintf("%.1f/?", float64(h.GetMemoryMbUsed())/1024)
		}
		util := fmt.Sprintf("%.0f%% %s", 100*h.GetUtilization(), short(h.GetUtilizationSource()))
		if h.GetUtilizationSource() == "unknown" {
			util = "?"
		}
		if h.CpuDemand != nil && h.GetCpuDemand() > 1 {
			util += fmt.Sprintf(", asked %.0f%%", 100*h.GetCpuDemand())
		}
		watts := "-"
		switch {
		case h.GetWattsMeasured():
			watts = fmt.Sprintf("%.1f measured", h.GetWatts())
		case h.GetCapacitySource() != "unknown":
			watts = fmt.Sprintf("%.1f estimated", h.GetWatts())
		}
		seen := "never"
		if h.GetLastSeen() != nil {
			seen = roundAge(asOf.Sub(h.GetLastSeen().AsTime())) + " ago"
		}
		if h.GetStale() {
			seen += " STALE"
		}
		state := h.GetServiceState()
		if !h.GetCompute() {
			state = "samples only"
		}
		isa := h.GetIsa()
		if isa == "" {
			isa = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", h.GetHost(), arch, isa, state,
			h.GetInstances(), vcpus, ram, util, watts, seen)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if instances {
		for _, h := range resp.GetHosts() {
			for _, in := range h.GetInstanceList() {
				fmt.Fprintf(w, "  %s  %s  %s  %s %dvCPU %dMB  tag=%s  %s/%s  kind=%s\n", h.GetHost(), in.GetUuid(), in.GetName(), in.GetFlavor(),
					in.GetVcpus(), in.GetMemoryMb(), in.GetTag(), in.GetState(), in.GetPowerState(), in.GetKind())
			}
		}
	}
	for _, h := range resp.GetHosts() {
		if n := h.GetNote(); n != "" {
			fmt.Fprintf(w, "  %s: %s\n", h.GetHost(), strings.TrimPrefix(n, "live view: "))
		}
	}
	fmt.Fprintf(w, "%d hosts, %d instances; stale after %s; fed by %s\n", len(resp.GetHosts()), resp.GetInstances(),
		resp.GetStaleAfter().AsDuration(), resp.GetSources())
	return nil
}

func short(source string) string {
	switch source {
	case "node agent":
		return "(agent)"
	case "nova cpu.percent":
		return "(nova)"
	}
	return "(est.)"
}

func roundAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Hour).String()
}
