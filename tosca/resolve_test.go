package tosca

import (
	"context"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// tagged is a template with one tagged node srv hosting a component; the
// test cases replace PROPS and CAPS.
const tagged = `tosca_definitions_version: tosca_simple_yaml_1_2
topology_template:
  inputs:
    the_tag:
      type: string
      default: web
  node_templates:
    app:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: srv
    srv:
      type: ecrae.nodes.Compute
      properties: PROPS
      capabilities: CAPS
`

func taggedWith(props, caps string) string {
	return strings.NewReplacer("PROPS", props, "CAPS", caps).Replace(tagged)
}

// resolvedNode reads a node of the resolved template back from its YAML.
func resolvedNode(t *testing.T, r *Resolved, name string) map[string]any {
	t.Helper()
	out, err := r.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Topology struct {
			Nodes map[string]map[string]any `yaml:"node_templates"`
		} `yaml:"topology_template"`
	}
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("resolved YAML: %v\n%s", err, out)
	}
	return doc.Topology.Nodes[name]
}

func TestResolve(t *testing.T) {
	arm := PlacementResult{Host: "h-arm", Architecture: "arm", MarginalWatts: 12.5, Score: 150,
		Alternatives: []Alternative{{Host: "h-x86", Architecture: "x86", MarginalWatts: 30, Score: 40}}}
	x86 := PlacementResult{Host: "h-x86", Architecture: "x86", MarginalWatts: 30, Score: 150,
		Alternatives: []Alternative{{Host: "h-arm", Architecture: "arm", MarginalWatts: 12.5, Score: 100}}}
	cases := []struct {
		name   string
		props  string
		caps   string
		inputs map[string]string
		answer PlacementResult
		// wantReq is the request sent: flavor and ISA.
		wantFlavor, wantISA string
		wantHost            map[string]any // capabilities.host.properties
		wantArch            string
		wantMeta            map[string]any
		wantComment         []string
	}{
		{
			// webby lists tag web and covers 2 vCPUs and 2 GB (2 GB = 1907 MiB ≤ 2048 MiB).
			name: "hint tag: the smallest flavor listing the tag", props: "{tag: web}",
			caps:   "{host: {properties: {num_cpus: 2, mem_size: 2 GB}}}",
			answer: arm, wantFlavor: "webby",
			wantHost: map[string]any{"num_cpus": 2, "mem_size": "2 GiB", "disk_size": "20 GiB", "cpu_frequency": "3 GHz"},
			wantArch: "aarch64",
			wantMeta: map[string]any{"ecrae_tag": "web", "ecrae_mode": "hint", "ecrae_flavor": "webby"},
			wantComment: []string{"tag web (hint mode, from the knowledge base)",
				"the smallest knowledge-base flavor for tag web that covers num_cpus 2, mem_size 2 GB",
				"Predicted marginal power 12.5 W on h-arm (arm, aarch64), score 150.0",
				"Alternatives considered: h-x86 (x86, 30.0 W, score 40.0)"},
		},
		{
			// webby has 2048 MiB < 4 GB: medium (4096 MiB) is the smallest that covers.
			name: "too small for the tag's flavor: the smallest covering", props: "{tag: web}",
			caps:   "{host: {properties: {mem_size: 4 GB}}}",
			answer: arm, wantFlavor: "medium",
			wantHost:    map[string]any{"num_cpus": 2, "mem_size": "4 GiB", "disk_size": "20 GiB", "cpu_frequency": "3 GHz"},
			wantArch:    "aarch64",
			wantMeta:    map[string]any{"ecrae_tag": "web", "ecrae_mode": "hint", "ecrae_flavor": "medium"},
			wantComment: []string{"the smallest knowledge-base flavor that covers mem_size 4 GB; no flavor for tag web covers mem_size 4 GB"},
		},
		{
			name: "the tag's candidate flavor", props: "{tag: db}", caps: "{}",
			answer: x86, wantFlavor: "big",
			wantHost:    map[string]any{"num_cpus": 8, "mem_size": "32 GiB", "disk_size": "100 GiB", "cpu_frequency": "2.5 GHz"},
			wantArch:    "x86_64",
			wantMeta:    map[string]any{"ecrae_tag": "db", "ecrae_mode": "hint", "ecrae_flavor": "big"},
			wantComment: []string{"Flavor big (8 vCPUs, 32 GiB RAM, 100 GiB disk): the tag's candidate configuration on x86"},
		},
		{
			name: "exact tag of the knowledge base", props: "{tag: pinned}", caps: "{os: {properties: {distribution: debian}}}",
			answer: arm, wantFlavor: "small",
			wantHost: map[string]any{"num_cpus": 1, "mem_size": "1 GiB", "disk_size": "10 GiB", "cpu_frequency": "3 GHz"},
			wantArch: "aarch64",
			wantMeta: map[string]any{"ecrae_tag": "pinned", "ecrae_mode": "exact", "ecrae_flavor": "small"},
		},
		{
			// The service ranked x86 first; the template pins web's first
			// candidate (arm), so the best arm alternative is taken.
			name: "the template pins a hint tag", props: "{tag: web, mode: exact}", caps: "{}",
			answer: x86, wantFlavor: "webby", wantISA: "aarch64",
			wantHost: map[string]any{"num_cpus": 2, "mem_size": "2 GiB", "disk_size": "20 GiB", "cpu_frequency": "3 GHz"},
			wantArch: "aarch64",
			wantMeta: map[string]any{"ecrae_tag": "web", "ecrae_mode": "exact", "ecrae_flavor": "webby"},
			wantComment: []string{"tag web (exact mode, from the template)",
				"Predicted marginal power 12.5 W on h-arm (arm, aarch64), score 100.0",
				"Alternatives considered: h-x86 (x86, 30.0 W, score 150.0)",
				"Note: mode exact: the best host, h-x86 (x86, 30.0 W), is not of the pinned arm; the best that is was taken."},
		},
		{
			name: "tag from an input", props: "{tag: {get_input: the_tag}}", caps: "{}",
			inputs: map[string]string{"the_tag": "db"},
			answer: x86, wantFlavor: "big",
			wantHost: map[string]any{"num_cpus": 8, "mem_size": "32 GiB", "disk_size": "100 GiB", "cpu_frequency": "2.5 GHz"},
			wantArch: "x86_64",
			wantMeta: map[string]any{"ecrae_tag": "db", "ecrae_mode": "hint", "ecrae_flavor": "big"},
		},
		{
			name: "os.architecture restricts the ISA", props: "{tag: web}", caps: "{os: {properties: {architecture: arm64}}}",
			answer: arm, wantFlavor: "webby", wantISA: "aarch64",
			wantHost: map[string]any{"num_cpus": 2, "mem_size": "2 GiB", "disk_size": "20 GiB", "cpu_frequency": "3 GHz"},
			wantArch: "aarch64",
			wantMeta: map[string]any{"ecrae_tag": "web", "ecrae_mode": "hint", "ecrae_flavor": "webby"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := parseString(t, taggedWith(c.props, c.caps), nil, c.inputs)
			if err != nil {
				t.Fatal(err)
			}
			p := &fakePlacer{kb: testKB(t), answers: map[string]PlacementResult{"srv": c.answer}}
			r, err := Resolve(context.Background(), tpl, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.got) != 1 || len(p.got[0]) != 1 {
				t.Fatalf("placer calls: %+v", p.got)
			}
			if req := p.got[0][0]; req.Flavor.Name != c.wantFlavor || req.ISA != c.wantISA || req.Name != "srv" {
				t.Errorf("request: flavor %s ISA %q name %s, want flavor %s ISA %q", req.Flavor.Name, req.ISA, req.Name, c.wantFlavor, c.wantISA)
			}
			n := resolvedNode(t, r, "srv")
			if n["type"] != "tosca.nodes.Compute" {
				t.Errorf("type %v", n["type"])
			}
			if _, ok := n["properties"]; ok {
				t.Errorf("properties kept: %v", n["properties"])
			}
			caps := n["capabilities"].(map[string]any)
			if got := caps["host"].(map[string]any)["properties"]; !equalYAML(got, c.wantHost) {
				t.Errorf("host properties %v, want %v", got, c.wantHost)
			}
			if got := caps["os"].(map[string]any)["properties"].(map[string]any)["architecture"]; got != c.wantArch {
				t.Errorf("os.architecture %v, want %s", got, c.wantArch)
			}
			if got := n["metadata"]; !equalYAML(got, c.wantMeta) {
				t.Errorf("metadata %v, want %v", got, c.wantMeta)
			}
			out, _ := r.YAML()
			flat := strings.Join(strings.Fields(strings.ReplaceAll(string(out), "#", "")), " ")
			for _, w := range c.wantComment {
				if !strings.Contains(flat, w) {
					t.Errorf("comment lacks %q:\n%s", w, out)
				}
			}
			if r.Template.Node("srv").IsTagged() || !r.Template.Node("srv").IsCompute() {
				t.Errorf("the resolved template's srv is %s", r.Template.Node("srv").TypeName)
			}
		})
	}
}

func equalYAML(a any, b map[string]any) bool {
	m, ok := a.(map[string]any)
	if !ok || len(m) != len(b) {
		return false
	}
	for k, v := range b {
		if m[k] != v {
			return false
		}
	}
	return true
}

func TestResolveErrors(t *testing.T) {
	unplaced := PlacementResult{Error: "no host can take this instance", Rejected: []string{"h-x86: needs 8 vCPUs, 2 free of 20×1"}}
	onX86 := PlacementResult{Host: "h-x86", Architecture: "x86", MarginalWatts: 30}
	cases := []struct {
		name, props, caps string
		answer            PlacementResult
		want              string
	}{
		{"unknown tag", "{tag: web-fronted}", "{}", onX86,
			"app.yaml:14: node_templates.srv.properties.tag: unknown tag 'web-fronted' (the knowledge base has: db, pinned, web)"},
		{"loosening an exact tag", "{tag: pinned, mode: hint}", "{}", onX86,
			"app.yaml:14: node_templates.srv.properties.mode: tag 'pinned' is exact in the knowledge base; mode hint cannot loosen it (Nova's filter applies the knowledge base's mode at boot)"},
		{"pinned but no host of it", "{tag: web, mode: exact}", "{}", onX86,
			"app.yaml:12: node_templates.srv: cannot place: node srv: mode exact pins tag web to arm, and no host of it can take the node (the best host was h-x86, x86)"},
		{"architecture against the pin", "{tag: pinned}", "{os: {properties: {architecture: x86_64}}}", onX86,
			"app.yaml:12: node_templates.srv: os.architecture x86_64 contradicts tag 'pinned', which pins arm (aarch64) in exact mode"},
		{"no flavor covers", "{tag: web}", "{host: {properties: {num_cpus: 64}}}", onX86,
			"app.yaml:12: node_templates.srv: no flavor of the knowledge base covers num_cpus 64"},
		{"unplaced", "{tag: db}", "{}", unplaced,
			"app.yaml:12: node_templates.srv: cannot place: node srv (tag db, flavor big): no host can take this instance (h-x86: needs 8 vCPUs, 2 free of 20×1)"},
		{"input without a value", "{tag: web}", "{host: {properties: {mem_size: {get_input: mem}}}}", onX86,
			""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := taggedWith(c.props, c.caps)
			if c.want == "" {
				src = strings.Replace(src, "  inputs:\n", "  inputs:\n    mem:\n      type: scalar-unit.size\n", 1)
				c.want = "app.yaml:17: node_templates.srv.capabilities.host.properties.mem_size.get_input: input 'mem' has no value and no default (pass --input mem=VALUE)"
			}
			tpl, err := parseString(t, src, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			p := &fakePlacer{kb: testKB(t), answers: map[string]PlacementResult{"srv": c.answer}}
			_, err = Resolve(context.Background(), tpl, p)
			if got := errText(err); got != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

// TestResolveOneCall checks that all tagged nodes go in one batch, in
// template order, and that a template without tags asks nothing.
func TestResolveOneCall(t *testing.T) {
	src := `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    a: {type: ecrae.nodes.Compute, properties: {tag: web}}
    plain:
      type: tosca.nodes.Compute
      capabilities:
        host: {properties: {num_cpus: 1, mem_size: 512 MiB}}
    b: {type: ecrae.nodes.Compute, properties: {tag: db}}
`
	tpl := mustParse(t, src, nil)
	on := PlacementResult{Host: "h", Architecture: "x86", MarginalWatts: 1}
	p := &fakePlacer{kb: testKB(t), answers: map[string]PlacementResult{"a": on, "b": on}}
	r, err := Resolve(context.Background(), tpl, p)
	if err != nil {
		t.Fatal(err)
	}
	if p.calls != 1 || len(p.got[0]) != 2 || p.got[0][0].Name != "a" || p.got[0][1].Name != "b" {
		t.Fatalf("placer got %+v in %d calls, want [a b] in 1", p.got, p.calls)
	}
	if got := resolvedNode(t, r, "plain"); !equalYAML(got["capabilities"].(map[string]any)["host"].(map[string]any)["properties"], map[string]any{"num_cpus": 1, "mem_size": "512 MiB"}) {
		t.Errorf("the plain compute changed: %v", got)
	}

	plain := mustParse(t, `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    s: {type: tosca.nodes.Compute}
`, nil)
	p = &fakePlacer{}
	if _, err := Resolve(context.Background(), plain, p); err != nil || p.calls != 0 {
		t.Fatalf("untagged: err %v, %d calls", err, p.calls)
	}
}

// TestResolveDropsEcraeImport: the resolved template no longer needs
// ECRAE's types, and other imports stay.
func TestResolveDropsEcraeImport(t *testing.T) {
	files := memFiles{
		"ecrae-types.yaml": string(EcraeTypesYAML()),
		"own.yaml":         "tosca_definitions_version: tosca_simple_yaml_1_0\nnode_types:\n  x.App: {derived_from: tosca.nodes.SoftwareComponent}\n",
	}
	tpl, err := parseString(t, `tosca_definitions_version: tosca_simple_yaml_1_0
imports: [ecrae-types.yaml, own.yaml]
topology_template:
  node_templates:
    app: {type: x.App, requirements: [{host: s}]}
    s: {type: ecrae.nodes.Compute, properties: {tag: web}}
`, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePlacer{kb: testKB(t), answers: map[string]PlacementResult{"s": {Host: "h", Architecture: "x86"}}}
	r, err := Resolve(context.Background(), tpl, p)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := r.YAML()
	if !strings.Contains(string(out), "imports: [own.yaml]") {
		t.Errorf("imports:\n%s", out)
	}
}

// TestResolveAliases: two tagged nodes sharing their YAML through an
// anchor are rewritten each with its own placement.
func TestResolveAliases(t *testing.T) {
	tpl := mustParse(t, `tosca_definitions_version: tosca_simple_yaml_1_0
dsl_definitions:
  tagged: &tagged
    type: ecrae.nodes.Compute
    properties: {tag: web}
topology_template:
  node_templates:
    a: *tagged
    b: *tagged
`, nil)
	p := &fakePlacer{kb: testKB(t), answers: map[string]PlacementResult{
		"a": {Host: "h-x86", Architecture: "x86"}, "b": {Host: "h-arm", Architecture: "arm"}}}
	r, err := Resolve(context.Background(), tpl, p)
	if err != nil {
		t.Fatal(err)
	}
	for name, isa := range map[string]string{"a": "x86_64", "b": "aarch64"} {
		got := resolvedNode(t, r, name)["capabilities"].(map[string]any)["os"].(map[string]any)["properties"].(map[string]any)["architecture"]
		if got != isa {
			t.Errorf("%s: os.architecture %v, want %s", name, got, isa)
		}
	}
	out, _ := r.YAML()
	if _, err := Parse("app.yaml", out, Options{}); err != nil {
		t.Errorf("the resolved template does not parse: %v\n%s", err, out)
	}
}
