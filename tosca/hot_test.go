package tosca

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// hotOf generates the HOT of a template that needs no resolution.
func hotOf(t *testing.T, src string, files memFiles, opts HOTOptions) (*HOTTemplate, map[string]any, error) {
	t.Helper()
	tpl, err := parseString(t, src, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := HOT(tpl, opts)
	if err != nil {
		return nil, nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(h.YAML, &doc); err != nil {
		t.Fatalf("HOT is not YAML: %v\n%s", err, h.YAML)
	}
	return h, doc, nil
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

const twoServers = `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    x:
      type: tosca.nodes.Compute
      metadata: {ecrae_flavor: m1.small, ecrae_tag: web}
      capabilities:
        os: {properties: {distribution: debian, version: "12", architecture: x86_64}}
    a:
      type: tosca.nodes.Compute
      capabilities:
        host: {properties: {num_cpus: 2, mem_size: 3 GB}}
        os: {properties: {distribution: debian, version: "12", architecture: arm64}}
`

func TestHOTServers(t *testing.T) {
	images, err := ParseImageMap("images.yaml", []byte(`images:
  - {image: fallback}
  - {distribution: debian, image: debian-any}
  - {distribution: Debian, version: "12", architecture: aarch64, image: debian-12-arm64}
`))
	if err != nil {
		t.Fatal(err)
	}
	h, doc, err := hotOf(t, twoServers, nil, HOTOptions{KB: testKB(t), Images: images})
	if err != nil {
		t.Fatal(err)
	}
	x := dig(doc, "resources", "x", "properties")
	a := dig(doc, "resources", "a", "properties")
	for _, c := range []struct {
		got  any
		want any
		what string
	}{
		{dig(x, "flavor"), "m1.small", "x's flavor (its metadata)"},
		{dig(x, "image"), "debian-any", "x's image (debian matches; the arm entry does not)"},
		{dig(x, "scheduler_hints", "ecrae_tag"), "web", "x's scheduler hint"},
		// medium: 2 vCPUs and 4096 MiB cover num_cpus 2, mem_size 3 GB; webby's 2048 MiB do not.
		{dig(a, "flavor"), "medium", "a's flavor (the smallest covering)"},
		{dig(a, "image"), "debian-12-arm64", "a's image (arm64 folds to aarch64; the most specific entry)"},
		{dig(a, "scheduler_hints"), nil, "a has no tag"},
		{dig(x, "user_data"), nil, "x has no scripts"},
		{dig(doc, "heat_template_version"), "2018-08-31", "version"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if len(h.Parameters) != 1 || h.Parameters[0].Name != "network" || h.Parameters[0].HasDefault {
		t.Errorf("parameters %+v, want the network only", h.Parameters)
	}

	// Without a map: one image parameter per server, described.
	h, doc, err = hotOf(t, twoServers, nil, HOTOptions{KB: testKB(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := dig(doc, "parameters", "a_image", "description"); got != "The Glance image of a: debian 12 arm64." {
		t.Errorf("a_image: %v", got)
	}
	if got := dig(doc, "resources", "a", "properties", "image"); !equalYAML(got, map[string]any{"get_param": "a_image"}) {
		t.Errorf("a's image: %v", got)
	}
	if len(h.Parameters) != 3 {
		t.Errorf("parameters %+v", h.Parameters)
	}

	// An input called image serves every server.
	withInput := strings.Replace(twoServers, "topology_template:\n", "topology_template:\n  inputs:\n    image: {type: string, default: cirros}\n", 1)
	_, doc, err = hotOf(t, withInput, nil, HOTOptions{KB: testKB(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := dig(doc, "resources", "x", "properties", "image"); !equalYAML(got, map[string]any{"get_param": "image"}) {
		t.Errorf("x's image: %v", got)
	}
	if dig(doc, "parameters", "x_image") != nil || dig(doc, "parameters", "image", "default") != "cirros" {
		t.Errorf("parameters: %v", dig(doc, "parameters"))
	}

	_, _, err = hotOf(t, twoServers, nil, HOTOptions{KB: testKB(t), Images: &ImageMap{file: "empty.yaml"}})
	if want := "app.yaml:4: node_templates.x: no image in empty.yaml for os debian 12 x86_64"; errText(err) != want {
		t.Errorf("error %q, want %q", errText(err), want)
	}
}

// scripted hosts two components on one server and a database on another;
// web needs db, so its server waits for db's.
const scripted = `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    pw: {type: string, constraints: [{min_length: 8}]}
    port: {type: integer, default: 5432, constraints: [{in_range: [1, 65535]}, {greater_than: 1000}]}
    mode: {type: string, default: fast, constraints: [{valid_values: [fast, safe]}]}
  node_templates:
    web:
      type: tosca.nodes.WebServer
      requirements: [{host: front}, {dependency: db}]
      interfaces:
        Standard:
          start: {implementation: start.py, inputs: {greeting: "it's", db: {get_attribute: [db, database_endpoint, ip_address]}}}
          create:
            implementation: web.sh
            inputs:
              me: {get_attribute: [HOST, private_address]}
              url: {concat: ["pg://", {get_attribute: [back, private_address]}, ":", {get_input: port}]}
              pw: {get_property: [db, password]}
    db:
      type: tosca.nodes.Database
      properties: {password: {get_input: pw}}
      requirements: [{host: dbms}]
    dbms:
      type: tosca.nodes.DBMS
      requirements: [{host: back}]
      interfaces: {Standard: {create: db.sh}}
    front: {type: tosca.nodes.Compute, metadata: {ecrae_flavor: f1}}
    back: {type: tosca.nodes.Compute, metadata: {ecrae_flavor: f2}}
  outputs:
    url: {value: {concat: ["http://", {get_attribute: [front, public_address]}, "/"]}}
    nets: {value: {get_attribute: [back, networks]}}
    name: {value: {get_property: [db, password]}}
`

func TestHOTScripts(t *testing.T) {
	files := memFiles{"web.sh": "echo web\n", "start.py": "print('hi')", "db.sh": "echo db\nECRAE_EOF\n"}
	_, doc, err := hotOf(t, scripted, files, HOTOptions{ScriptTimeout: 600e9})
	if err != nil {
		t.Fatal(err)
	}
	front := dig(doc, "resources", "front")
	ud := dig(front, "properties", "user_data", "str_replace")
	script, _ := dig(ud, "template").(string)
	want := lines(
		"#!/bin/bash",
		"# ECRAE: the lifecycle operations of the nodes on front, in dependency order.",
		"set -eu",
		"ecrae_step=start",
		"ecrae_notify() {",
		`  @@ECRAE_001@@ --data-binary "{\"status\": \"$1\", \"reason\": \"$2\"}"`,
		"}",
		`trap 'ecrae_notify FAILURE "front: $ecrae_step failed"' ERR`,
		"mkdir -p /var/lib/ecrae/front",
		"cd /var/lib/ecrae/front",
		"",
		"# 1. web: Standard.create (web.sh)",
		"ecrae_step='web create'",
		"cat > '01-web-create.sh' <<'ECRAE_EOF'",
		"echo web",
		"ECRAE_EOF",
		// HOST's (this server's) address is read on it; the other server's through
		// Heat; the port from its parameter; adjacent quotes make one word.
		`me="$(hostname -I | awk '{print $1}')" url='pg://''@@ECRAE_002@@'':''@@ECRAE_003@@' pw='@@ECRAE_004@@' bash 01-web-create.sh`,
		"",
		"# 2. web: Standard.start (start.py)",
		"ecrae_step='web start'",
		"cat > '02-web-start.py' <<'ECRAE_EOF'",
		"print('hi')",
		"ECRAE_EOF",
		`greeting='it'\''s' db='@@ECRAE_005@@' python3 02-web-start.py`,
		"",
		"ecrae_notify SUCCESS 'front: 2 operation(s) done'",
	)
	if script != want {
		t.Errorf("front's user_data:\n%s\nwant:\n%s", script, want)
	}
	params := dig(ud, "params").(map[string]any)
	for k, w := range map[string]map[string]any{
		"@@ECRAE_001@@": {"get_attr": []any{"front_wait_handle", "curl_cli"}},
		"@@ECRAE_002@@": {"get_attr": []any{"back", "networks", map[string]any{"get_param": "network"}, 0}},
		"@@ECRAE_003@@": {"get_param": "port"},
		// A string parameter is escaped by Heat for its single-quoted word:
		// a password with a ' in it must not end the shell word.
		"@@ECRAE_004@@": {"str_replace": map[string]any{"template": map[string]any{"get_param": "pw"}, "params": map[string]any{"'": `'\''`}}},
		"@@ECRAE_005@@": {"get_attr": []any{"back", "networks", map[string]any{"get_param": "network"}, 0}},
	} {
		if got, _ := yaml.Marshal(params[k]); string(got) != mustYAML(w) {
			t.Errorf("param %s = %s, want %s", k, got, mustYAML(w))
		}
	}
	if got := dig(front, "depends_on"); len(got.([]any)) != 1 || got.([]any)[0] != "back_wait" {
		t.Errorf("front depends on %v, want [back_wait]", got)
	}
	back, _ := dig(doc, "resources", "back", "properties", "user_data", "str_replace", "template").(string)
	if !strings.Contains(back, "<<'ECRAE_EOF_1'\necho db\nECRAE_EOF\nECRAE_EOF_1\n") {
		t.Errorf("a script holding the delimiter needs another:\n%s", back)
	}
	if got := dig(doc, "resources", "back_wait", "properties", "timeout"); got != 600 {
		t.Errorf("wait timeout %v", got)
	}
	for k, w := range map[string]string{
		"url":  mustYAML(map[string]any{"list_join": []any{"", []any{"http://", map[string]any{"get_attr": []any{"front", "networks", map[string]any{"get_param": "network"}, 0}}, "/"}}}),
		"nets": mustYAML(map[string]any{"get_attr": []any{"back", "networks"}}),
		"name": mustYAML(map[string]any{"get_param": "pw"}),
	} {
		if got, _ := yaml.Marshal(dig(doc, "outputs", k, "value")); string(got) != w {
			t.Errorf("output %s = %s, want %s", k, got, w)
		}
	}
	for k, w := range map[string]string{
		"pw":   mustYAML(map[string]any{"type": "string", "constraints": []any{map[string]any{"length": map[string]any{"min": 8}}}}),
		"port": mustYAML(map[string]any{"type": "number", "default": 5432, "constraints": []any{map[string]any{"range": map[string]any{"min": 1, "max": 65535}}, map[string]any{"range": map[string]any{"min": 1001}}}}),
		"mode": mustYAML(map[string]any{"type": "string", "default": "fast", "constraints": []any{map[string]any{"allowed_values": []any{"fast", "safe"}}}}),
	} {
		if got, _ := yaml.Marshal(dig(doc, "parameters", k)); string(got) != w {
			t.Errorf("parameter %s = %s, want %s", k, got, w)
		}
	}
}

func mustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestHOTErrors(t *testing.T) {
	files := memFiles{"web.sh": "", "start.py": "", "db.sh": ""}
	cases := []struct {
		name, src string
		files     memFiles
		want      string
	}{
		{"missing script", scripted, memFiles{"web.sh": "", "start.py": ""},
			"app.yaml:27: node_templates.dbms.interfaces.Standard.create: cannot read implementation 'db.sh': open db.sh: file does not exist"},
		{"unresolved tag", "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n    s: {type: ecrae.nodes.Compute, properties: {tag: web}}\n", nil,
			"app.yaml:4: node_templates.s: is an unresolved ecrae.nodes.Compute; resolve the template first"},
		{"no compute", "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n    d: {type: tosca.nodes.Root}\n", nil,
			"app.yaml: node_templates: no compute node: a Heat stack needs at least one tosca.nodes.Compute"},
		{"attribute without a Heat equivalent", strings.Replace(scripted, "{get_attribute: [back, networks]}", "{get_attribute: [back, state]}", 1), files,
			"app.yaml:32: outputs.nets.value.get_attribute: attribute 'state' of 'back' has no Heat equivalent (ECRAE maps private_address, public_address, ip_address, networks, tosca_name and properties)"},
		{"input that is no shell name", strings.Replace(scripted, "greeting:", "greet-ing:", 1), files,
			"app.yaml:13: node_templates.web.interfaces.Standard.start.inputs.greet-ing: an operation input becomes an environment variable; 'greet-ing' is not a valid name"},
		{"no flavor, no KB", strings.Replace(scripted, "metadata: {ecrae_flavor: f2}", "metadata: {}", 1), files,
			"app.yaml:29: node_templates.back: needs a flavor: set metadata ecrae_flavor, or give a knowledge base"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := hotOf(t, c.src, c.files, HOTOptions{})
			if got := errText(err); got != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, c.want)
			}
		})
	}
}

// TestHOTServerCycle: nodes are acyclic, but the servers they run on would
// wait for each other.
func TestHOTServerCycle(t *testing.T) {
	src := `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  node_templates:
    a1: {type: tosca.nodes.SoftwareComponent, requirements: [{host: sa}]}
    a2: {type: tosca.nodes.SoftwareComponent, requirements: [{host: sa}, {dependency: b1}]}
    b1: {type: tosca.nodes.SoftwareComponent, requirements: [{host: sb}]}
    b2: {type: tosca.nodes.SoftwareComponent, requirements: [{host: sb}, {dependency: a1}]}
    sa: {type: tosca.nodes.Compute, metadata: {ecrae_flavor: f}}
    sb: {type: tosca.nodes.Compute, metadata: {ecrae_flavor: f}}
`
	_, _, err := hotOf(t, src, nil, HOTOptions{})
	want := "app.yaml:7: node_templates.b2.requirements[1].dependency: the servers would wait for each other: sa -> sb -> sa"
	if got := errText(err); got != want {
		t.Errorf("error:\n got: %s\nwant: %s", got, want)
	}
}

// TestHOTImageInputs: an input NODE_image gives that server's image, the
// input image the others'.
func TestHOTImageInputs(t *testing.T) {
	src := strings.Replace(twoServers, "topology_template:\n", "topology_template:\n  inputs:\n    image: {type: string}\n    a_image: {type: string, default: arm-image}\n", 1)
	h, doc, err := hotOf(t, src, nil, HOTOptions{KB: testKB(t)})
	if err != nil {
		t.Fatal(err)
	}
	for node, param := range map[string]string{"x": "image", "a": "a_image"} {
		if got := dig(doc, "resources", node, "properties", "image"); !equalYAML(got, map[string]any{"get_param": param}) {
			t.Errorf("%s's image: %v, want get_param %s", node, got, param)
		}
	}
	var names []string
	for _, p := range h.Parameters {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "image a_image network" {
		t.Errorf("parameters %v", names)
	}
}
