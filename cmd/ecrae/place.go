package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

func runPlace(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("place", stderr)
	cf.register(fs)
	why := fs.Bool("explain", false, "show each placement's score breakdown")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: place takes one FILE (a WhatIfRequest in YAML, - for stdin)", errUsage)
	}
	data, err := readInput(pos[0], stdin)
	if err != nil {
		return err
	}
	var req ecraev1.WhatIfRequest
	if err := yamlToProto(pos[0], data, &req); err != nil {
		return err
	}
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewPlacementServiceClient(conn).WhatIf(ctx, &req)
	if err != nil {
		return cf.rpcError("what-if "+pos[0], err)
	}
	if cf.json {
		err = printJSON(stdout, resp)
	} else {
		err = printPlacements(stdout, resp, *why)
	}
	return cmp.Or(err, unplacedError(resp))
}

// unplacedError is exit 3 when an instance found no host: the answer is
// printed, and still not what was asked.
func unplacedError(resp *ecraev1.WhatIfResponse) error {
	if n := resp.GetUnplaced(); n > 0 {
		return partial(fmt.Errorf("%s not placed", plural(int(n), "instance")))
	}
	return nil
}

func printPlacements(w io.Writer, resp *ecraev1.WhatIfResponse, why bool) error {
	tw := table(w)
	fmt.Fprintln(tw, "INSTANCE\tTAG\tHOST\tARCHITECTURE\tMARGINAL W\tSCORE\tALTERNATIVES")
	var reasons []string
	for _, p := range resp.GetPlacements() {
		name := p.GetName()
		if name == "" {
			name = fmt.Sprintf("#%d", p.GetIndex())
		}
		if p.GetHost() == "" {
			var rs []string
			for _, r := range p.GetRejected() {
				rs = append(rs, fmt.Sprintf("%s: %s", r.GetHost(), r.GetReason()))
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t%s: %s\n", name, p.GetTag(), p.GetError(), strings.Join(rs, "; "))
			continue
		}
		var alts []string
		for _, a := range p.GetAlternatives() {
			alts = append(alts, fmt.Sprintf("%s (%.1f, %.1f W)", a.GetHost(), a.GetScore(), a.GetMarginalWatts()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%s\n", name, p.GetTag(), p.GetHost(), p.GetArchitecture(), p.GetMarginalWatts(), p.GetScore(), strings.Join(alts, ", "))
		if why {
			reasons = append(reasons, fmt.Sprintf("%s on %s: %s", name, p.GetHost(), explain(p.GetBreakdown())))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reasons {
		fmt.Fprintln(w, "  "+r)
	}
	fmt.Fprintf(w, "total predicted marginal power: %.1f W; unplaced: %d; hosts: %s\n", resp.GetTotalMarginalWatts(), resp.GetUnplaced(), resp.GetHostSource())
	return nil
}
