package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"gopkg.in/yaml.v3"
)

const kbUsage = `Usage:
  ecrae kb show [--json]                  list architectures, tags, flavors and hosts
  ecrae kb export [--out FILE] [--json]   write the whole KB as YAML (or JSON)
  ecrae kb import FILE [--replace [--yes]] [--dry-run]
                                          merge (or replace) the KB from YAML, atomically; --replace
                                          lists what it deletes and asks (--yes: does not ask)
  ecrae kb validate FILE [--merge|--replace]
                                          check a KB YAML file, every error: merged into the default
                                          KB (offline), the running KB (--merge), or alone (--replace)
  ecrae kb history [--json]               the kept earlier revisions (every write keeps the KB it replaced)
  ecrae kb diff REV [--json]              what rolling back to REV would change
  ecrae kb rollback REV --yes             make the KB what it was at REV (a new, undoable revision)
  ecrae kb host set NAME [--arch ARCH] [--rack R] [--power-cap W] [--power URL] [--note N] [--force]
  ecrae kb host delete NAME               map a compute host to its architecture (only the flags
                                          given change; --force: an ISA other than Nova's), or unmap it
  ecrae kb flavors sync [--yes] [--os-cloud C]
                                          create or update the KB's flavors in Nova, with ecrae:tag
                                          (dry run unless --yes)
  ecrae kb calibrate HOST...|--all [--write] [--min-samples N]
                                          fit hosts' power curves to their measured samples
`

func runKB(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, kbUsage)
		return fmt.Errorf("%w: kb needs a subcommand", errUsage)
	}
	if h := args[0]; h == "help" || h == "-h" || h == "--help" {
		fmt.Fprint(stdout, kbUsage)
		return nil
	}
	var cf clientFlags
	fs := newFlagSet("kb "+args[0], stderr)
	cf.register(fs)
	switch args[0] {
	case "show":
		if _, err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return kbShow(ctx, &cf, stdout)
	case "export":
		out := fs.String("out", "-", "file to write, - for stdout")
		if _, err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return kbExport(ctx, &cf, *out, stdout)
	case "import":
		replace := fs.Bool("replace", false, "replace the whole KB instead of merging by name")
		dry := fs.Bool("dry-run", false, "validate only")
		yes := fs.Bool("yes", false, "with --replace: delete what the file does not hold without asking")
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: kb import takes one FILE (or - for stdin)", errUsage)
		}
		return kbImport(ctx, &cf, pos[0], *replace, *dry, *yes, stdin, stdout, stderr)
	case "validate":
		merge := fs.Bool("merge", false, "check the file merged into the running KB (needs the service)")
		replace := fs.Bool("replace", false, "check the file standing alone, as kb import --replace takes it")
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: kb validate takes one FILE", errUsage)
		}
		return kbValidate(ctx, &cf, pos[0], *merge, *replace, stdin, stdout)
	case "host":
		return kbHost(ctx, args[1:], stderr, stdout)
	case "history":
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return fmt.Errorf("%w: kb history takes no arguments", errUsage)
		}
		return kbHistory(ctx, &cf, stdout)
	case "diff", "rollback":
		yes := fs.Bool("yes", false, "roll back (without it: show what would change)")
		pos, err := parseFlags(fs, args[1:])
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: kb %s takes one REV (see ecrae kb history)", errUsage, args[0])
		}
		if args[0] == "diff" {
			return kbDiff(ctx, &cf, pos[0], stdout)
		}
		return kbRollback(ctx, &cf, pos[0], *yes, stdout)
	case "calibrate":
		return kbCalibrate(ctx, &cf, fs, args[1:], stdout)
	case "flavors":
		return kbFlavors(ctx, &clientFlags{}, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, kbUsage)
	return fmt.Errorf("%w: unknown kb subcommand %s", errUsage, quote.Value(args[0]))
}

func kbShow(ctx context.Context, cf *clientFlags, stdout io.Writer) error {
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	c := ecraev1.NewKnowledgeBaseServiceClient(conn)
	as, err := c.ListArchitectures(ctx, &ecraev1.ListArchitecturesRequest{})
	if err != nil {
		return cf.rpcError("list architectures", err)
	}
	ts, err := c.ListTags(ctx, &ecraev1.ListTagsRequest{})
	if err != nil {
		return cf.rpcError("list tags", err)
	}
	fls, err := c.ListFlavors(ctx, &ecraev1.ListFlavorsRequest{})
	if err != nil {
		return cf.rpcError("list flavors", err)
	}
	hs, err := c.ListHosts(ctx, &ecraev1.ListHostsRequest{})
	if err != nil {
		return cf.rpcError("list hosts", err)
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"architectures": as.GetArchitectures(), "tags": ts.GetTags(),
			"flavors": fls.GetFlavors(), "hosts": hs.GetHosts()})
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "ARCHITECTURE\tISA\tTHREADS\tMEMORY GB\tIDLE W\t100% W\tSSJ_OPS/W\tESTIMATE")
	for _, a := range as.GetArchitectures() {
		pw := a.GetPowerWatts()
		idle, full := 0.0, 0.0
		if len(pw) > 0 {
			idle, full = pw[0], pw[len(pw)-1]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.0f\t%v\n", a.GetName(), a.GetIsa(), a.GetThreads(), a.GetMemoryMb()/1024, idle, full, a.GetSsjOpsPerWatt(), a.GetEstimate())
	}
	fmt.Fprintln(tw, "\nTAG\tMODE\tCANDIDATES (architecture×factor)")
	for _, t := range ts.GetTags() {
		var cs []string
		for _, c := range t.GetCandidates() {
			name := c.GetArchitecture()
			if name == "" {
				name = "any " + c.GetIsa()
			}
			cs = append(cs, fmt.Sprintf("%s×%.2f", name, c.GetPerformanceFactor()))
		}
		mode := strings.ToLower(strings.TrimPrefix(t.GetMode().String(), "TAG_MODE_"))
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.GetName(), mode, strings.Join(cs, ", "))
	}
	fmt.Fprintln(tw, "\nFLAVOR\tVCPUS\tRAM MB\tDISK GB\tTAGS")
	for _, f := range fls.GetFlavors() {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", f.GetName(), f.GetVcpus(), f.GetMemoryMb(), f.GetRootGb()+f.GetEphemeralGb(), strings.Join(f.GetTags(), ","))
	}
	fmt.Fprintln(tw, "\nHOST\tARCHITECTURE\tRACK\tPOWER CAP W\tPOWER ENDPOINT")
	for _, h := range hs.GetHosts() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\n", h.GetName(), h.GetArchitecture(), h.GetRack(), h.GetPowerCapWatts(), h.GetPower())
	}
	return tw.Flush()
}

func kbExport(ctx context.Context, cf *clientFlags, out string, stdout io.Writer) error {
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).ExportKnowledgeBase(ctx, &ecraev1.ExportKnowledgeBaseRequest{})
	if err != nil {
		return cf.rpcError("export", err)
	}
	if cf.json {
		// The same document in JSON, the import format's field names.
		var doc any
		if err := yaml.Unmarshal([]byte(resp.GetYaml()), &doc); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		var b strings.Builder
		if err := printJSON(&b, jsonable(doc)); err != nil {
			return err
		}
		resp.Yaml = b.String()
	}
	if out == "-" {
		_, err = io.WriteString(stdout, resp.GetYaml())
		return err
	}
	// Write beside the target and rename, so a failed export never leaves a
	// half-written file where a good one was.
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, []byte(resp.GetYaml()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func kbImport(ctx context.Context, cf *clientFlags, file string, replace, dry, yes bool, stdin io.Reader, stdout, stderr io.Writer) error {
	data, err := readInput(file, stdin)
	if err != nil {
		return err
	}
	// A replacing import must be whole on its own: check it here, offline.
	// A merge may refer to what the service holds, so the service checks it
	// and names this file in its errors.
	var next *kbstore.KB
	if replace {
		if next, err = kbstore.ParseYAML(file, data); err != nil {
			return err
		}
	}
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	if replace && !dry {
		shown := stdout
		if cf.json { // stdout holds the one JSON document
			shown = stderr
		}
		if err := confirmReplace(ctx, ecraev1.NewKnowledgeBaseServiceClient(conn), next, file == "-", yes, stdin, shown); err != nil {
			return err
		}
	}
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(conn).ImportKnowledgeBase(ctx, &ecraev1.ImportKnowledgeBaseRequest{Yaml: string(data), Replace: replace, DryRun: dry, Name: file})
	if err != nil {
		return cf.rpcError("import "+file, err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	verb := "merged"
	if replace {
		verb = "replaced the KB with"
	}
	if dry {
		verb = "would have " + verb + " (dry run)"
	}
	fmt.Fprintf(stdout, "%s %s: %d architectures, %d tags, %d flavors, %d hosts\n", verb, file,
		resp.GetArchitectures(), resp.GetTags(), resp.GetFlavors(), resp.GetHosts())
	if !dry && resp.GetRevision() > 1 {
		fmt.Fprintf(stdout, "the KB is now revision %d (undo: ecrae kb rollback %d --yes)\n", resp.GetRevision(), resp.GetRevision()-1)
	}
	return nil
}
