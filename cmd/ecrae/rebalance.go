package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/optimizer"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

const rebalanceUsage = `ecrae rebalance plan|execute|show|list|cancel|abort [flags]

  plan [--snapshot FILE]     plan a consolidation on the live view (or on a snapshot,
                             YAML or JSON with the ClusterSnapshot field names) and store it
                             (a plan with nothing to move is shown, not stored)
  execute [PLAN] [--yes]     dry run (default): check the plan against the live state,
                             exit 3 if anything is in the way;
                             --yes: migrate, showing progress until the plan ends
  show [PLAN]                a stored plan and the status of each step
  list [--limit N]           the stored plans, newest first
  cancel PLAN                withdraw a planned plan
  abort PLAN                 stop a running plan: the migrations in flight finish, no more start

PLAN is a plan id (p1, p2, ...); none means the latest. Add --json for JSON.
`

func runRebalance(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, rebalanceUsage)
		if len(args) == 0 {
			return fmt.Errorf("%w: rebalance needs plan, execute, show, list, cancel or abort", errUsage)
		}
		return nil
	}
	switch args[0] {
	case "plan":
		return runRebalancePlan(ctx, args[1:], stdin, stdout, stderr)
	case "execute":
		return runRebalanceExecute(ctx, args[1:], stdout, stderr)
	case "show":
		return runRebalanceShow(ctx, args[1:], stdout, stderr)
	case "list":
		return runRebalanceList(ctx, args[1:], stdout, stderr)
	case "cancel", "abort":
		return runRebalanceStop(ctx, args[0], args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, rebalanceUsage)
	return fmt.Errorf("%w: unknown rebalance command %s", errUsage, quote.Value(args[0]))
}

func runRebalancePlan(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("rebalance plan", stderr)
	cf.register(fs)
	snapshot := fs.String("snapshot", "", "plan on this snapshot (YAML or JSON, - for stdin) instead of the live view")
	algo := fs.String("algorithm", "", "algorithm (default "+optimizer.DefaultAlgorithm+"; see ecrae pack -h)")
	seed := fs.Uint64("seed", 1, "random seed: the same seed on the same state gives the same plan")
	limit := fs.Duration("time-limit", time.Second, "time budget of the search")
	maxMig := fs.Int("max-migrations", 0, "cap on the plan's migrations (0: none)")
	perHost := fs.Int("max-per-host", 0, "migrations in flight at once touching one host (0: the service's default, 1)")
	parallel := fs.Int("max-parallel", 0, "migrations in flight at once in all (0: the service's default, 8)")
	relieve := fs.Float64("relieve", 0, "share of a host's cores its instances may keep busy past their ceiling before some move away, and the share they move down to (0: the ceiling; at most 1)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: rebalance plan takes no arguments (the snapshot goes with --snapshot)", errUsage)
	}
	if math.IsNaN(*relieve) || *relieve < 0 || *relieve > 1 {
		return fmt.Errorf("%w: --relieve %v: want 0 (the ceiling) or a share in (0, 1]", errUsage, *relieve)
	}
	req := &ecraev1.PlanRebalanceRequest{
		Algorithm: *algo, Seed: *seed, TimeLimit: durationpb.New(*limit),
		MaxMigrations: int32(*maxMig), MaxPerHost: int32(*perHost), MaxParallel: int32(*parallel), Relieve: *relieve,
	}
	if *snapshot != "" {
		data, err := readInput(*snapshot, stdin)
		if err != nil {
			return err
		}
		req.Snapshot = &ecraev1.ClusterSnapshot{}
		if err := yamlToProto(*snapshot, data, req.Snapshot); err != nil {
			return err
		}
	}
	conn, err := cf.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	// The call lasts as long as the search, and then some.
	cctx, cancel := context.WithTimeout(ctx, max(cf.timeout, *limit+cf.timeout))
	defer cancel()
	resp, err := ecraev1.NewRebalanceServiceClient(conn).PlanRebalance(cctx, req)
	if err != nil {
		return cf.rpcError("plan rebalance", flagError(err, planFlags()))
	}
	if cf.json {
		return printJSON(stdout, resp.GetPlan())
	}
	return printPlan(stdout, resp.GetPlan())
}

func runRebalanceShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("rebalance show", stderr)
	cf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: rebalance show takes at most one PLAN id", errUsage)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewRebalanceServiceClient(conn).GetPlan(cctx, &ecraev1.GetPlanRequest{PlanId: first(pos)})
	if err != nil {
		return cf.rpcError("get plan", err)
	}
	if cf.json {
		return printJSON(stdout, resp.GetPlan())
	}
	return printPlan(stdout, resp.GetPlan())
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// errPlanFailed marks an execution that ended without succeeding.
var errPlanFailed = errors.New("the plan did not succeed")

// errPlanStale marks a dry run that found the plan cannot run as it is.
var errPlanStale = errors.New("the plan cannot run as it is")

func runRebalanceList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("rebalance list", stderr)
	cf.register(fs)
	limit := fs.Int("limit", 0, "at most this many plans, newest first (0: all)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: rebalance list takes no arguments", errUsage)
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := ecraev1.NewRebalanceServiceClient(conn).ListPlans(cctx, &ecraev1.ListPlansRequest{Limit: int32(*limit)})
	if err != nil {
		return cf.rpcError("list plans", err)
	}
	if cf.json {
		return printJSON(stdout, resp)
	}
	tw := table(stdout)
	fmt.Fprintln(tw, "PLAN\tSTATUS\tCREATED\tSOURCE\tWAVES\tHOSTS USED\tSAVING W\tEXPIRES\tEXECUTED BY")
	for _, p := range resp.GetPlans() {
		expires := "-"
		if p.GetStatus() == ecraev1.PlanStatus_PLAN_STATUS_PLANNED && p.GetExpiresAt() != nil {
			expires = p.GetExpiresAt().AsTime().Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d → %d\t%.1f\t%s\t%s\n", p.GetId(), statusWord2(p.GetStatus()),
			p.GetCreatedAt().AsTime().Local().Format(time.DateTime), p.GetSource(), p.GetWaves(),
			p.GetHostsUsedBefore(), p.GetHostsUsedAfter(), p.GetPowerBeforeWatts()-p.GetPowerAfterWatts(), expires, cmp.Or(p.GetExecutedBy(), "-"))
	}
	return tw.Flush()
}

// runRebalanceStop is cancel (a planned plan) and abort (a running one).
func runRebalanceStop(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("rebalance "+verb, stderr)
	cf.register(fs)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return fmt.Errorf("%w: rebalance %s takes one PLAN id", errUsage, verb)
	}
	conn, cctx, done, err := cf.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	client := ecraev1.NewRebalanceServiceClient(conn)
	var p *ecraev1.Plan
	if verb == "cancel" {
		resp, err := client.CancelPlan(cctx, &ecraev1.CancelPlanRequest{PlanId: pos[0]})
		if err != nil {
			return cf.rpcError("cancel plan", err)
		}
		p = resp.GetPlan()
	} else {
		resp, err := client.AbortPlan(cctx, &ecraev1.AbortPlanRequest{PlanId: pos[0]})
		if err != nil {
			return cf.rpcError("abort plan", err)
		}
		p = resp.GetPlan()
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	if verb == "cancel" {
		fmt.Fprintf(stdout, "plan %s cancelled\n", p.GetId())
	} else {
		fmt.Fprintf(stdout, "plan %s: abort requested; the migrations in flight finish, no more start (follow with ecrae rebalance show %s)\n", p.GetId(), p.GetId())
	}
	return nil
}

func runRebalanceExecute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf clientFlags
	fs := newFlagSet("rebalance execute", stderr)
	cf.register(fs)
	yes := fs.Bool("yes", false, "really migrate (without it: a dry run)")
	stepTimeout := fs.Duration("step-timeout", 0, "time one migration may take before the plan stops (0: the service's default, 10m)")
	wait := fs.Bool("wait", true, "follow the execution until the plan ends")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often progress is read")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: rebalance execute takes at most one PLAN id", errUsage)
	}
	if *poll <= 0 {
		return fmt.Errorf("%w: --poll must be positive", errUsage)
	}
	conn, err := cf.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := ecraev1.NewRebalanceServiceClient(conn)
	req := &ecraev1.ExecutePlanRequest{PlanId: first(pos), Execute: *yes}
	if *stepTimeout > 0 {
		req.StepTimeout = durationpb.New(*stepTimeout)
	}
	cctx, cancel := cf.call(ctx)
	resp, err := client.ExecutePlan(cctx, req)
	cancel()
	if err != nil {
		return cf.rpcError("execute plan", flagError(err, map[string]string{"step_timeout": "--step-timeout"}))
	}
	p := resp.GetPlan()
	if resp.GetDryRun() {
		if cf.json {
			if err := printJSON(stdout, resp); err != nil {
				return err
			}
			if len(resp.GetProblems()) > 0 {
				return partial(fmt.Errorf("plan %s: %s: %w", p.GetId(), plural(len(resp.GetProblems()), "problem"), errPlanStale))
			}
			return nil
		}
		fmt.Fprintf(stdout, "dry run of plan %s: %s would run (add --yes to execute)\n", p.GetId(), movesSentence(p))
		if err := printSteps(stdout, p); err != nil {
			return err
		}
		if len(resp.GetProblems()) == 0 {
			fmt.Fprintln(stdout, "no problem found: the plan can run")
			return nil
		}
		fmt.Fprintln(stdout, "problems:")
		for _, pr := range resp.GetProblems() {
			fmt.Fprintln(stdout, "  - "+pr)
		}
		return partial(fmt.Errorf("plan %s: %s: %w", p.GetId(), plural(len(resp.GetProblems()), "problem"), errPlanStale))
	}
	if !cf.json {
		fmt.Fprintf(stdout, "executing plan %s: %s\n", p.GetId(), movesSentence(p))
	}
	if !*wait {
		if cf.json {
			return printJSON(stdout, p)
		}
		return nil
	}
	// Progress: one line per step status change, until the plan ends.
	seen := map[int32]ecraev1.StepStatus{}
	for {
		if !cf.json {
			for _, st := range p.GetSteps() {
				if seen[st.GetIndex()] == st.GetStatus() || st.GetStatus() == ecraev1.StepStatus_STEP_STATUS_PENDING {
					continue
				}
				seen[st.GetIndex()] = st.GetStatus()
				fmt.Fprintf(stdout, "%s step %d/%d (wave %d) %s %s → %s: %s%s\n", time.Now().Format("15:04:05"),
					st.GetIndex()+1, len(p.GetSteps()), st.GetWave()+1, stepName(st), st.GetFromHost(), st.GetToHost(),
					statusWord(st.GetStatus()), stepDetail(st))
			}
		}
		if p.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_EXECUTING {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following plan %s (it keeps executing; see ecrae rebalance show %s): %w", p.GetId(), p.GetId(), ctx.Err())
		case <-time.After(*poll):
		}
		cctx, cancel := cf.call(ctx)
		g, err := client.GetPlan(cctx, &ecraev1.GetPlanRequest{PlanId: p.GetId()})
		cancel()
		if err != nil {
			return cf.rpcError("follow plan "+p.GetId(), err)
		}
		p = g.GetPlan()
	}
	if cf.json {
		if err := printJSON(stdout, p); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "plan %s %s: %s\n", p.GetId(), statusWord2(p.GetStatus()), p.GetMessage())
	}
	if p.GetStatus() != ecraev1.PlanStatus_PLAN_STATUS_SUCCEEDED {
		return fmt.Errorf("plan %s %s: %w", p.GetId(), statusWord2(p.GetStatus()), errPlanFailed)
	}
	return nil
}

func stepName(st *ecraev1.PlanStep) string {
	if st.GetInstanceName() != "" {
		return st.GetInstanceName()
	}
	return st.GetInstanceId()
}

func stepDetail(st *ecraev1.PlanStep) string {
	switch {
	case st.GetError() != "":
		return " — " + st.GetError()
	case st.GetConfirmedBy() != "":
		return " (confirmed by " + st.GetConfirmedBy() + ")"
	}
	return ""
}

func statusWord(s ecraev1.StepStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STEP_STATUS_"))
}

func statusWord2(s ecraev1.PlanStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PLAN_STATUS_"))
}

// printPlan prints a plan's summary and its steps as a table.
func printPlan(w io.Writer, p *ecraev1.Plan) error {
	if p.GetId() == "" { // an empty plan is not stored
		fmt.Fprintf(w, "nothing to move (not stored): %s\n", p.GetNote())
	}
	fmt.Fprintf(w, "plan %s (%s), from %s; %s, seed %d, %.2f s%s\n", cmp.Or(p.GetId(), "-"), statusWord2(p.GetStatus()),
		p.GetSource(), p.GetAlgorithm(), p.GetSeed(), p.GetSeconds(), stoppedWords(p.GetStopped()))
	saving := p.GetPowerBeforeWatts() - p.GetPowerAfterWatts()
	// The net figure is the one the console and ecrae_rebalance_last_saving_watts show.
	fmt.Fprintf(w, "power %.1f W → %.1f W (saving %.1f W, %.1f W net of the migrations: they copy %.1f GB, %.1f W over the horizon)\n",
		p.GetPowerBeforeWatts(), p.GetPowerAfterWatts(), saving, saving-p.GetMigrationWatts(), float64(p.GetMigrationMb())/1024, p.GetMigrationWatts())
	lb := p.GetLowerBounds()
	fmt.Fprintf(w, "hosts used %d → %d; lower bounds: %d hosts (continuous %d, L2 %d, conflicts %d), %.1f W\n",
		p.GetHostsUsedBefore(), p.GetHostsUsedAfter(), lb.GetHosts(), lb.GetContinuous(), lb.GetL2(), lb.GetConflicts(), lb.GetWatts())
	if len(p.GetHostsFreed()) > 0 {
		fmt.Fprintf(w, "hosts freed: %s\n", strings.Join(p.GetHostsFreed(), ", "))
	}
	if len(p.GetPowerDownCandidates()) > 0 {
		fmt.Fprintf(w, "empty after the plan (power-down candidates): %s\n", strings.Join(p.GetPowerDownCandidates(), ", "))
	}
	if p.GetNote() != "" {
		fmt.Fprintf(w, "note: %s\n", p.GetNote())
	}
	printRepair(w, p)
	if len(p.GetSteps()) > 0 {
		fmt.Fprintf(w, "%s, at most %d per host and %d at once:\n",
			movesSentence(p), p.GetMaxPerHost(), p.GetMaxParallel())
		if err := printSteps(w, p); err != nil {
			return err
		}
	}
	for _, u := range p.GetUnreachable() {
		fmt.Fprintf(w, "not reached: %s to %s: %s\n", u.GetInstanceId(), u.GetTargetHost(), u.GetReason())
	}
	if n := len(p.GetFixed()); n > 0 {
		why := map[string]int{}
		var order []string
		for _, f := range p.GetFixed() {
			if why[f.GetReason()] == 0 {
				order = append(order, f.GetReason())
			}
			why[f.GetReason()]++
		}
		var parts []string
		for _, r := range order {
			parts = append(parts, fmt.Sprintf("%d %s", why[r], r))
		}
		fmt.Fprintf(w, "instances that cannot move: %s\n", strings.Join(parts, "; "))
	}
	if gs := p.GetFixedGroups(); len(gs) > 0 {
		var parts []string
		for _, g := range gs {
			parts = append(parts, fmt.Sprintf("%d %s (e.g. %s)", g.GetCount(), g.GetReason(), strings.Join(g.GetExampleInstanceIds(), ", ")))
		}
		fmt.Fprintf(w, "instances that cannot move: %s\n", strings.Join(parts, "; "))
	}
	if p.GetStatus() == ecraev1.PlanStatus_PLAN_STATUS_PLANNED && p.GetExpiresAt() != nil {
		fmt.Fprintf(w, "expires at %s unless executed\n", p.GetExpiresAt().AsTime().Local().Format(time.DateTime))
	}
	if p.GetExecutedBy() != "" {
		fmt.Fprintf(w, "executed by: %s\n", p.GetExecutedBy())
	}
	if p.GetMessage() != "" {
		fmt.Fprintf(w, "execution: %s\n", p.GetMessage())
	}
	return nil
}

// movesSentence is a plan's size in words: "1 migration in 1 wave".
func movesSentence(p *ecraev1.Plan) string {
	return plural(len(p.GetSteps()), "migration") + " in " + plural(int(p.GetWaves()), "wave")
}

// stoppedWords says in plain words why the search ended (optimizer's
// Stopped* values); "" when the plan does not say.
func stoppedWords(stopped string) string {
	switch stopped {
	case "":
		return ""
	case optimizer.StoppedOptimal:
		return ", as good as the lower bound allows"
	case optimizer.StoppedStalled:
		return ", no better packing found"
	case optimizer.StoppedIterations:
		return ", stopped at its iteration budget"
	case optimizer.StoppedTime:
		return ", stopped at its time limit"
	case optimizer.StoppedConstruct:
		return ", one pass (no search)"
	}
	return ", ended: " + stopped
}

func printSteps(w io.Writer, p *ecraev1.Plan) error {
	tw := table(w)
	fmt.Fprintln(tw, "STEP\tWAVE\tINSTANCE\tFROM\tTO\tMEMORY MB\tSTATUS\tDETAIL")
	for _, st := range p.GetSteps() {
		detail := strings.TrimPrefix(strings.TrimPrefix(stepDetail(st), " — "), " ")
		if st.GetDetour() {
			detail = strings.TrimSpace("detour " + detail)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", st.GetIndex()+1, st.GetWave()+1, stepName(st),
			st.GetFromHost(), st.GetToHost(), st.GetMemoryMb(), statusWord(st.GetStatus()), detail)
	}
	return tw.Flush()
}
