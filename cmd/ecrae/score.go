package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("score", stderr)
	cf.register(fs)
	tag := fs.String("tag", "", "workload tag (default: the service's default profile)")
	flavor := fs.String("flavor", "", "a flavor of the knowledge base (instead of --vcpus/--ram-mb/--disk-gb)")
	vcpus := fs.Int("vcpus", 0, "vCPUs of the instance")
	ram := fs.Int64("ram-mb", 0, "RAM of the instance in MB")
	disk := fs.Int64("disk-gb", 0, "disk of the instance in GB")
	arch := fs.String("arch", "", "image hw_architecture (x86_64, aarch64, ...)")
	hostsFile := fs.String("hosts", "", "YAML file with `hosts:` as Nova sees them (proto field names); default: the hosts the service knows")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: score takes flags only, got %s", errUsage, quote.Value(pos[0]))
	}
	switch {
	case *flavor == "" && *vcpus == 0:
		return fmt.Errorf("%w: give --flavor NAME or --vcpus and --ram-mb", errUsage)
	case *vcpus < 0:
		return fmt.Errorf("%w: --vcpus must be positive, got %d", errUsage, *vcpus)
	case *vcpus > 0 && *ram <= 0:
		return fmt.Errorf("%w: --ram-mb must be positive with --vcpus, got %d", errUsage, *ram)
	case *disk < 0:
		return fmt.Errorf("%w: --disk-gb must not be negative, got %d", errUsage, *disk)
	}
	inst := &ecraev1.InstanceRequest{Name: "instance", Tag: *tag,
		Flavor: &ecraev1.Flavor{Name: *flavor, Vcpus: int32(*vcpus), MemoryMb: *ram, RootGb: *disk}}
	if *arch != "" {
		inst.ImageProperties = map[string]string{"hw_architecture": *arch}
	}
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	c := ecraev1.NewPlacementServiceClient(conn)

	if *hostsFile == "" {
		resp, err := c.WhatIf(ctx, &ecraev1.WhatIfRequest{Instances: []*ecraev1.InstanceRequest{inst}, MaxAlternatives: 1000})
		if err != nil {
			return cf.rpcError("score", flagError(err, instanceFlags()))
		}
		if cf.json {
			err = printJSON(stdout, resp)
		} else {
			err = printPlacements(stdout, resp, true)
		}
		return cmp.Or(err, unplacedError(resp))
	}
	data, err := os.ReadFile(*hostsFile)
	if err != nil {
		return err
	}
	var hf ecraev1.FilterHostsRequest
	if err := yamlToProto(*hostsFile, data, &hf); err != nil {
		return err
	}
	fr, err := c.FilterHosts(ctx, &ecraev1.FilterHostsRequest{Instance: inst, Hosts: hf.GetHosts()})
	if err != nil {
		return cf.rpcError("filter", flagError(err, instanceFlags()))
	}
	wr, err := c.WeighHosts(ctx, &ecraev1.WeighHostsRequest{Instance: inst, Hosts: hf.GetHosts()})
	if err != nil {
		return cf.rpcError("weigh", flagError(err, instanceFlags()))
	}
	passed := false
	for _, v := range fr.GetVerdicts() {
		passed = passed || v.GetPassed()
	}
	var none error
	if !passed {
		none = partial(fmt.Errorf("no host passed the filters"))
	}
	if cf.json {
		return cmp.Or(printJSON(stdout, map[string]any{"filter": fr, "weigh": wr}), none)
	}
	fmt.Fprintf(stdout, "tag %s (from %s)\n", fr.GetTag(), fr.GetTagSource())
	order := make([]int, len(wr.GetScores()))
	for i := range order {
		order[i] = i
	}
	verdicts := fr.GetVerdicts()
	sort.SliceStable(order, func(a, b int) bool {
		pa, pb := verdicts[order[a]].GetPassed(), verdicts[order[b]].GetPassed()
		if pa != pb {
			return pa
		}
		return wr.GetScores()[order[a]].GetScore() > wr.GetScores()[order[b]].GetScore()
	})
	tw := table(stdout)
	fmt.Fprintln(tw, "RANK\tHOST\tARCHITECTURE\tPASSED\tSCORE\tMARGINAL W\tWHY")
	rank := 0
	for _, i := range order {
		s, v := wr.GetScores()[i], verdicts[i]
		if !v.GetPassed() || s.GetRejected() {
			// A rejected host has no score: none is printed.
			fmt.Fprintf(tw, "-\t%s\t%s\tfalse\t-\t-\t%s: %s\n", s.GetHost(), s.GetArchitecture(), v.GetFilter(), v.GetReason())
			continue
		}
		rank++
		fmt.Fprintf(tw, "%d\t%s\t%s\ttrue\t%.1f\t%.1f\t%s\n", rank, s.GetHost(), s.GetArchitecture(), s.GetScore(), s.GetMarginalWatts(), explain(s.GetBreakdown()))
	}
	return cmp.Or(tw.Flush(), none)
}

func explain(cs []*ecraev1.ScoreComponent) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s %.0f×%.2g: %s", c.GetScorer(), c.GetNormalized(), c.GetWeight(), c.GetExplanation()))
	}
	return strings.Join(parts, "; ")
}
