package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/openstack"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
)

// tagSpec is the flavor extra spec the shim reads a workload tag from.
const tagSpec = "ecrae:tag"

// kbFlavors runs "kb flavors sync": make Nova's flavors what the KB says
// (sizes, extra specs and ecrae:tag), as a dry run unless --yes.
func kbFlavors(ctx context.Context, cf *clientFlags, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, kbUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: kb flavors needs sync", errUsage)
		}
		return nil
	}
	if args[0] != "sync" {
		return fmt.Errorf("%w: unknown kb flavors subcommand %s (want sync)", errUsage, quote.Value(args[0]))
	}
	fs := newFlagSet("kb flavors sync", stderr)
	cf.register(fs)
	yes := fs.Bool("yes", false, "change Nova (without it: show what would change)")
	cloud := fs.String("os-cloud", "", "clouds.yaml cloud of the Nova to change (default $OS_CLOUD, then the OS_* variables)")
	novaTimeout := fs.Duration("nova-timeout", 30*time.Second, "deadline of each Nova request")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: kb flavors sync takes no arguments, got %s", errUsage, quote.Value(pos[0]))
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).ListFlavors(cctx, &ecraev1.ListFlavorsRequest{})
	done()
	if err != nil {
		return cf.rpcError("list flavors", err)
	}
	nova, err := openstack.Connect(ctx, openstack.Options{Cloud: *cloud, Timeout: *novaTimeout})
	if errors.Is(err, openstack.ErrNoCredentials) {
		return fmt.Errorf("%w: kb flavors sync needs Nova: --os-cloud, $OS_CLOUD or the OS_* variables", errUsage)
	}
	if err != nil {
		return fmt.Errorf("connect to Nova: %w", err)
	}
	want := flavorSpecs(resp.GetFlavors())
	actions, err := openstack.PlanFlavorSync(ctx, nova.Compute, want)
	if err != nil {
		return err
	}
	if *yes {
		if err := openstack.ApplyFlavorSync(ctx, nova.Compute, actions); err != nil {
			return err
		}
	}
	conflicts := 0
	rows := make([]map[string]any, len(actions))
	for i, a := range actions {
		if a.Op == openstack.FlavorConflict {
			conflicts++
		}
		specs := a.Specs
		if specs == nil {
			specs = map[string]string{} // every field present, as in every --json
		}
		rows[i] = map[string]any{"flavor": a.Name, "action": a.Op, "nova_id": a.NovaID, "extra_specs": specs, "detail": a.Detail}
	}
	if cf.json {
		if err := printJSON(stdout, map[string]any{"applied": *yes, "nova": nova.Source, "flavors": rows}); err != nil {
			return err
		}
	} else {
		verb := "would"
		if *yes {
			verb = "did"
		}
		tw := table(stdout)
		fmt.Fprintf(tw, "FLAVOR\tACTION (%s)\tEXTRA SPECS SET\tDETAIL\n", verb)
		for _, a := range actions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Name, a.Op, specsText(a.Specs), a.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if !*yes {
			fmt.Fprintf(stdout, "dry run on %s: add --yes to change Nova\n", nova.Source)
		}
	}
	if conflicts > 0 {
		return partial(fmt.Errorf("%s in Nova with other sizes than the KB's, left alone (Nova flavors cannot be resized: create one under another name)",
			plural(conflicts, "flavor")))
	}
	return nil
}

// flavorSpecs turns the KB's flavors into what Nova should hold: the
// KB's extra specs, and ecrae:tag set to the flavor's first tag unless
// the extra specs name one.
func flavorSpecs(fls []*ecraev1.Flavor) []openstack.FlavorSpec {
	out := make([]openstack.FlavorSpec, 0, len(fls))
	for _, f := range fls {
		specs := maps.Clone(f.GetExtraSpecs())
		if specs == nil {
			specs = map[string]string{}
		}
		if _, ok := specs[tagSpec]; !ok && len(f.GetTags()) > 0 {
			specs[tagSpec] = f.GetTags()[0]
		}
		out = append(out, openstack.FlavorSpec{Name: f.GetName(), VCPUs: int(f.GetVcpus()), RAMMB: int(f.GetMemoryMb()),
			DiskGB: int(f.GetRootGb()), EphemeralGB: int(f.GetEphemeralGb()), SwapMB: int(f.GetSwapMb()), ExtraSpecs: specs})
	}
	return out
}

func specsText(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	var b []byte
	for _, k := range sortedKeys(m) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%s=%s", k, m[k])
	}
	return string(b)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
