package tosca

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/optimizer"
	"gopkg.in/yaml.v3"
)

// Placer is what resolution needs of ECRAE's placement service: its
// knowledge base and a what-if placement of a batch. The ecrae command
// implements it over gRPC and in-process.
type Placer interface {
	// KnowledgeBase returns the KB the placements are made against.
	KnowledgeBase(ctx context.Context) (*kbstore.KB, error)
	// Place places the requests together, in order, each consuming capacity
	// for the next, and commits nothing.
	Place(ctx context.Context, reqs []PlacementRequest, maxAlternatives int) (*Placement, error)
}

// PlacementRequest is one tagged node to place.
type PlacementRequest struct {
	Name   string
	Tag    string
	Flavor kbstore.Flavor
	// ISA restricts the hosts to one instruction set (an image's
	// hw_architecture); "" means any.
	ISA string
}

// Placement answers a batch.
type Placement struct {
	// Results has one entry per request, in order.
	Results            []PlacementResult
	TotalMarginalWatts float64
	// HostSource says where the hosts came from.
	HostSource string
}

// PlacementResult answers one request.
type PlacementResult struct {
	Name string
	// Host is "" when no host could take the node; Error and Rejected say why.
	Host string
	// Architecture is the host's model: a KB architecture, or
	// "default-<isa>" for a host the KB does not know.
	Architecture  string
	MarginalWatts float64
	Score         float64
	Alternatives  []Alternative
	Error         string
	Rejected      []string
}

// Alternative is a runner-up host.
type Alternative struct {
	Host          string
	Architecture  string
	MarginalWatts float64
	Score         float64
}

// Resolved is a template whose tagged nodes were resolved.
type Resolved struct {
	// Template is the resolved template: normative types only.
	Template *Template
	// Nodes explains each tagged node's resolution, in template order.
	Nodes              []NodeResolution
	HostSource         string
	TotalMarginalWatts float64
	root               *yaml.Node
}

// NodeResolution is what resolution chose for one tagged node and why.
type NodeResolution struct {
	Node string
	Tag  string
	// Mode is "exact" or "hint"; ModeSource says whether the template or
	// the knowledge base set it.
	Mode, ModeSource string
	Flavor           kbstore.Flavor
	FlavorReason     string
	Host             string
	Architecture     string
	ISA              string
	MarginalWatts    float64
	Score            float64
	Alternatives     []Alternative
	Notes            []string
}

// maxAlternatives is how many runners-up resolution asks for: enough for
// an exact-mode override to find a host of the pinned architecture; the
// comment shows the first few.
const (
	maxAlternatives   = 10
	shownAlternatives = 3
)

// Resolve places every tagged node of t with one call to p and rewrites
// each as a tosca.nodes.Compute with the chosen configuration. t is not
// modified.
func Resolve(ctx context.Context, t *Template, p Placer) (*Resolved, error) {
	r, err := resolve(ctx, t, p)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// requested is what a tagged node asks of its host: minimums the flavor
// must cover (0 = not asked).
type requested struct {
	cpus     int64
	memBytes float64
	disk     float64
	freqHz   float64
	isa      string
	text     []string
}

// task is one tagged node on its way through resolution.
type task struct {
	node   *Node
	tag    kbstore.Tag
	res    NodeResolution
	req    requested
	pinned *kbstore.Candidate // exact mode: the candidate the node must land on
	// candidateFlavor is true when the flavor came from a candidate.
	candidateFlavor bool
}

func resolve(ctx context.Context, t *Template, p Placer) (*Resolved, error) {
	// Aliases are expanded in the copy: a rewritten node must not change
	// another node that shares its YAML through an anchor.
	root := expandNode(t.main.root, 0)
	out := &Resolved{root: root}
	var tasks []*task
	for _, n := range t.Nodes {
		if n.IsTagged() {
			tasks = append(tasks, &task{node: n})
		}
	}
	if len(tasks) > 0 {
		kb, err := p.KnowledgeBase(ctx)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", t.File, err)
		}
		reqs := make([]PlacementRequest, len(tasks))
		for i, tk := range tasks {
			if err := t.prepare(tk, kb); err != nil {
				return nil, err
			}
			reqs[i] = PlacementRequest{Name: tk.node.Name, Tag: tk.res.Tag, Flavor: tk.res.Flavor, ISA: tk.req.isa}
		}
		pl, err := p.Place(ctx, reqs, maxAlternatives)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: place %d tagged nodes: %w", t.File, len(tasks), err)
		}
		if len(pl.Results) != len(tasks) {
			return nil, fmt.Errorf("resolve %s: the placement answered %d of %d nodes", t.File, len(pl.Results), len(tasks))
		}
		out.HostSource, out.TotalMarginalWatts = pl.HostSource, pl.TotalMarginalWatts
		var unplaced []string
		var first *task
		for i, tk := range tasks {
			if err := tk.accept(pl.Results[i], kb); err != "" {
				unplaced = append(unplaced, err)
				if first == nil {
					first = tk
				}
			}
		}
		if len(unplaced) > 0 {
			return nil, first.node.loc.errorf("cannot place: %s", strings.Join(unplaced, "; "))
		}
		for _, tk := range tasks {
			rewriteNode(root, tk, kb)
			out.Nodes = append(out.Nodes, tk.res)
		}
		what := "1 tagged node placed"
		if len(tasks) > 1 {
			what = fmt.Sprintf("%d tagged nodes placed together", len(tasks))
		}
		addHeadComment(root.Content[0], wrap(fmt.Sprintf("Resolved by ECRAE: %s (hosts: %s); total predicted marginal power %.1f W.",
			what, out.HostSource, out.TotalMarginalWatts), commentWidth))
	}
	dropEcraeImports(root, t.main)
	l, lerr := newLoader(t.File, t.opts)
	if lerr != nil {
		return nil, lerr
	}
	rt, rerr := l.parseRoot(t.File, root, t.opts)
	if rerr != nil {
		rerr.Msg = "the resolved template is invalid: " + rerr.Msg
		return nil, rerr
	}
	out.Template = rt
	return out, nil
}

// prepare reads a tagged node's tag, mode and requested capabilities and
// chooses its flavor.
func (t *Template) prepare(tk *task, kb *kbstore.KB) *Error {
	n := tk.node
	v, a, _ := n.prop("tag")
	tag, err := t.evalString(v, a, n)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(kb.Tags, func(x kbstore.Tag) bool { return x.Name == tag })
	if i < 0 {
		var names []string
		for _, x := range kb.Tags {
			names = append(names, x.Name)
		}
		slices.Sort(names)
		return a.errorf("unknown tag %s (the knowledge base has: %s)", quote(tag), strings.Join(names, ", "))
	}
	tk.tag = kb.Tags[i]
	tk.res = NodeResolution{Node: n.Name, Tag: tag, Mode: kbstore.ModeHint, ModeSource: "the knowledge base"}
	if tk.tag.IsExact() {
		tk.res.Mode = kbstore.ModeExact
	}
	if mv, ma, ok := n.prop("mode"); ok {
		mode, err := t.evalString(mv, ma, n)
		if err != nil {
			return err
		}
		switch {
		case mode != kbstore.ModeExact && mode != kbstore.ModeHint:
			return ma.errorf("must be exact or hint, got %s", quote(mode))
		case mode == kbstore.ModeHint && tk.tag.IsExact():
			return ma.errorf("tag %s is exact in the knowledge base; mode hint cannot loosen it (Nova's filter applies the knowledge base's mode at boot)", quote(tag))
		}
		tk.res.Mode, tk.res.ModeSource = mode, "the template"
	}
	if tk.res.Mode == kbstore.ModeExact {
		if len(tk.tag.Candidates) == 0 {
			return a.errorf("tag %s lists no candidates, so exact mode pins nothing", quote(tag))
		}
		tk.pinned = &tk.tag.Candidates[0]
	}
	if err := t.requestedOf(tk); err != nil {
		return err
	}
	if tk.pinned != nil {
		isa := candidateISA(*tk.pinned, kb)
		switch {
		case tk.req.isa != "" && isa != "" && isa != tk.req.isa:
			return n.loc.errorf("os.architecture %s contradicts tag %s, which pins %s (%s) in exact mode", tk.req.isa, quote(tag), candidateName(*tk.pinned), isa)
		case tk.req.isa == "" && !tk.tag.IsExact():
			// The service would rank the tag's other candidates too;
			// the ISA at least keeps the batch on the pinned one's.
			tk.req.isa = isa
		}
	}
	f, why, err := chooseFlavor(kb, tk)
	if err != nil {
		return err
	}
	tk.res.Flavor, tk.res.FlavorReason = f, why
	return nil
}

// requestedOf reads the node's host and os capabilities.
func (t *Template) requestedOf(tk *task) *Error {
	n := tk.node
	r := &tk.req
	if v, a, ok := n.capProp("host", "num_cpus"); ok {
		x, err := t.eval(v, a, n, 0)
		if err != nil {
			return err
		}
		c, perr := strconv.ParseInt(deref(x).Value, 10, 64)
		if perr != nil || c < 1 {
			return a.errorf("must be a positive integer, got %s", describe(x))
		}
		r.cpus = c
		r.text = append(r.text, "num_cpus "+strconv.FormatInt(c, 10))
	}
	for _, s := range []struct {
		name, typ string
		dst       *float64
	}{{"mem_size", typeSize, &r.memBytes}, {"disk_size", typeSize, &r.disk}, {"cpu_frequency", typeFrequency, &r.freqHz}} {
		v, a, ok := n.capProp("host", s.name)
		if !ok {
			continue
		}
		text, err := t.evalString(v, a, n)
		if err != nil {
			return err
		}
		su, perr := parseScalarUnit(s.typ, text)
		if perr != nil {
			return a.errorf("%v", perr)
		}
		*s.dst = su.base
		r.text = append(r.text, s.name+" "+su.String())
	}
	if v, a, ok := n.capProp("os", "architecture"); ok {
		isa, err := t.evalString(v, a, n)
		if err != nil {
			return err
		}
		r.isa = optimizer.NormalizeISA(isa)
	}
	return nil
}

func candidateName(c kbstore.Candidate) string {
	if c.Architecture != "" {
		return c.Architecture
	}
	return "any " + c.ISA + " host"
}

func candidateISA(c kbstore.Candidate, kb *kbstore.KB) string {
	if c.Architecture == "" {
		return c.ISA
	}
	return archISA(c.Architecture, kb)
}

// archISA is a KB architecture's ISA; for the service's stand-in models
// ("default-<isa>") the ISA in the name.
func archISA(name string, kb *kbstore.KB) string {
	for _, a := range kb.Architectures {
		if a.Name == name {
			return a.ISA
		}
	}
	if isa, ok := strings.CutPrefix(name, "default-"); ok {
		return isa
	}
	return ""
}

func archOf(name string, kb *kbstore.KB) (kbstore.Architecture, bool) {
	for _, a := range kb.Architectures {
		if a.Name == name {
			return a, true
		}
	}
	return kbstore.Architecture{}, false
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

// shortfall says what a flavor lacks for r, "" when it covers it.
func shortfall(f kbstore.Flavor, r requested) string {
	var miss []string
	if r.cpus > int64(f.VCPUs) {
		miss = append(miss, fmt.Sprintf("%d vCPUs < num_cpus %d", f.VCPUs, r.cpus))
	}
	if r.memBytes > float64(f.MemoryMB)*mib {
		miss = append(miss, fmt.Sprintf("%s < mem_size %s", formatMiB(f.MemoryMB), formatBytes(r.memBytes)))
	}
	if r.disk > float64(f.RootGB+f.EphemeralGB)*gib {
		miss = append(miss, fmt.Sprintf("%d GiB disk < disk_size %s", f.RootGB+f.EphemeralGB, formatBytes(r.disk)))
	}
	return strings.Join(miss, ", ")
}

func formatBytes(b float64) string {
	for _, u := range []struct {
		name string
		f    float64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}} {
		if b >= u.f {
			return strconv.FormatFloat(math.Round(b/u.f*100)/100, 'f', -1, 64) + " " + u.name
		}
	}
	return strconv.FormatFloat(b, 'f', -1, 64) + " B"
}

// smaller orders flavors by size: vCPUs, then memory, then disk, then name.
func smaller(a, b kbstore.Flavor) int {
	switch {
	case a.VCPUs != b.VCPUs:
		return a.VCPUs - b.VCPUs
	case a.MemoryMB != b.MemoryMB:
		return int(max(-1, min(1, a.MemoryMB-b.MemoryMB)))
	case a.RootGB+a.EphemeralGB != b.RootGB+b.EphemeralGB:
		return int(max(-1, min(1, a.RootGB+a.EphemeralGB-(b.RootGB+b.EphemeralGB))))
	}
	return strings.Compare(a.Name, b.Name)
}

// chooseFlavor picks the node's flavor: the tag's candidate configuration
// (the first candidate naming a flavor; the pinned one in exact mode), else
// the smallest KB flavor listing the tag, else the smallest KB flavor not
// bound to another tag; each must cover the node's requested capabilities.
func chooseFlavor(kb *kbstore.KB, tk *task) (kbstore.Flavor, string, *Error) {
	byName := map[string]kbstore.Flavor{}
	for _, f := range kb.Flavors {
		byName[f.Name] = f
	}
	var skipped []string
	cands := tk.tag.Candidates
	if tk.pinned != nil {
		cands = cands[:1]
	}
	for _, c := range cands {
		if c.Flavor == "" {
			continue
		}
		f, ok := byName[c.Flavor]
		if !ok {
			skipped = append(skipped, "the candidate flavor "+c.Flavor+" is not in the knowledge base")
			break
		}
		if miss := shortfall(f, tk.req); miss != "" {
			skipped = append(skipped, "the candidate flavor "+f.Name+" is too small ("+miss+")")
			break
		}
		tk.candidateFlavor = true
		return f, "the flavor the tag's candidates name (first: " + candidateName(c) + ")", nil
	}
	covers := func(f kbstore.Flavor) bool { return shortfall(f, tk.req) == "" }
	asked, covering := "", ""
	if len(tk.req.text) > 0 {
		asked = strings.Join(tk.req.text, ", ")
		covering = " that covers " + asked
	}
	var forTag, free []kbstore.Flavor
	for _, f := range kb.Flavors {
		bound := f.ExtraSpecs["ecrae:tag"]
		if slices.Contains(f.Tags, tk.tag.Name) && (bound == "" || bound == tk.tag.Name) {
			forTag = append(forTag, f)
		}
		// A flavor bound to another tag would carry that tag to Nova at
		// boot (the flavor's extra spec wins over the scheduler hint).
		if bound == "" || bound == tk.tag.Name {
			free = append(free, f)
		}
	}
	slices.SortFunc(forTag, smaller)
	slices.SortFunc(free, smaller)
	note := ""
	if len(skipped) > 0 {
		note = "; " + strings.Join(skipped, "; ")
	}
	for _, f := range forTag {
		if covers(f) {
			return f, "the smallest knowledge-base flavor for tag " + tk.tag.Name + covering + note, nil
		}
	}
	if len(forTag) > 0 {
		note += "; no flavor for tag " + tk.tag.Name + " covers " + asked
	}
	for _, f := range free {
		if covers(f) {
			return f, "the smallest knowledge-base flavor" + covering + note, nil
		}
	}
	if asked == "" {
		return kbstore.Flavor{}, "", tk.node.loc.errorf("the knowledge base has no flavor")
	}
	return kbstore.Flavor{}, "", tk.node.loc.errorf("no flavor of the knowledge base covers %s", asked)
}

// accept records the placement of a task; it returns why the node could
// not be placed, or "".
func (tk *task) accept(pr PlacementResult, kb *kbstore.KB) string {
	if pr.Host == "" {
		why := pr.Error
		if len(pr.Rejected) > 0 {
			why += " (" + strings.Join(pr.Rejected, "; ") + ")"
		}
		return fmt.Sprintf("node %s (tag %s, flavor %s): %s", tk.node.Name, tk.res.Tag, tk.res.Flavor.Name, why)
	}
	host, arch, watts, score := pr.Host, pr.Architecture, pr.MarginalWatts, pr.Score
	alts := pr.Alternatives
	if tk.pinned != nil && !tk.tag.IsExact() && !onCandidate(arch, *tk.pinned, kb) {
		// The template pins a hint tag: the service ranked every candidate,
		// so take its best host on the pinned one.
		i := slices.IndexFunc(alts, func(a Alternative) bool { return onCandidate(a.Architecture, *tk.pinned, kb) })
		if i < 0 {
			return fmt.Sprintf("node %s: mode exact pins tag %s to %s, and no host of it can take the node (the best host was %s, %s)",
				tk.node.Name, tk.res.Tag, candidateName(*tk.pinned), host, arch)
		}
		tk.res.Notes = append(tk.res.Notes, fmt.Sprintf("mode exact: the best host, %s (%s, %.1f W), is not of the pinned %s; the best that is was taken",
			host, arch, watts, candidateName(*tk.pinned)))
		rest := append([]Alternative{{Host: host, Architecture: arch, MarginalWatts: watts, Score: score}}, alts[:i]...)
		host, arch, watts, score = alts[i].Host, alts[i].Architecture, alts[i].MarginalWatts, alts[i].Score
		alts = append(rest, alts[i+1:]...)
	}
	tk.res.Host, tk.res.Architecture, tk.res.MarginalWatts, tk.res.Score = host, arch, watts, score
	tk.res.ISA = archISA(arch, kb)
	tk.res.Alternatives = alts
	if tk.candidateFlavor {
		// The flavor was chosen before the placement; say whether the
		// candidate the node landed on names the same one.
		for _, c := range tk.tag.Candidates {
			if onCandidate(arch, c, kb) {
				if c.Flavor == tk.res.Flavor.Name {
					tk.res.FlavorReason = "the tag's candidate configuration on " + candidateName(c)
				} else if c.Flavor != "" {
					tk.res.Notes = append(tk.res.Notes, "candidate "+candidateName(c)+" names flavor "+c.Flavor+"; the flavor was chosen before the placement")
				}
				break
			}
		}
	}
	return ""
}

func onCandidate(arch string, c kbstore.Candidate, kb *kbstore.KB) bool {
	if c.Architecture != "" {
		return arch == c.Architecture
	}
	return archISA(arch, kb) == c.ISA
}

// rewriteNode turns a tagged node of the copied tree into a
// tosca.nodes.Compute with the chosen configuration.
func rewriteNode(root *yaml.Node, tk *task, kb *kbstore.KB) {
	nodes := mapGet(mapGet(root, "topology_template"), "node_templates")
	key, n := mapEntry(nodes, tk.node.Name)
	line := n.Line
	res := &tk.res
	mapSet(n, "type", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: typeCompute, Line: line})
	if props := mapGet(n, "properties"); props != nil {
		for i := 0; i+1 < len(props.Content); i += 2 {
			if k := props.Content[i].Value; k != "tag" && k != "mode" {
				// tosca.nodes.Compute has no properties to hold them.
				res.Notes = append(res.Notes, "dropped property "+k+" of "+tk.node.TypeName)
			}
		}
		mapDelete(n, "properties")
	}
	md := mapGet(n, "metadata")
	if md == nil || md.Kind != yaml.MappingNode {
		// Next to the type, where a reader looks first.
		mapDelete(n, "metadata")
		md = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line, Style: n.Style & yaml.FlowStyle}
		i := 0
		for i+1 < len(n.Content) && n.Content[i].Value != "type" {
			i += 2
		}
		i = min(i+2, len(n.Content))
		n.Content = slices.Insert(n.Content, i, strNode("metadata"), md)
	}
	mapSet(md, "ecrae_tag", strNode(res.Tag))
	mapSet(md, "ecrae_mode", strNode(res.Mode))
	mapSet(md, "ecrae_flavor", strNode(res.Flavor.Name))
	caps := ensureMap(n, "capabilities", line)
	hp := ensureMap(ensureMap(caps, "host", line), "properties", line)
	mapSet(hp, "num_cpus", intNode(int64(res.Flavor.VCPUs)))
	mapSet(hp, "mem_size", strNode(formatMiB(res.Flavor.MemoryMB)))
	if d := res.Flavor.RootGB + res.Flavor.EphemeralGB; d > 0 {
		mapSet(hp, "disk_size", strNode(strconv.FormatInt(d, 10)+" GiB"))
	}
	if a, ok := archOf(res.Architecture, kb); ok && a.CoreMHz > 0 {
		mapSet(hp, "cpu_frequency", strNode(formatMHz(a.CoreMHz)))
		if tk.req.freqHz > a.CoreMHz*1e6 {
			res.Notes = append(res.Notes, fmt.Sprintf("cpu_frequency %s was asked; %s runs at %s", formatHz(tk.req.freqHz), a.Name, formatMHz(a.CoreMHz)))
		}
	}
	if res.ISA != "" {
		op := ensureMap(ensureMap(caps, "os", line), "properties", line)
		mapSet(op, "architecture", strNode(res.ISA))
	}
	addHeadComment(key, wrap(nodeComment(tk), commentWidth))
}

// commentWidth is where ECRAE's comments wrap.
const commentWidth = 96

// wrap breaks each line of text at spaces to at most width characters,
// indenting continuation lines by two spaces.
func wrap(text string, width int) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		cur := ""
		for _, w := range strings.Fields(line) {
			switch {
			case cur == "":
				cur = w
			case len(cur)+1+len(w) > width:
				out = append(out, cur)
				cur = "  " + w
			default:
				cur += " " + w
			}
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

func formatHz(hz float64) string {
	return strconv.FormatFloat(math.Round(hz/1e6)/1000, 'f', -1, 64) + " GHz"
}

func nodeComment(tk *task) string {
	r := &tk.res
	var b strings.Builder
	fmt.Fprintf(&b, "ECRAE resolved this node from %s, tag %s (%s mode, from %s).\n", tk.node.TypeName, r.Tag, r.Mode, r.ModeSource)
	fmt.Fprintf(&b, "Flavor %s (%d vCPUs, %s RAM, %d GiB disk): %s.\n", r.Flavor.Name, r.Flavor.VCPUs, formatMiB(r.Flavor.MemoryMB),
		r.Flavor.RootGB+r.Flavor.EphemeralGB, r.FlavorReason)
	isa := r.ISA
	if isa == "" {
		isa = "ISA unknown"
	}
	fmt.Fprintf(&b, "Predicted marginal power %.1f W on %s (%s, %s), score %.1f.\n", r.MarginalWatts, r.Host, r.Architecture, isa, r.Score)
	if len(r.Alternatives) == 0 {
		b.WriteString("Alternatives considered: none; no other host could take it.")
	} else {
		var alts []string
		for _, a := range r.Alternatives[:min(len(r.Alternatives), shownAlternatives)] {
			alts = append(alts, fmt.Sprintf("%s (%s, %.1f W, score %.1f)", a.Host, a.Architecture, a.MarginalWatts, a.Score))
		}
		more := ""
		if n := len(r.Alternatives) - shownAlternatives; n > 0 {
			more = fmt.Sprintf(" and %d more", n)
		}
		b.WriteString("Alternatives considered: " + strings.Join(alts, "; ") + more + ".")
	}
	for _, n := range r.Notes {
		b.WriteString("\nNote: " + n + ".")
	}
	return b.String()
}

// addHeadComment puts text above a key, before any comment already there.
func addHeadComment(key *yaml.Node, text string) {
	if key.HeadComment != "" {
		text += "\n\n" + key.HeadComment
	}
	key.HeadComment = text
}

// mapEntry returns the key and value nodes of key in mapping n.
func mapEntry(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], deref(n.Content[i+1])
		}
	}
	return nil, nil
}

// ensureMap returns the mapping under key in n, creating (or replacing a
// null with) an empty one.
func ensureMap(n *yaml.Node, key string, line int) *yaml.Node {
	if v := mapGet(n, key); v != nil && v.Kind == yaml.MappingNode {
		// An aliased mapping may be shared: copy before changing it.
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.AliasNode {
				c := copyNode(v, map[*yaml.Node]*yaml.Node{})
				c.Anchor = ""
				n.Content[i+1] = c
				return c
			}
		}
		return v
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: line, Style: n.Style & yaml.FlowStyle}
	mapSet(n, key, m)
	return m
}

// copyNode deep-copies a YAML tree, keeping aliases pointing at the copies
// of their anchors.
func copyNode(n *yaml.Node, seen map[*yaml.Node]*yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	if c, ok := seen[n]; ok {
		return c
	}
	c := *n
	seen[n] = &c
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = copyNode(x, seen)
	}
	c.Alias = copyNode(n.Alias, seen)
	return &c
}

// expandNode deep-copies a YAML tree with every alias replaced by a copy of
// its anchor's content (parseYAML bounds the expanded size).
func expandNode(n *yaml.Node, depth int) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil && depth < 100 {
		c := expandNode(n.Alias, depth+1)
		c.HeadComment, c.LineComment, c.FootComment = n.HeadComment, n.LineComment, n.FootComment
		return c
	}
	c := *n
	c.Anchor = ""
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = expandNode(x, depth)
	}
	return &c
}

// dropEcraeImports removes the imports of the main file that only restate
// ECRAE's built-in types: the resolved template does not use them.
func dropEcraeImports(root *yaml.Node, main *sourceFile) {
	ims := mapGet(root, "imports")
	if ims == nil || ims.Kind != yaml.SequenceNode || len(ims.Content) != len(main.imports) {
		return
	}
	var keep []*yaml.Node
	for i, f := range main.imports {
		if !f.ecraeOnly() {
			keep = append(keep, ims.Content[i])
		}
	}
	if len(keep) == 0 {
		mapDelete(root, "imports")
		return
	}
	ims.Content = keep
}

// YAML renders the resolved template, comments included.
func (r *Resolved) YAML() ([]byte, error) {
	return encodeYAML(r.root)
}
