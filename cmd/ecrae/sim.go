package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/optimizer"
	"github.com/ecrae/ecrae/sim"
)

const simUsage = `ecrae sim --trace DIR [--policy NAME] [--vm-order FILE|DIR] [--kb FILE] [--seed N] [--json] [--plot FILE.svg|png]
ecrae sim --compare [--policies a,b,c] --trace DIR [--trace DIR2 ...] [--vm-order DIR] [--results FILE] [--json] [--plot FILE.svg|png]

Replays a day of PlanetLab traces (a folder, one file per VM, 288 CPU
percentages at 300 s) through a placement and consolidation policy, and
prints energy (kWh), migrations, SLATAH, PDM, SLAV = SLATAH x PDM, ESV =
energy x SLAV, host shutdowns. The default data center is CloudSim's
PlanetLab experiment (800 HP ProLiant ML110 G4/G5 hosts, four VM types);
--kb takes the hosts and VM types from an ECRAE knowledge base instead.

--compare runs several policies on one or more days and prints them side by
side, with CloudSim's own figures next to them when --results names its
results table (../shared/data/cloudsim/results.md).

Policies (NAME or NAME:KEY=VALUE,...):
`

// simFlags are sim's flags.
type simFlags struct {
	traces   multiFlag
	policy   string
	policies string
	vmOrder  string
	kb       string
	hosts    int
	copies   int
	trans    string
	mode     string
	seed     uint64
	json     bool
	series   bool
	plot     string
	compare  bool
	results  string
}

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// simOutput is the JSON of one run: the metrics the issue names first,
// then the rest of sim.Result.
type simOutput struct {
	Policy           string        `json:"policy"`
	Mode             string        `json:"mode"`
	Day              string        `json:"day"`
	EnergyKWh        float64       `json:"energy_kwh"`
	Migrations       int           `json:"migrations"`
	SLATAH           float64       `json:"slatah"`
	PDM              float64       `json:"pdm"`
	SLAV             float64       `json:"slav"`
	ESV              float64       `json:"esv"`
	HostShutdowns    int           `json:"host_shutdowns"`
	VMs              int           `json:"vms"`
	Hosts            int           `json:"hosts"`
	Seconds          float64       `json:"seconds"`
	FloorKWh         float64       `json:"floor_kwh"`
	OverallSLA       float64       `json:"overall_sla"`
	Unplaced         int           `json:"unplaced"`
	SimulatedSeconds float64       `json:"simulated_seconds"`
	Seed             uint64        `json:"seed"`
	Transitions      string        `json:"transitions"`
	HostBoots        int           `json:"host_boots"`
	StandbyKWh       float64       `json:"standby_kwh"`
	BootKWh          float64       `json:"boot_kwh"`
	IdleKWh          float64       `json:"idle_kwh"`
	CloudSim         *simReference `json:"cloudsim"`
	Series           []sim.Sample  `json:"series,omitempty"`
}

// simReference is CloudSim's row next to a run, when there is one.
type simReference struct {
	Policy        string  `json:"policy"`
	EnergyKWh     float64 `json:"energy_kwh"`
	Migrations    int     `json:"migrations"`
	SLATAH        float64 `json:"slatah"`
	PDM           float64 `json:"pdm"`
	SLAV          float64 `json:"slav"`
	ESV           float64 `json:"esv"`
	HostShutdowns int     `json:"host_shutdowns"`
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f simFlags
	fs := newFlagSet("sim", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, simUsage)
		for _, n := range sim.PolicyNames() {
			fmt.Fprintf(stderr, "  %-12s %s\n", n, sim.PolicyHelp(n))
		}
		fmt.Fprint(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Var(&f.traces, "trace", "trace folder of one day (repeat with --compare)")
	fs.StringVar(&f.policy, "policy", "ecrae", "policy to run")
	fs.StringVar(&f.policies, "policies", "npa,dvfs,thr-mmt,lr-mmt,nova-spread,ecrae", "policies to compare, comma-separated")
	fs.StringVar(&f.vmOrder, "vm-order", "", "VM order: a file (INDEX NAME MIPS a line), or a folder holding DAY.txt for each trace folder DAY; default: file names sorted")
	fs.StringVar(&f.kb, "kb", "", "knowledge base YAML: simulate its architectures (hosts) and flavors (VM types)")
	fs.IntVar(&f.hosts, "hosts", sim.CloudSimHosts, "number of hosts, given the models in turn (ignored when the KB lists hosts)")
	fs.IntVar(&f.copies, "copies", 1, "run each day's VMs this many times over (with --hosts: a data center that many times larger)")
	fs.StringVar(&f.trans, "transitions", "none", "none: hosts go off and on at once, for free (CloudSim); realistic[:boot=300,shutdown=30,standby=10,hold=0]: a boot takes seconds at peak power and nothing starts meanwhile, a shutdown seconds at idle power, an off host draws standby watts; an emptied host goes off once empty for hold seconds")
	fs.StringVar(&f.mode, "mode", "cloudsim", "cloudsim: CloudSim 3.0.3's semantics (RAM limits the start only; a VM at 0 % leaves); strict: RAM limits every placement, VMs stay")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed: the same seed gives the same result")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	fs.BoolVar(&f.series, "series", false, "with --json: include the per-step series")
	fs.StringVar(&f.plot, "plot", "", "write a plot of power and active hosts over the day (.svg or .png); with --compare, every policy on one chart")
	fs.BoolVar(&f.compare, "compare", false, "run several policies (--policies) on every --trace and print them side by side")
	fs.StringVar(&f.results, "results", "", "with --compare: CloudSim's results table, shown alongside")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: sim takes flags only, got %s", errUsage, quote.Value(pos[0]))
	}
	if len(f.traces) == 0 {
		return fmt.Errorf("%w: give --trace DIR", errUsage)
	}
	if !f.compare && len(f.traces) > 1 {
		return fmt.Errorf("%w: one --trace without --compare", errUsage)
	}
	if f.plot != "" {
		if f.compare && len(f.traces) > 1 {
			return fmt.Errorf("%w: --plot with --compare draws the policies of one day: give one --trace", errUsage)
		}
		if ext := strings.ToLower(filepath.Ext(f.plot)); ext != ".svg" && ext != ".png" {
			return fmt.Errorf("%w: --plot FILE must end in .svg or .png", errUsage)
		}
	}
	if f.hosts <= 0 {
		return fmt.Errorf("%w: --hosts must be positive", errUsage)
	}
	if f.copies < 1 || f.copies > 1000 {
		return fmt.Errorf("%w: --copies must be in [1, 1000], got %d", errUsage, f.copies)
	}
	setup, err := simSetup(&f)
	if err != nil {
		return err
	}
	if f.compare {
		return runSimCompare(ctx, &f, setup, stdout, stderr)
	}
	spec, err := sim.ParsePolicy(f.policy)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	day, err := readDay(f.traces[0], f.vmOrder, true)
	if err != nil {
		return err
	}
	day = day.Repeat(f.copies)
	res, err := sim.Run(ctx, setup, day, spec, sim.Options{Seed: f.seed, Progress: progressBar(stderr, spec.String())})
	if err != nil {
		return err
	}
	if f.plot != "" {
		if err := writePlot(f.plot, res); err != nil {
			return err
		}
	}
	out := toOutput(res, f.seed, nil)
	if f.json {
		if f.series {
			out.Series = res.Series
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	return printRun(stdout, out)
}

// simSetup is CloudSim's data center, or the KB's.
func simSetup(f *simFlags) (sim.Setup, error) {
	mode, err := sim.ParseMode(f.mode)
	if err != nil {
		return sim.Setup{}, fmt.Errorf("%w: %v", errUsage, err)
	}
	var s sim.Setup
	if f.kb == "" {
		s = sim.CloudSimSetup()
		if f.hosts != len(s.Hosts) {
			s.RoundRobinHosts(f.hosts)
		}
	} else {
		data, err := os.ReadFile(f.kb)
		if err != nil {
			return sim.Setup{}, err
		}
		kb, err := kbstore.ParseYAML(f.kb, data)
		if err != nil {
			return sim.Setup{}, err
		}
		if s, err = setupFromKB(kb, f.hosts); err != nil {
			return sim.Setup{}, fmt.Errorf("%s: %w", f.kb, err)
		}
	}
	s.Mode = mode
	if s.Transitions, err = sim.ParseTransitions(f.trans); err != nil {
		return sim.Setup{}, fmt.Errorf("%w: --transitions: %v", errUsage, err)
	}
	return s, s.Validate()
}

// KB conventions: a host PE is a hardware thread running at the model's
// core clock in MIPS (CloudSim's convention: its G4 and G5 PEs are 1860 and
// 2660 MIPS), the network 1 Gbit/s; a flavor vCPU asks for up to
// kbVCPUMIPS and 100 Mbit/s.
const (
	kbVCPUMIPS      = 1000
	kbBandwidthMbps = 1000
	kbVMBandwidth   = 100
)

// setupFromKB turns a knowledge base into a data center: one host model per
// architecture with a power curve, the KB's hosts (or n hosts given the
// models in turn), one VM type per flavor (CloudSim's four when the KB has
// none).
func setupFromKB(kb *kbstore.KB, n int) (sim.Setup, error) {
	s := sim.CloudSimSetup()
	s.Name = "kb"
	s.Models = nil
	index := map[string]int{}
	for _, a := range kb.Architectures {
		if len(a.PowerWatts) != optimizer.CurvePoints {
			continue
		}
		pes := a.Threads
		if pes <= 0 {
			pes = a.Cores
		}
		if pes <= 0 || a.CoreMHz <= 0 {
			return s, fmt.Errorf("architecture %s: needs threads (or cores) and core_mhz to be simulated", quote.Value(a.Name))
		}
		var c optimizer.PowerCurve
		copy(c[:], a.PowerWatts)
		index[a.Name] = len(s.Models)
		s.Models = append(s.Models, sim.HostModel{Name: a.Name, ISA: a.ISA, PEs: pes, PEMIPS: a.CoreMHz,
			RAMMB: a.MemoryMB, BandwidthMbps: kbBandwidthMbps, Curve: c, Estimate: a.Estimate})
	}
	if len(s.Models) == 0 {
		return s, errors.New("no architecture with a power curve")
	}
	if len(kb.Hosts) > 0 {
		s.Hosts = nil
		for _, h := range kb.Hosts {
			i, ok := index[h.Architecture]
			if !ok {
				return s, fmt.Errorf("host %s: architecture %s has no power curve", quote.Value(h.Name), quote.Value(h.Architecture))
			}
			s.Hosts = append(s.Hosts, i)
		}
	} else {
		s.RoundRobinHosts(n)
	}
	if len(kb.Flavors) > 0 {
		s.VMTypes = nil
		for _, fl := range kb.Flavors {
			s.VMTypes = append(s.VMTypes, sim.VMType{Name: fl.Name, PEs: max(fl.VCPUs, 1), MIPS: kbVCPUMIPS,
				RAMMB: fl.MemoryMB, BandwidthMbps: kbVMBandwidth})
		}
	}
	return s, nil
}

// readDay reads a trace folder and puts it in the order of --vm-order: a
// file (single) or a folder holding DAY.txt.
func readDay(dir, order string, single bool) (*sim.Day, error) {
	day, err := sim.ReadDay(dir)
	if err != nil {
		return nil, err
	}
	if order == "" {
		return day, nil
	}
	file := order
	if st, err := os.Stat(order); err == nil && st.IsDir() {
		file = filepath.Join(order, filepath.Base(filepath.Clean(dir))+".txt")
	} else if !single {
		return nil, fmt.Errorf("%w: with several --trace, --vm-order must be a folder holding DAY.txt", errUsage)
	}
	names, err := sim.ReadVMOrder(file)
	if err != nil {
		return nil, err
	}
	if err := day.Reorder(file, names); err != nil {
		return nil, err
	}
	return day, nil
}

func writePlot(file string, rs ...*sim.Result) (err error) {
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	if strings.EqualFold(filepath.Ext(file), ".png") {
		return sim.WritePNG(out, rs...)
	}
	return sim.WriteSVG(out, rs...)
}

func toOutput(r *sim.Result, seed uint64, ref *sim.Reference) simOutput {
	o := simOutput{Policy: r.Policy, Mode: r.Mode, Day: filepath.Base(filepath.Clean(r.Day)),
		EnergyKWh: r.EnergyKWh, Migrations: r.Migrations, SLATAH: r.SLATAH, PDM: r.PDM, SLAV: r.SLAV, ESV: r.ESV,
		HostShutdowns: r.HostShutdowns, VMs: r.VMs, Hosts: r.Hosts, Seconds: r.Seconds, FloorKWh: r.FloorKWh,
		OverallSLA: r.OverallSLA, Unplaced: r.Unplaced, SimulatedSeconds: r.SimulatedSeconds, Seed: seed,
		Transitions: r.Transitions, HostBoots: r.HostBoots, StandbyKWh: r.StandbyKWh,
		BootKWh: r.BootKWh, IdleKWh: r.IdleKWh}
	if ref != nil {
		o.CloudSim = &simReference{Policy: ref.Policy, EnergyKWh: ref.EnergyKWh, Migrations: ref.Migrations,
			SLATAH: ref.SLATAH, PDM: ref.PDM, SLAV: ref.SLAV, ESV: ref.ESV, HostShutdowns: ref.HostShutdowns}
	}
	return o
}

func printRun(w io.Writer, o simOutput) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "policy\t%s\n", o.Policy)
	fmt.Fprintf(tw, "day\t%s (%d VMs, %d hosts, %s mode)\n", o.Day, o.VMs, o.Hosts, o.Mode)
	fmt.Fprintf(tw, "energy\t%.2f kWh (floor %.1f kWh, x%.2f)\n", o.EnergyKWh, o.FloorKWh, ratio(o.EnergyKWh, o.FloorKWh))
	fmt.Fprintf(tw, "migrations\t%d\n", o.Migrations)
	fmt.Fprintf(tw, "SLATAH\t%.2f %%\n", o.SLATAH*100)
	fmt.Fprintf(tw, "PDM\t%.4f %%\n", o.PDM*100)
	fmt.Fprintf(tw, "SLAV\t%.5f %%\n", o.SLAV*100)
	fmt.Fprintf(tw, "ESV\t%.3f x1e-3\n", o.ESV*1000)
	fmt.Fprintf(tw, "host shutdowns\t%d\n", o.HostShutdowns)
	if o.Transitions != "" && o.Transitions != "none" {
		fmt.Fprintf(tw, "transitions\t%s: %d boots; of the energy, %.2f kWh in standby, %.2f booting, %.2f on with no VM\n", o.Transitions, o.HostBoots, o.StandbyKWh, o.BootKWh, o.IdleKWh)
	}
	if o.Unplaced > 0 {
		fmt.Fprintf(tw, "unplaced VMs\t%d\n", o.Unplaced)
	}
	fmt.Fprintf(tw, "time\t%.2f s for %.0f s simulated\n", o.Seconds, o.SimulatedSeconds)
	return tw.Flush()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func runSimCompare(ctx context.Context, f *simFlags, setup sim.Setup, stdout, stderr io.Writer) error {
	var specs []sim.PolicySpec
	for _, p := range strings.Split(f.policies, ",") {
		if strings.TrimSpace(p) == "" {
			continue
		}
		spec, err := sim.ParsePolicy(p)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		specs = append(specs, spec)
	}
	if len(specs) == 0 {
		return fmt.Errorf("%w: --policies names no policy", errUsage)
	}
	var refs sim.References
	if f.results != "" {
		data, err := os.ReadFile(f.results)
		if err != nil {
			return err
		}
		if refs, err = sim.ParseReferences(f.results, strings.NewReader(string(data))); err != nil {
			return err
		}
	}
	var outs []simOutput
	var runs []*sim.Result // for --plot: one day, every policy
	for _, dir := range f.traces {
		day, err := readDay(dir, f.vmOrder, len(f.traces) == 1)
		if err != nil {
			return err
		}
		day = day.Repeat(f.copies)
		name := filepath.Base(filepath.Clean(dir))
		for _, spec := range specs {
			res, err := sim.Run(ctx, setup, day, spec, sim.Options{Seed: f.seed, Progress: progressBar(stderr, name+" "+spec.String())})
			if err != nil {
				return fmt.Errorf("%s, %s: %w", name, spec, err)
			}
			var ref *sim.Reference
			if r, ok := refs.Lookup(name, spec); ok && setup.Mode == sim.ModeCloudSim && f.copies == 1 && !setup.Transitions.Enabled {
				ref = &r
			}
			outs = append(outs, toOutput(res, f.seed, ref))
			runs = append(runs, res)
		}
	}
	if f.plot != "" {
		if err := writePlot(f.plot, runs...); err != nil {
			return err
		}
	}
	if f.json {
		return json.NewEncoder(stdout).Encode(struct {
			Runs []simOutput `json:"runs"`
		}{outs})
	}
	return printCompare(stdout, outs, refs != nil)
}

// printCompare is the side-by-side table; with references, CloudSim's
// energy and migrations and our deviation from them.
func printCompare(w io.Writer, outs []simOutput, withRefs bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "day\tpolicy\tenergy kWh\t"
	if withRefs {
		head += "CloudSim\tdev\t"
	}
	head += "migrations\t"
	if withRefs {
		head += "CloudSim\tdev\t"
	}
	head += "SLATAH %\tPDM %\tSLAV %\t"
	if withRefs {
		head += "CloudSim SLAV %\t"
	}
	head += "ESV x1e-3\tshutdowns\tx floor\ts\t"
	fmt.Fprintln(tw, head)
	for _, o := range outs {
		row := fmt.Sprintf("%s\t%s\t%.2f\t", o.Day, o.Policy, o.EnergyKWh)
		ref := o.CloudSim
		if withRefs {
			row += refCells(ref, func(r *simReference) float64 { return r.EnergyKWh }, o.EnergyKWh, "%.2f")
		}
		row += fmt.Sprintf("%d\t", o.Migrations)
		if withRefs {
			row += refCells(ref, func(r *simReference) float64 { return float64(r.Migrations) }, float64(o.Migrations), "%.0f")
		}
		row += fmt.Sprintf("%.2f\t%.4f\t%.5f\t", o.SLATAH*100, o.PDM*100, o.SLAV*100)
		if withRefs {
			if ref != nil {
				row += fmt.Sprintf("%.5f\t", ref.SLAV*100)
			} else {
				row += "-\t"
			}
		}
		row += fmt.Sprintf("%.3f\t%d\t%.2f\t%.1f\t", o.ESV*1000, o.HostShutdowns, ratio(o.EnergyKWh, o.FloorKWh), o.Seconds)
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

func refCells(ref *simReference, get func(*simReference) float64, ours float64, format string) string {
	if ref == nil {
		return "-\t-\t"
	}
	v := get(ref)
	dev := "-"
	if v != 0 {
		d := (ours - v) / v * 100
		if math.Abs(d) < 0.05 {
			d = 0 // no "-0.0%"
		}
		dev = fmt.Sprintf("%+.1f%%", d)
	} else if ours == 0 {
		dev = "0.0%"
	}
	return fmt.Sprintf(format+"\t%s\t", v, dev)
}

// progressBar draws a bar on stderr when stderr is a terminal, nothing
// otherwise (a log or a pipe gets only the result).
func progressBar(stderr io.Writer, label string) func(done, total int) {
	f, ok := stderr.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	start := time.Now()
	return func(done, total int) {
		const width = 30
		n := done * width / max(total, 1)
		fmt.Fprintf(stderr, "\r%-28s [%s%s] %3d%% %5.1fs", label, strings.Repeat("#", n), strings.Repeat(".", width-n),
			done*100/max(total, 1), time.Since(start).Seconds())
		if done == total {
			fmt.Fprint(stderr, "\r\033[K")
		}
	}
}

var _ flag.Value = (*multiFlag)(nil)
