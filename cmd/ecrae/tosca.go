package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/kbstore"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"github.com/ecrae/ecrae/server"
	"github.com/ecrae/ecrae/tosca"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/orchestration/v1/stacks"
	"google.golang.org/grpc"
)

const toscaUsage = `Usage:
  ecrae tosca resolve APP.yaml [flags]   resolve the tagged nodes: the resolved TOSCA on stdout
  ecrae tosca hot APP.yaml [flags]       resolve, then convert to a Heat (HOT) template on stdout
  ecrae tosca deploy APP.yaml --stack NAME [flags]
                                         resolve, convert and create the Heat stack; wait for it

Flags:
  --input KEY=VALUE   a value for a template input (repeatable); for hot and deploy
                      also for the parameters ECRAE adds (network, NODE_image)
  --no-service        resolve in-process from a knowledge base file, not the service
  --kb FILE           with --no-service: the knowledge base (default: the built-in one);
                      with no hosts in it, one idle server per architecture is assumed
  --server ADDR       the ecrae service (default 127.0.0.1:50051)
  --timeout D         deadline of each service call (default 10s)
  --image-map FILE    hot, deploy: images by os capability (else an image parameter)
  --script-timeout D  hot, deploy: how long each server's scripts may run (default 30m)
  --stack NAME        deploy: the stack's name
  --os-cloud NAME     deploy: the clouds.yaml entry (default $OS_CLOUD; OS_* variables
                      are used when neither is set and OS_AUTH_URL is)
  --poll D            deploy: how often to check the stack (default 5s)
  --wait D            deploy: how long to wait for CREATE_COMPLETE (default 1h)
  --json              deploy: print the stack (id, status, times, outputs) as one JSON
                      document, also when it failed

See tosca/README.md.
`

// toscaCmd is one parsed "ecrae tosca" command line.
type toscaCmd struct {
	sub           string
	file          string
	cf            clientFlags
	noService     bool
	kbFile        string
	inputs        map[string]string
	imageMap      string
	scriptTimeout time.Duration
	stack         string
	osCloud       string
	poll          time.Duration
	wait          time.Duration
	json          bool
	allowOutside  bool
}

func runTosca(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, toscaUsage)
		return fmt.Errorf("%w: tosca needs a subcommand: resolve, hot or deploy", errUsage)
	}
	c := &toscaCmd{sub: args[0], inputs: map[string]string{}}
	switch c.sub {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, toscaUsage)
		return nil
	case "resolve", "hot", "deploy":
	default:
		fmt.Fprint(stderr, toscaUsage)
		return fmt.Errorf("%w: unknown tosca subcommand %s (resolve, hot or deploy)", errUsage, quote.Value(c.sub))
	}
	fs := newFlagSet("tosca "+c.sub, stderr)
	fs.Usage = func() { fmt.Fprint(stderr, toscaUsage) }
	c.cf.registerConn(fs)
	fs.BoolVar(&c.allowOutside, "allow-outside", false, "let imports and implementation scripts come from outside the template's folder")
	fs.BoolVar(&c.noService, "no-service", false, "resolve in-process from a knowledge base file")
	fs.StringVar(&c.kbFile, "kb", "", "with --no-service: the knowledge base file")
	fs.Func("input", "a template input, KEY=VALUE (repeatable)", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %s", quote.Value(s))
		}
		if _, dup := c.inputs[k]; dup {
			return fmt.Errorf("input %s given twice", quote.Value(k))
		}
		c.inputs[k] = v
		return nil
	})
	if c.sub != "resolve" {
		fs.StringVar(&c.imageMap, "image-map", "", "images by os capability (YAML)")
		fs.DurationVar(&c.scriptTimeout, "script-timeout", 30*time.Minute, "how long each server's scripts may run")
	}
	if c.sub == "deploy" {
		fs.StringVar(&c.stack, "stack", "", "the stack's name")
		fs.StringVar(&c.osCloud, "os-cloud", "", "the clouds.yaml entry")
		fs.DurationVar(&c.poll, "poll", 5*time.Second, "how often to check the stack")
		fs.DurationVar(&c.wait, "wait", time.Hour, "how long to wait for CREATE_COMPLETE")
		fs.BoolVar(&c.json, "json", false, "print the stack (id, status, times, outputs) as one JSON document, also when it failed")
	}
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: tosca %s takes one template file (or - for stdin)", errUsage, c.sub)
	}
	c.file = pos[0]
	switch {
	case c.kbFile != "" && !c.noService:
		return fmt.Errorf("%w: --kb needs --no-service (the service reads its own knowledge base)", errUsage)
	case c.sub == "deploy" && c.stack == "":
		return fmt.Errorf("%w: tosca deploy needs --stack NAME", errUsage)
	case c.sub == "deploy" && (c.poll <= 0 || c.wait <= 0):
		return fmt.Errorf("%w: --poll and --wait must be positive", errUsage)
	}
	return c.run(ctx, stdin, stdout, stderr)
}

func (c *toscaCmd) run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	name, opts := c.file, tosca.Options{Inputs: c.inputs, AllowOutside: c.allowOutside}
	var t *tosca.Template
	var err error
	if c.file == "-" {
		data, rerr := io.ReadAll(stdin)
		if rerr != nil {
			return fmt.Errorf("read stdin: %w", rerr)
		}
		// Relative imports and scripts are then relative to the
		// working directory.
		name = "stdin"
		t, err = tosca.Parse(name, data, opts)
	} else {
		t, err = tosca.Load(name, opts)
	}
	if err != nil {
		return err
	}
	if c.sub == "resolve" {
		if err := checkInputs(t, nil, c.inputs); err != nil {
			return err
		}
	}
	p, closeP, err := c.placer(ctx)
	if err != nil {
		return err
	}
	defer closeP()
	res, err := tosca.Resolve(ctx, t, p)
	if err != nil {
		return err
	}
	if c.sub == "resolve" {
		out, err := res.YAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	}
	kb, err := p.KnowledgeBase(ctx)
	if err != nil {
		return err
	}
	ho := tosca.HOTOptions{KB: kb, ScriptTimeout: c.scriptTimeout}
	if c.imageMap != "" {
		data, err := os.ReadFile(c.imageMap)
		if err != nil {
			return fmt.Errorf("image map: %w", err)
		}
		if ho.Images, err = tosca.ParseImageMap(c.imageMap, data); err != nil {
			return err
		}
	}
	h, err := tosca.HOT(res.Template, ho)
	if err != nil {
		return err
	}
	if err := checkInputs(t, h.Parameters, c.inputs); err != nil {
		return err
	}
	if c.sub == "hot" {
		_, err = stdout.Write(h.YAML)
		return err
	}
	params, err := stackParameters(h.Parameters, c.inputs)
	if err != nil {
		return err
	}
	client, err := orchestrationClient(ctx, c.osCloud)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	return deployStack(ctx, client, stackSpec{name: c.stack, template: h.YAML, params: params, poll: c.poll,
		timeoutMins: int((c.wait + time.Minute - 1) / time.Minute), json: c.json}, stdout, stderr)
}

// checkInputs rejects --input keys that are neither template inputs nor
// (for hot and deploy) parameters ECRAE adds to the Heat template.
func checkInputs(t *tosca.Template, params []tosca.HOTParameter, given map[string]string) error {
	known := map[string]bool{}
	for _, in := range t.Inputs {
		known[in.Name] = true
	}
	for _, p := range params {
		known[p.Name] = true
	}
	var names []string
	for k := range given {
		if !known[k] {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	valid := slices.Sorted(maps.Keys(known))
	if len(valid) == 0 {
		return fmt.Errorf("%w: --input %s: %s takes no inputs", errUsage, strings.Join(names, ", "), t.File)
	}
	return fmt.Errorf("%w: --input %s: no such input (%s has: %s)", errUsage, strings.Join(names, ", "), t.File, strings.Join(valid, ", "))
}

// stackParameters are the values sent to Heat: the --input ones; a
// parameter without a default must have one.
func stackParameters(ps []tosca.HOTParameter, given map[string]string) (map[string]any, error) {
	out := map[string]any{}
	var missing []string
	for _, p := range ps {
		v, ok := given[p.Name]
		switch {
		case ok:
			out[p.Name] = v
		case !p.HasDefault:
			m := p.Name
			if p.From != "" {
				m += " (input at " + p.From + ")"
			}
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: no value for %s: pass --input NAME=VALUE", errUsage, strings.Join(missing, ", "))
	}
	return out, nil
}

// placer returns the service's placer, or the in-process one.
func (c *toscaCmd) placer(ctx context.Context) (tosca.Placer, func(), error) {
	if c.noService {
		p, err := newLocalPlacer(ctx, c.kbFile)
		if err != nil {
			return nil, nil, err
		}
		return p, func() { _ = p.Close() }, nil
	}
	conn, err := c.cf.dial()
	if err != nil {
		return nil, nil, err
	}
	return &grpcPlacer{cf: &c.cf, conn: conn}, func() { _ = conn.Close() }, nil
}

// grpcPlacer places through the live service.
type grpcPlacer struct {
	cf   *clientFlags
	conn *grpc.ClientConn
	kb   *kbstore.KB
}

var _ tosca.Placer = (*grpcPlacer)(nil)

func (p *grpcPlacer) KnowledgeBase(ctx context.Context) (*kbstore.KB, error) {
	if p.kb != nil {
		return p.kb, nil
	}
	ctx, cancel := p.cf.call(ctx)
	defer cancel()
	resp, err := ecraev1.NewKnowledgeBaseServiceClient(p.conn).ExportKnowledgeBase(ctx, &ecraev1.ExportKnowledgeBaseRequest{})
	if err != nil {
		return nil, p.cf.rpcError("read the knowledge base", err)
	}
	kb, err := kbstore.ParseYAML("the service's knowledge base", []byte(resp.GetYaml()))
	if err != nil {
		return nil, err
	}
	p.kb = kb
	return kb, nil
}

func (p *grpcPlacer) Place(ctx context.Context, reqs []tosca.PlacementRequest, maxAlt int) (*tosca.Placement, error) {
	ctx, cancel := p.cf.call(ctx)
	defer cancel()
	resp, err := ecraev1.NewPlacementServiceClient(p.conn).WhatIf(ctx, whatIfRequest(reqs, maxAlt))
	if err != nil {
		return nil, p.cf.rpcError("what-if placement (use --no-service to resolve from a knowledge base file)", err)
	}
	return placementFrom(resp), nil
}

// localPlacer places in-process with the service's own code, on a
// throw-away copy of a knowledge base file: no live state.
type localPlacer struct {
	kb    *kbstore.KB
	store *kbstore.Store
	srv   *server.Server
	dir   string
	// assumed is true when the KB listed no hosts and one idle server per
	// architecture stands in for them.
	assumed bool
}

var _ tosca.Placer = (*localPlacer)(nil)

// newLocalPlacer opens a bbolt KB in a temporary directory seeded from
// kbFile (the built-in KB when ""). A KB without hosts gets one idle host
// per architecture, so that exact tags land on their candidate and hint
// tags on the candidate with the least energy per unit of work, as the
// service would rank them.
func newLocalPlacer(ctx context.Context, kbFile string) (*localPlacer, error) {
	var kb *kbstore.KB
	var err error
	if kbFile == "" {
		kb, err = kbstore.Default()
	} else {
		var data []byte
		if data, err = os.ReadFile(kbFile); err != nil {
			return nil, fmt.Errorf("knowledge base: %w", err)
		}
		kb, err = kbstore.ParseYAML(kbFile, data)
	}
	if err != nil {
		return nil, err
	}
	p := &localPlacer{kb: kb}
	seeded := *kb
	if len(kb.Hosts) == 0 {
		p.assumed = true
		seeded.Hosts = nil
		for _, a := range kb.Architectures {
			seeded.Hosts = append(seeded.Hosts, kbstore.Host{Name: "model." + a.Name, Architecture: a.Name,
				Note: "assumed by ecrae tosca --no-service: the knowledge base lists no hosts"})
		}
	}
	if p.dir, err = os.MkdirTemp("", "ecrae-tosca-"); err != nil {
		return nil, fmt.Errorf("knowledge base: %w", err)
	}
	if p.store, err = kbstore.Open(filepath.Join(p.dir, "kb.db"), kbstore.Options{}); err != nil {
		_ = os.RemoveAll(p.dir)
		return nil, err
	}
	if err := p.store.Import(ctx, &seeded, true); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("knowledge base: %w", err)
	}
	if p.srv, err = server.New(server.Config{}, p.store, nil, nil); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

func (p *localPlacer) Close() error {
	err := p.store.Close()
	return errors.Join(err, os.RemoveAll(p.dir))
}

func (p *localPlacer) KnowledgeBase(context.Context) (*kbstore.KB, error) { return p.kb, nil }

func (p *localPlacer) Place(ctx context.Context, reqs []tosca.PlacementRequest, maxAlt int) (*tosca.Placement, error) {
	resp, err := p.srv.WhatIf(ctx, whatIfRequest(reqs, maxAlt))
	if err != nil {
		return nil, fmt.Errorf("what-if placement: %w", err)
	}
	pl := placementFrom(resp)
	if p.assumed {
		pl.HostSource = "one assumed idle server per architecture (the knowledge base lists no hosts)"
	}
	return pl, nil
}

func whatIfRequest(reqs []tosca.PlacementRequest, maxAlt int) *ecraev1.WhatIfRequest {
	out := &ecraev1.WhatIfRequest{MaxAlternatives: int32(maxAlt)}
	for _, r := range reqs {
		f := r.Flavor
		ir := &ecraev1.InstanceRequest{Name: r.Name, Tag: r.Tag, Flavor: &ecraev1.Flavor{
			Name: f.Name, Vcpus: int32(f.VCPUs), MemoryMb: f.MemoryMB, RootGb: f.RootGB,
			EphemeralGb: f.EphemeralGB, SwapMb: f.SwapMB, ExtraSpecs: f.ExtraSpecs}}
		if r.ISA != "" {
			ir.ImageProperties = map[string]string{"hw_architecture": r.ISA}
		}
		out.Instances = append(out.Instances, ir)
	}
	return out
}

func placementFrom(resp *ecraev1.WhatIfResponse) *tosca.Placement {
	pl := &tosca.Placement{TotalMarginalWatts: resp.GetTotalMarginalWatts(), HostSource: resp.GetHostSource()}
	for _, p := range resp.GetPlacements() {
		r := tosca.PlacementResult{Name: p.GetName(), Host: p.GetHost(), Architecture: p.GetArchitecture(),
			MarginalWatts: p.GetMarginalWatts(), Score: p.GetScore(), Error: p.GetError()}
		for _, a := range p.GetAlternatives() {
			r.Alternatives = append(r.Alternatives, tosca.Alternative{Host: a.GetHost(), Architecture: a.GetArchitecture(),
				MarginalWatts: a.GetMarginalWatts(), Score: a.GetScore()})
		}
		for _, v := range p.GetRejected() {
			r.Rejected = append(r.Rejected, v.GetHost()+": "+v.GetReason())
		}
		pl.Results = append(pl.Results, r)
	}
	return pl
}

// orchestrationClient authenticates with clouds.yaml (--os-cloud or
// $OS_CLOUD), or with the OS_* variables when only those are set.
func orchestrationClient(ctx context.Context, cloud string) (*gophercloud.ServiceClient, error) {
	if cloud == "" && os.Getenv("OS_CLOUD") == "" && os.Getenv("OS_AUTH_URL") != "" {
		ao, err := openstack.AuthOptionsFromEnv()
		if err != nil {
			return nil, fmt.Errorf("OpenStack credentials from OS_* variables: %w", err)
		}
		pc, err := openstack.AuthenticatedClient(ctx, ao)
		if err != nil {
			return nil, fmt.Errorf("authenticate at %s: %w", ao.IdentityEndpoint, err)
		}
		c, err := openstack.NewOrchestrationV1(pc, gophercloud.EndpointOpts{Region: os.Getenv("OS_REGION_NAME")})
		if err != nil {
			return nil, fmt.Errorf("Heat endpoint: %w", err)
		}
		return c, nil
	}
	var opts []clouds.ParseOption
	if cloud != "" {
		opts = append(opts, clouds.WithCloudName(cloud))
	}
	ao, eo, tlsConfig, err := clouds.Parse(opts...)
	if err != nil {
		return nil, fmt.Errorf("OpenStack credentials from clouds.yaml (or set OS_AUTH_URL and the other OS_* variables): %w", err)
	}
	pc, err := config.NewProviderClient(ctx, ao, config.WithTLSConfig(tlsConfig))
	if err != nil {
		return nil, fmt.Errorf("authenticate at %s: %w", ao.IdentityEndpoint, err)
	}
	c, err := openstack.NewOrchestrationV1(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("Heat endpoint: %w", err)
	}
	return c, nil
}

// stackSpec is what deployStack creates.
type stackSpec struct {
	name        string
	template    []byte
	params      map[string]any
	poll        time.Duration
	timeoutMins int
	json        bool
}

// deployStack creates the stack, shows each status change on stderr and,
// once CREATE_COMPLETE, prints the outputs on stdout. A failed stack is an
// error carrying Heat's reason. With --json, stdout is one deployResult
// once the stack exists, also when it failed or the wait ran out.
func deployStack(ctx context.Context, c *gophercloud.ServiceClient, s stackSpec, stdout, stderr io.Writer) error {
	start := time.Now()
	created, err := stacks.Create(ctx, c, stacks.CreateOpts{
		Name:         s.name,
		TemplateOpts: &stacks.Template{TE: stacks.TE{Bin: s.template}},
		Parameters:   s.params,
		Timeout:      s.timeoutMins,
	}).Extract()
	if err != nil {
		return fmt.Errorf("create stack %s: %w", s.name, err)
	}
	fmt.Fprintf(stderr, "stack %s: created (id %s)\n", s.name, created.ID)
	var st heatStack
	// done ends the command: the JSON document (when asked) comes first,
	// whatever the outcome.
	done := func(err error) error {
		if s.json {
			if jerr := printJSON(stdout, st.result(s.name, created.ID, time.Since(start))); jerr != nil && err == nil {
				err = jerr
			}
		} else if err == nil {
			err = printOutputs(stdout, st.Outputs)
		}
		return err
	}
	last := ""
	for {
		// Only the fields used are decoded: Heat versions differ in how
		// they spell the others (tags, timeout_mins: null, "" or a list).
		var got struct {
			Stack heatStack `json:"stack"`
		}
		if err := stacks.Get(ctx, c, s.name, created.ID).ExtractInto(&got); err != nil {
			return done(fmt.Errorf("stack %s: %w", s.name, err))
		}
		st = got.Stack
		if cur := st.Status + ": " + st.StatusReason; cur != last {
			fmt.Fprintf(stderr, "stack %s: %s\n", s.name, cur)
			last = cur
		}
		switch {
		case st.Status == "CREATE_COMPLETE":
			return done(nil)
		case strings.HasSuffix(st.Status, "_FAILED"):
			return done(fmt.Errorf("stack %s: %s: %s", s.name, st.Status, st.StatusReason))
		}
		select {
		case <-ctx.Done():
			return done(fmt.Errorf("stack %s: still %s: %w", s.name, st.Status, ctx.Err()))
		case <-time.After(s.poll):
		}
	}
}

// heatStack is the part of Heat's stack-show answer deploy reads.
type heatStack struct {
	Status       string           `json:"stack_status"`
	StatusReason string           `json:"stack_status_reason"`
	CreationTime string           `json:"creation_time"`
	UpdatedTime  string           `json:"updated_time"`
	Outputs      []map[string]any `json:"outputs"`
}

// deployResult is `tosca deploy --json` (docs/json.md).
type deployResult struct {
	Stack  string `json:"stack"`
	ID     string `json:"id"`
	Status string `json:"status"` // Heat's word, as stderr prints it (CREATE_COMPLETE)
	// StatusReason is Heat's stack_status_reason.
	StatusReason string `json:"status_reason"`
	// CreatedAt, UpdatedAt: Heat's times, RFC 3339; null when Heat has none.
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	// Seconds from the create request to the last status read.
	Seconds float64        `json:"seconds"`
	Outputs map[string]any `json:"outputs"`
}

func (st heatStack) result(name, id string, took time.Duration) deployResult {
	return deployResult{Stack: name, ID: id, Status: st.Status, StatusReason: st.StatusReason,
		CreatedAt: heatTime(st.CreationTime), UpdatedAt: heatTime(st.UpdatedTime),
		Seconds: took.Seconds(), Outputs: outputValues(st.Outputs)}
}

// heatTime reads a Heat timestamp: RFC 3339, or ISO 8601 without a zone
// (older Heat), which is UTC. Empty or unreadable: nil.
func heatTime(s string) *time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t
		}
	}
	return nil
}

// outputValues maps each output's key to its value.
func outputValues(outs []map[string]any) map[string]any {
	vals := map[string]any{}
	for _, o := range outs {
		if k, ok := o["output_key"].(string); ok {
			vals[k] = o["output_value"]
		}
	}
	return vals
}

// printOutputs writes Heat's outputs, in key order, as "key: value" (JSON
// for values that are not strings).
func printOutputs(w io.Writer, outs []map[string]any) error {
	vals := outputValues(outs)
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := vals[k].(string)
		if !ok {
			b, err := json.Marshal(vals[k])
			if err != nil {
				return err
			}
			v = string(b)
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", k, v); err != nil {
			return err
		}
	}
	return nil
}
