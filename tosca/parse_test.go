package tosca

import (
	"errors"
	"strings"
	"testing"
)

// base is a valid template; the error cases below break one thing each.
const base = `tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  inputs:
    port:
      type: integer
      default: 80
  node_templates:
    web:
      type: tosca.nodes.WebServer
      requirements:
        - host: srv
    srv:
      type: ecrae.nodes.Compute
      properties:
        tag: web
      capabilities:
        host:
          properties:
            mem_size: 2 GB
`

type errorCase struct {
	name   string
	src    string
	files  memFiles
	inputs map[string]string
	want   string
}

// errorCases check exact messages: file, line, path and text.
var errorCases = []errorCase{
	{
		name: "unknown node type",
		src:  strings.Replace(base, "type: tosca.nodes.WebServer", "type: tosca.nodes.WebSrv", 1),
		want: "app.yaml:9: node_templates.web.type: unknown node type 'tosca.nodes.WebSrv' (ECRAE knows the normative node types tosca.nodes.Root, tosca.nodes.Compute, tosca.nodes.BlockStorage, tosca.nodes.SoftwareComponent, tosca.nodes.WebServer, tosca.nodes.WebApplication, tosca.nodes.DBMS, tosca.nodes.Database)",
	},
	{
		name: "short type name",
		src:  strings.Replace(base, "type: tosca.nodes.WebServer", "type: WebServer", 1),
		want: "app.yaml:9: node_templates.web.type: unknown node type 'WebServer' (did you mean tosca.nodes.WebServer?)",
	},
	{
		name: "broken reference",
		src:  strings.Replace(base, "- host: srv", "- host: srv1", 1),
		want: "app.yaml:11: node_templates.web.requirements[0].host: no node template named 'srv1'",
	},
	{
		name: "reference to a type",
		src:  strings.Replace(base, "- host: srv", "- host: tosca.nodes.Compute", 1),
		want: "app.yaml:11: node_templates.web.requirements[0].host: 'tosca.nodes.Compute' is a node type; ECRAE needs the name of a node template",
	},
	{
		name: "wrong target type",
		src: base + `    other:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: web
`,
		want: "app.yaml:23: node_templates.other.requirements[0].host: 'web' is a tosca.nodes.WebServer; requirement host needs a tosca.nodes.Compute",
	},
	{
		name: "unknown requirement",
		src:  strings.Replace(base, "- host: srv", "- hots: srv", 1),
		want: "app.yaml:11: node_templates.web.requirements[0].hots: unknown requirement of type tosca.nodes.WebServer (known: dependency, host)",
	},
	{
		name: "missing requirement",
		src:  strings.Replace(base, "      requirements:\n        - host: srv\n", "", 1),
		want: "app.yaml:8: node_templates.web.requirements: missing requirement 'host' (type tosca.nodes.WebServer needs at least 1)",
	},
	{
		name: "dependency cycle",
		src: base + `    a:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: srv
        - dependency: b
    b:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: srv
        - dependency: a
`,
		want: "app.yaml:29: node_templates.b.requirements[1].dependency: dependency cycle: a -> b -> a",
	},
	{
		name: "bad unit",
		src:  strings.Replace(base, "mem_size: 2 GB", "mem_size: 2 GX", 1),
		want: "app.yaml:19: node_templates.srv.capabilities.host.properties.mem_size: bad scalar-unit.size '2 GX': unknown unit 'GX' (use one of B, kB, KiB, MB, MiB, GB, GiB, TB, TiB)",
	},
	{
		name: "no unit",
		src:  strings.Replace(base, "mem_size: 2 GB", "mem_size: 2048", 1),
		want: "app.yaml:19: node_templates.srv.capabilities.host.properties.mem_size: bad scalar-unit.size '2048': no unit (use one of B, kB, KiB, MB, MiB, GB, GiB, TB, TiB)",
	},
	{
		name: "missing tag",
		src:  strings.Replace(base, "        tag: web\n", "        mode: exact\n", 1),
		want: "app.yaml:14: node_templates.srv.properties: missing required property 'tag' of type ecrae.nodes.Compute",
	},
	{
		name: "bad mode",
		src:  strings.Replace(base, "        tag: web\n", "        tag: web\n        mode: strict\n", 1),
		want: "app.yaml:16: node_templates.srv.properties.mode: the string 'strict' is not one of the valid values exact, hint",
	},
	{
		name: "unknown property",
		src:  strings.Replace(base, "        tag: web\n", "        tag: web\n        flavor: m1.small\n", 1),
		want: "app.yaml:16: node_templates.srv.properties.flavor: unknown property of type ecrae.nodes.Compute (known: tag, mode)",
	},
	{
		name: "unknown capability",
		src:  strings.Replace(base, "        host:\n          properties:", "        hots:\n          properties:", 1),
		want: "app.yaml:17: node_templates.srv.capabilities.hots: unknown capability of type ecrae.nodes.Compute (known: feature, host, endpoint, os, scalable, binding)",
	},
	{
		name: "unknown input",
		src: base + `  outputs:
    p:
      value: { get_input: prot }
`,
		want: "app.yaml:22: outputs.p.value.get_input: no input named 'prot' (inputs: port)",
	},
	{
		name: "unknown attribute",
		src: base + `  outputs:
    p:
      value: { get_attribute: [srv, private_adress] }
`,
		want: "app.yaml:22: outputs.p.value.get_attribute[1]: node 'srv' (ecrae.nodes.Compute) has no attribute or capability 'private_adress'",
	},
	{
		name: "unsupported function",
		src: base + `  outputs:
    p:
      value: { token: [a, ":", 0] }
`,
		want: "app.yaml:22: outputs.p.value.token: function token is not supported by ECRAE (use get_input, get_property, get_attribute or concat)",
	},
	{
		// A 1 MiB output name and input name appear in the path and the
		// message, each cut to 100 bytes.
		name: "huge names",
		src: base + `  outputs:
    ? ` + strings.Repeat("o", 1<<20) + `
    : value: { get_input: ` + strings.Repeat("i", 1<<20) + ` }
`,
		want: "app.yaml:22: outputs." + strings.Repeat("o", 100) + "…(1048576 bytes).value.get_input: no input named '" +
			strings.Repeat("i", 100) + "…(1048576 bytes)' (inputs: port)",
	},
	{
		name:   "input value out of range",
		src:    strings.Replace(base, "      default: 80\n", "      default: 80\n      constraints:\n        - in_range: [1, 65535]\n", 1),
		inputs: map[string]string{"port": "70000"},
		want:   "app.yaml:4: inputs.port: value from --input: the integer 70000 is outside the range [1, 65535] (constraint at line 8)",
	},
	{
		name:   "input value of the wrong type",
		src:    base,
		inputs: map[string]string{"port": "eighty"},
		want:   "app.yaml:4: inputs.port: value from --input: must be an integer, got the string 'eighty'",
	},
	{
		name: "unknown top-level key",
		src:  "tosca_definitions_version: tosca_simple_yaml_1_0\nnode_template: {}\n",
		want: "app.yaml:2: node_template: unknown key in a TOSCA file (allowed: tosca_definitions_version, namespace, metadata, template_name, template_author, template_version, description, dsl_definitions, repositories, imports, artifact_types, data_types, capability_types, interface_types, relationship_types, node_types, group_types, policy_types, topology_template)",
	},
	{
		name: "unsupported version",
		src:  strings.Replace(base, "tosca_simple_yaml_1_0", "tosca_simple_yaml_2_0", 1),
		want: "app.yaml:1: tosca_definitions_version: unsupported version 'tosca_simple_yaml_2_0' (ECRAE reads tosca_simple_yaml_1_0, tosca_simple_yaml_1_1, tosca_simple_yaml_1_2, tosca_simple_yaml_1_3)",
	},
	{
		name: "YAML syntax",
		src:  "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates: [\n",
		want: "app.yaml:3: invalid YAML: did not find expected node content",
	},
	{
		name: "import cycle",
		src:  "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - types/a.yaml\n" + base[len("tosca_definitions_version: tosca_simple_yaml_1_0\n"):],
		files: memFiles{
			"types/a.yaml": "tosca_definitions_version: tosca_simple_yaml_1_0\nimports: [b.yaml]\n",
			"types/b.yaml": "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - file: a.yaml\n",
		},
		want: "types/b.yaml:3: imports[0].file: import cycle: types/a.yaml -> types/b.yaml -> types/a.yaml",
	},
	{
		name: "missing import",
		src:  "tosca_definitions_version: tosca_simple_yaml_1_0\nimports:\n  - types/none.yaml\n" + base[len("tosca_definitions_version: tosca_simple_yaml_1_0\n"):],
		want: "app.yaml:3: imports[0]: cannot import 'types/none.yaml': open types/none.yaml: file does not exist",
	},
	{
		name: "derived_from cycle",
		src: base + `node_types:
  x.A:
    derived_from: x.B
  x.B:
    derived_from: x.A
`,
		want: "app.yaml:21: node_types.x.A.derived_from: derived_from cycle: x.A -> x.B -> x.A",
	},
	{
		name: "unknown parent type",
		src: base + `node_types:
  x.A:
    derived_from: tosca.nodes.Computer
`,
		want: "app.yaml:21: node_types.x.A.derived_from: unknown node type 'tosca.nodes.Computer' (did you mean tosca.nodes.Compute?)",
	},
	{
		name: "duplicate key",
		src:  strings.Replace(base, "    srv:\n", "    web:\n      type: tosca.nodes.Compute\n    srv:\n", 1),
		want: "app.yaml:12: node_templates.web: duplicate key (first at line 8)",
	},
	{
		name: "interface operation",
		src:  strings.Replace(base, "        - host: srv\n", "        - host: srv\n      interfaces:\n        Standard:\n          creat: x.sh\n", 1),
		want: "app.yaml:14: node_templates.web.interfaces.Standard.creat: unknown operation of interface Standard (known: create, configure, start, stop, delete)",
	},
}

func TestParseErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseString(t, c.src, c.files, c.inputs)
			if got := errText(err); got != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, c.want)
			}
			var te *Error
			if err != nil && !errors.As(err, &te) {
				t.Errorf("error %T is not a *tosca.Error", err)
			}
		})
	}
}

// TestParseForms checks the TOSCA forms ECRAE reads, each in a template
// that must parse, and what the model makes of it.
func TestParseForms(t *testing.T) {
	cases := []struct {
		name  string
		src   string
		files memFiles
		check func(t *testing.T, tpl *Template)
	}{
		{
			name: "short and long requirements, relationship by type and by template",
			src: `tosca_definitions_version: tosca_simple_yaml_1_3
topology_template:
  relationship_templates:
    uses: {type: tosca.relationships.DependsOn}
  node_templates:
    db: {type: tosca.nodes.DBMS, requirements: [{host: s}]}
    app:
      type: tosca.nodes.SoftwareComponent
      requirements:
        - host: {node: s, relationship: tosca.relationships.HostedOn, capability: tosca.capabilities.Container}
        - dependency: {node: db, relationship: uses}
        - dependency: {node: db, relationship: {type: tosca.relationships.ConnectsTo}}
    s: {type: tosca.nodes.Compute}
`,
			check: func(t *testing.T, tpl *Template) {
				app := tpl.Node("app")
				var got []string
				for _, r := range app.Requirements {
					got = append(got, r.Name+"→"+r.Target.Name+"/"+r.Relationship.name)
				}
				want := "host→s/tosca.relationships.HostedOn dependency→db/tosca.relationships.DependsOn dependency→db/tosca.relationships.ConnectsTo"
				if strings.Join(got, " ") != want {
					t.Errorf("requirements %v, want %s", got, want)
				}
				order, _ := tpl.order()
				var names []string
				for _, n := range order {
					names = append(names, n.Name)
				}
				if strings.Join(names, " ") != "s db app" {
					t.Errorf("order %v", names)
				}
				if app.compute() != tpl.Node("s") {
					t.Errorf("app runs on %v", app.compute())
				}
			},
		},
		{
			name: "imports: path, {file}, {name: {file}}, nested, imported twice",
			src: `tosca_definitions_version: tosca_simple_yaml_1_0
imports:
  - types/a.yaml
  - {file: types/b.yaml}
  - c: {file: types/c.yaml}
topology_template:
  node_templates:
    x: {type: x.C, requirements: [{host: s}]}
    s: {type: tosca.nodes.Compute}
`,
			files: memFiles{
				"types/a.yaml":         "tosca_definitions_version: tosca_simple_yaml_1_0\nimports: [base/root.yaml]\nnode_types:\n  x.A: {derived_from: x.Root}\n",
				"types/base/root.yaml": "tosca_definitions_version: tosca_simple_yaml_1_0\nnode_types:\n  x.Root: {derived_from: tosca.nodes.SoftwareComponent}\n",
				"types/b.yaml":         "tosca_definitions_version: tosca_simple_yaml_1_0\nimports: [base/root.yaml]\nnode_types:\n  x.B: {derived_from: x.A}\n",
				"types/c.yaml":         "tosca_definitions_version: tosca_simple_yaml_1_0\nnode_types:\n  x.C: {derived_from: x.B}\n",
			},
			check: func(t *testing.T, tpl *Template) {
				if !tpl.Node("x").is("tosca.nodes.SoftwareComponent") {
					t.Errorf("x.C does not derive from SoftwareComponent")
				}
			},
		},
		{
			name: "interfaces: by name and by type, type-level implementation, artifacts, shared inputs",
			src: `tosca_definitions_version: tosca_simple_yaml_1_0
node_types:
  x.App:
    derived_from: tosca.nodes.SoftwareComponent
    interfaces:
      Standard:
        create: scripts/type-create.sh
        start: scripts/type-start.sh
topology_template:
  node_templates:
    app:
      type: x.App
      artifacts:
        installer: {file: bin/install.sh, type: tosca.artifacts.Implementation.Bash}
      requirements: [{host: s}]
      interfaces:
        tosca.interfaces.node.lifecycle.Standard:
          inputs: {a: 1}
          create: installer
          configure:
            implementation: {primary: c.sh, dependencies: [c.conf]}
            inputs: {b: two}
    s: {type: tosca.nodes.Compute}
`,
			check: func(t *testing.T, tpl *Template) {
				var got []string
				for _, op := range tpl.Node("app").ops {
					var in []string
					for _, i := range op.Inputs {
						in = append(in, i.name)
					}
					got = append(got, op.Interface+"."+op.Name+"="+op.Impl+strings.Join(op.Deps, "+")+"("+strings.Join(in, ",")+")")
				}
				want := "Standard.create=installer(a) Standard.start=scripts/type-start.sh() Standard.configure=c.shc.conf(a,b)"
				if strings.Join(got, " ") != want {
					t.Errorf("operations %v, want %s", got, want)
				}
			},
		},
		{
			name: "inputs: defaults, constraints, get_input and get_property evaluated",
			src: `tosca_definitions_version: tosca_simple_yaml_1_2
topology_template:
  inputs:
    mem: {type: scalar-unit.size, default: 4 GB, constraints: [{greater_or_equal: 1 GB}]}
    cpus: {type: integer, default: 2, constraints: [{valid_values: [1, 2, 4]}]}
  node_templates:
    s:
      type: tosca.nodes.Compute
      capabilities:
        host: {properties: {mem_size: {get_input: mem}, num_cpus: {get_input: cpus}}}
    t:
      type: tosca.nodes.Compute
      capabilities:
        host: {properties: {mem_size: {get_property: [s, host, mem_size]}}}
`,
			check: func(t *testing.T, tpl *Template) {
				n := tpl.Node("t")
				v, a, _ := n.capProp("host", "mem_size")
				s, err := tpl.evalString(v, a, n)
				if err != nil || s != "4 GB" {
					t.Errorf("t's mem_size = %q, %v", s, err)
				}
			},
		},
		{
			name: "data type derived from a primitive, with its constraints",
			src: `tosca_definitions_version: tosca_simple_yaml_1_0
data_types:
  x.Port: {derived_from: integer, constraints: [{in_range: [1024, 2048]}]}
node_types:
  x.Srv:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      port: {type: x.Port}
      tags: {type: list, entry_schema: {type: string}, required: false}
topology_template:
  node_templates:
    a: {type: x.Srv, properties: {port: 1500, tags: [a, b]}, requirements: [{host: s}]}
    s: {type: tosca.nodes.Compute}
`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := parseString(t, c.src, c.files, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, tpl)
			}
		})
	}
}

// TestConstraintErrors checks property constraints from type definitions.
func TestConstraintErrors(t *testing.T) {
	src := `tosca_definitions_version: tosca_simple_yaml_1_0
data_types:
  x.Port: {derived_from: integer, constraints: [{in_range: [1024, 2048]}]}
node_types:
  x.Srv:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      port: {type: x.Port}
      name: {type: string, constraints: [{pattern: "[a-z]+"}, {max_length: 5}]}
topology_template:
  node_templates:
    a: {type: x.Srv, properties: {port: PORT, name: NAME}, requirements: [{host: s}]}
    s: {type: tosca.nodes.Compute}
`
	for _, c := range []struct{ port, name, want string }{
		{"80", "web", "app.yaml:12: node_templates.a.properties.port: the integer 80 is outside the range [1024, 2048] (constraint at line 3)"},
		{"1500", "Web", "app.yaml:12: node_templates.a.properties.name: the string 'Web' does not match the pattern '[a-z]+' (constraint at line 9)"},
		{"1500", "webserver", "app.yaml:12: node_templates.a.properties.name: the string 'webserver' has length 9, violating max_length 5 (constraint at line 9)"},
		{"'1500'", "web", "app.yaml:12: node_templates.a.properties.port: must be an integer, got the string '1500'"},
		{"1500", "42", "app.yaml:12: node_templates.a.properties.name: must be a string, got the integer 42 (quote it)"},
	} {
		_, err := parseString(t, strings.NewReplacer("PORT", c.port, "NAME", c.name).Replace(src), nil, nil)
		if got := errText(err); got != c.want {
			t.Errorf("port %s name %s:\n got: %s\nwant: %s", c.port, c.name, got, c.want)
		}
	}
}
