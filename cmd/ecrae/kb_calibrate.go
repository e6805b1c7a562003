package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// kbCalibrate is `ecrae kb calibrate HOST...|--all [--write]`.
func kbCalibrate(ctx context.Context, cf *clientFlags, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	all := fs.Bool("all", false, "every host with measured samples")
	write := fs.Bool("write", false, "store the fits in the KB (architectures calibrated-HOST); without it nothing changes")
	minSamples := fs.Int("min-samples", 30, "fewest samples a fit needs")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *all == (len(pos) > 0) {
		return fmt.Errorf("%w: kb calibrate takes HOST... or --all", errUsage)
	}
	if *minSamples < 1 {
		return fmt.Errorf("%w: --min-samples %d: want at least 1", errUsage, *minSamples)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).CalibrateHosts(cctx, &ecraev1.CalibrateHostsRequest{
		Hosts: pos, All: *all, Write: *write, MinSamples: int32(*minSamples)})
	if err != nil {
		return cf.rpcError("calibrate", err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	return printCalibration(stdout, resp)
}

// printCalibration shows each host's fit next to its model, point by point.
func printCalibration(w io.Writer, resp *ecraev1.CalibrateHostsResponse) error {
	if len(resp.GetHosts()) == 0 {
		_, err := fmt.Fprintln(w, "no host has measured samples (ecrae agent publishes them)")
		return err
	}
	for i, c := range resp.GetHosts() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if c.GetSkipped() != "" {
			fmt.Fprintf(w, "%s: not fitted: %s\n", c.GetHost(), c.GetSkipped())
			continue
		}
		fmt.Fprintf(w, "%s: model %s, %.0f samples at %.0f–%.0f %% utilisation, measured %.2f× the model\n",
			c.GetHost(), c.GetArchitecture(), c.GetSamples(), 100*c.GetMinUtilization(), 100*c.GetMaxUtilization(), c.GetScale())
		tw := table(w)
		fmt.Fprint(tw, "  LOAD\tidle")
		for k := 1; k <= 10; k++ {
			fmt.Fprintf(tw, "\t%d%%", 10*k)
		}
		fmt.Fprintln(tw, "\tRMS ERROR")
		row := func(name string, v []float64, rms string) {
			fmt.Fprint(tw, "  "+name)
			for _, x := range v {
				fmt.Fprintf(tw, "\t%.1f", x)
			}
			if rms != "" {
				fmt.Fprint(tw, "\t"+rms)
			}
			fmt.Fprintln(tw)
		}
		row("model W", c.GetModelWatts(), fmt.Sprintf("%.1f W", c.GetRmsModelWatts()))
		row("fit W", c.GetFittedWatts(), fmt.Sprintf("%.1f W", c.GetRmsFittedWatts()))
		row("samples", c.GetSupport(), "")
		if err := tw.Flush(); err != nil {
			return err
		}
		if c.GetWrittenArchitecture() != "" {
			fmt.Fprintf(w, "  written: architecture %s, host %s now uses it\n", c.GetWrittenArchitecture(), c.GetHost())
		}
	}
	if !resp.GetWritten() && anyFitted(resp) {
		fmt.Fprintln(w, "\nnothing written: --write stores the fits")
	}
	return nil
}

func anyFitted(resp *ecraev1.CalibrateHostsResponse) bool {
	for _, c := range resp.GetHosts() {
		if c.GetSkipped() == "" {
			return true
		}
	}
	return false
}
