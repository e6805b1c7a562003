package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/internal/suggest"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// kbHost maps a compute host to its architecture (set) or unmaps it
// (delete). set changes only the fields given, checks the architecture's
// ISA against the one the live view knows for the host, and warns about a
// host the view does not know.
func kbHost(ctx context.Context, args []string, stderr, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, kbUsage)
		return fmt.Errorf("%w: kb host needs set or delete", errUsage)
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, kbUsage)
		return nil
	}
	var cf clientFlags
	fs := newFlagSet("kb host "+args[0], stderr)
	cf.register(fs)
	arch := fs.String("arch", "", "architecture (KB name) of the host; required for a host the KB does not have")
	rack := fs.String("rack", "", "rack")
	pcap := fs.Float64("power-cap", 0, "power cap in watts")
	note := fs.String("note", "", "free text")
	power := fs.String("power", "", "power endpoint: ipmi://ADDR:PORT, redfish://ADDR/Systems/ID or ironic://NODE_UUID (credentials go in serve's --power-credentials file)")
	force := fs.Bool("force", false, "set --arch even if its ISA differs from the one the live view knows for the host")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: kb host %s takes one NAME", errUsage, args[0])
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *pcap < 0 {
		return fmt.Errorf("%w: --power-cap must not be negative, got %g", errUsage, *pcap)
	}
	conn, ctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	c := ecraev1.NewKnowledgeBaseServiceClient(conn)
	name := pos[0]
	switch args[0] {
	case "set":
	case "delete":
		if _, err := c.DeleteHost(ctx, &ecraev1.DeleteHostRequest{Name: name}); err != nil {
			return cf.rpcError("delete host", err)
		}
		fmt.Fprintf(stdout, "host %s deleted\n", name)
		return nil
	default:
		return fmt.Errorf("%w: unknown kb host subcommand %s", errUsage, quote.Value(args[0]))
	}

	h := &ecraev1.Host{Name: name}
	old, err := c.GetHost(ctx, &ecraev1.GetHostRequest{Name: name})
	exists := err == nil
	switch {
	case exists:
		h = old.GetHost()
	case status.Code(err) != codes.NotFound:
		return cf.rpcError("get host", err)
	case !given["arch"]:
		return fmt.Errorf("%w: --arch is required: the KB has no host %s", errUsage, quote.Value(name))
	}
	if given["arch"] {
		if err := checkHostISA(ctx, c, ecraev1.NewHostViewServiceClient(conn), name, *arch, *force, stderr); err != nil {
			return err
		}
		h.Architecture = *arch
	}
	if given["rack"] {
		h.Rack = *rack
	}
	if given["power-cap"] {
		h.PowerCapWatts = *pcap
	}
	if given["note"] {
		h.Note = *note
	}
	if given["power"] {
		h.Power = *power
	}
	if exists {
		if _, err := c.UpdateHost(ctx, &ecraev1.UpdateHostRequest{Host: h}); err != nil {
			return cf.rpcError("update host", flagError(err, hostFlags()))
		}
	} else if _, err := c.CreateHost(ctx, &ecraev1.CreateHostRequest{Host: h}); err != nil {
		return cf.rpcError("create host", flagError(err, hostFlags()))
	}
	fmt.Fprintf(stdout, "host %s → %s (rack %s, power cap %g W)\n", name, h.GetArchitecture(), orNone(h.GetRack()), h.GetPowerCapWatts())
	return nil
}

func hostFlags() map[string]string {
	return map[string]string{"host.name": "NAME", "host.architecture": "--arch", "host.rack": "--rack", "host.power_cap_watts": "--power-cap", "host.note": "--note", "host.power": "--power"}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// checkHostISA refuses an architecture whose ISA differs from the one the
// live view knows for the host (Nova's cpu_info), unless forced, and warns
// when the view does not know the host at all (a typo, or a host not yet
// reporting).
func checkHostISA(ctx context.Context, kb ecraev1.KnowledgeBaseServiceClient, view ecraev1.HostViewServiceClient, host, arch string, force bool, stderr io.Writer) error {
	ar, err := kb.GetArchitecture(ctx, &ecraev1.GetArchitectureRequest{Name: arch})
	if status.Code(err) == codes.NotFound {
		var names []string
		if l, lerr := kb.ListArchitectures(ctx, &ecraev1.ListArchitecturesRequest{}); lerr == nil {
			for _, a := range l.GetArchitectures() {
				names = append(names, a.GetName())
			}
		}
		return fmt.Errorf("%w: --arch: the KB has no architecture %s%s", errUsage, quote.Value(arch), suggest.DidYouMean(arch, names))
	}
	if err != nil {
		return fmt.Errorf("get architecture %s: %w", quote.Value(arch), err)
	}
	isa := ar.GetArchitecture().GetIsa()
	live, err := fetchLiveHosts(ctx, view, false)
	if err != nil {
		return fmt.Errorf("read the live view (ecrae hosts): %w", err)
	}
	var names []string
	for _, lh := range live.GetHosts() {
		if lh.GetHost() != host && lh.GetNodename() != host {
			names = append(names, lh.GetHost())
			continue
		}
		if lh.GetIsa() != "" && isa != "" && lh.GetIsa() != isa {
			if !force {
				return fmt.Errorf("%w: --arch %s is %s, but host %s is %s in the live view (ecrae hosts); --force sets it anyway",
					errUsage, arch, isa, host, lh.GetIsa())
			}
			fmt.Fprintf(stderr, "warning: --force: host %s is %s in the live view, --arch %s is %s\n", host, lh.GetIsa(), arch, isa)
		}
		return nil
	}
	fmt.Fprintf(stderr, "warning: the live view does not know host %s%s (ecrae hosts); set anyway\n", quote.Value(host), suggest.DidYouMean(host, names))
	return nil
}
