package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecrae/ecrae/kbstore"
	"github.com/ecrae/ecrae/server"
	th "github.com/gophercloud/gophercloud/v2/testhelper"
	fakeclient "github.com/gophercloud/gophercloud/v2/testhelper/client"
	"google.golang.org/grpc"
)

var update = flag.Bool("update", false, "rewrite the golden files of the tosca tests")

const (
	goldenDir = "../../tosca/testdata/golden"
	testKB    = "../../tosca/testdata/kb.yaml"
)

// toscaGolden are the templates whose resolution and HOT are golden files:
// the seed's ownCloud, one server, three tiers in a chain, an exact tag.
var toscaGolden = []struct {
	name string
	src  string
	hot  []string // extra flags for hot
	args []string // extra flags for both
}{
	{"owncloud", "../../examples/owncloud/owncloud.yaml", []string{"--image-map", "../../examples/owncloud/images.yaml"}, nil},
	{"single", "../../tosca/testdata/single/app.yaml", nil, nil},
	{"three-tier", "../../tosca/testdata/three-tier/app.yaml", nil, nil},
	// It imports the types file two folders up: outside its folder.
	{"arm", "../../tosca/testdata/arm/app.yaml", []string{"--script-timeout", "10m"}, []string{"--allow-outside"}},
}

// runCLI runs the ecrae command in-process.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, file)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/ecrae -run TestToscaGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./cmd/ecrae -run TestToscaGolden -update rewrites it):\n%s", path, firstDiff(string(want), string(got)))
	}
}

// firstDiff shows the first differing line of two texts.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant: %s\n got: %s", i+1, wl, gl)
		}
	}
	return "(same lines)"
}

// TestToscaGolden resolves each template in-process on the test KB (which
// lists hosts, so placement is deterministic) and converts it to HOT.
func TestToscaGolden(t *testing.T) {
	for _, c := range toscaGolden {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := runCLI(t, append([]string{"tosca", "resolve", c.src, "--no-service", "--kb", testKB}, c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".resolved.yaml", []byte(out))
			out, _, err = runCLI(t, append(append([]string{"tosca", "hot", c.src, "--no-service", "--kb", testKB}, c.hot...), c.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, c.name+".hot.yaml", []byte(out))
		})
	}
}

// TestToscaResolvedAgain: resolving a resolved template changes nothing
// and asks no placement (it has no tags left); its HOT is the same.
func TestToscaResolvedAgain(t *testing.T) {
	dir := t.TempDir()
	resolved, _, err := runCLI(t, "tosca", "resolve", "../../tosca/testdata/single/app.yaml", "--no-service", "--kb", testKB)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"worker.sh"} {
		b, err := os.ReadFile(filepath.Join("../../tosca/testdata/single", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := filepath.Join(dir, "resolved.yaml")
	if err := os.WriteFile(app, []byte(resolved), 0o644); err != nil {
		t.Fatal(err)
	}
	hot, _, err := runCLI(t, "tosca", "hot", app, "--no-service", "--kb", testKB)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(goldenDir, "single.hot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Replace(hot, "from resolved.yaml", "from app.yaml", 1); got != string(want) {
		t.Errorf("HOT of the resolved template differs:\n%s", firstDiff(string(want), got))
	}
}

// TestToscaService resolves through a live gRPC service holding the test
// KB: the same answer as the in-process placer.
func TestToscaService(t *testing.T) {
	ctx := context.Background()
	store, err := kbstore.Open(filepath.Join(t.TempDir(), "kb.db"), kbstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	data, err := os.ReadFile(testKB)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := kbstore.ParseYAML(testKB, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Import(ctx, kb, true); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)

	out, _, err := runCLI(t, "tosca", "resolve", toscaGolden[0].src, "--server", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(goldenDir, "owncloud.resolved.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("the service's resolution differs from the in-process one:\n%s", firstDiff(string(want), out))
	}

	// A service that cannot be reached is one error naming the address.
	_, _, err = runCLI(t, "tosca", "resolve", toscaGolden[0].src, "--server", "127.0.0.1:1", "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "(server 127.0.0.1:1)") {
		t.Errorf("unreachable service: %v", err)
	}
}

func TestToscaCLIErrors(t *testing.T) {
	dir := t.TempDir()
	badTag := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badTag, []byte(`tosca_definitions_version: tosca_simple_yaml_1_2
topology_template:
  node_templates:
    s:
      type: ecrae.nodes.Compute
      properties: {tag: web-fronted}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	own := "../../examples/owncloud/owncloud.yaml"
	cases := []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"tosca"}, "usage: tosca needs a subcommand: resolve, hot or deploy", true},
		{[]string{"tosca", "apply", own}, `usage: unknown tosca subcommand "apply" (resolve, hot or deploy)`, true},
		{[]string{"tosca", "resolve"}, "usage: tosca resolve takes one template file (or - for stdin)", true},
		{[]string{"tosca", "resolve", own, "--kb", testKB}, "usage: --kb needs --no-service (the service reads its own knowledge base)", true},
		{[]string{"tosca", "deploy", own, "--no-service"}, "usage: tosca deploy needs --stack NAME", true},
		{[]string{"tosca", "resolve", own, "--no-service", "--input", "db_pasword=x"}, "usage: --input db_pasword: no such input (../../examples/owncloud/owncloud.yaml has: admin_password, admin_user, db_name, db_password, db_port, db_root_password, db_user)", true},
		{[]string{"tosca", "resolve", own, "--no-service", "--input", "db_port=99999"}, "../../examples/owncloud/owncloud.yaml:39: inputs.db_port: value from --input: the integer 99999 is outside the range [1, 65535] (constraint at line 43)", false},
		{[]string{"tosca", "resolve", badTag, "--no-service"}, badTag + ":6: node_templates.s.properties.tag: unknown tag 'web-fronted' (the knowledge base has: arm-native, batch, cpu-intensive, database, default, io-intensive, memory-intensive, web-frontend)", false},
		{[]string{"tosca", "resolve", filepath.Join(dir, "none.yaml"), "--no-service"}, filepath.Join(dir, "none.yaml") + ": cannot read the template: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory", false},
		{[]string{"tosca", "deploy", own, "--no-service", "--kb", testKB, "--stack", "s", "--input", "db_password=password1"}, "usage: no value for db_root_password (input at ../../examples/owncloud/owncloud.yaml:34), admin_password (input at ../../examples/owncloud/owncloud.yaml:48), network, web_server_image, db_server_image: pass --input NAME=VALUE", true},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, _, err := runCLI(t, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if got := oneLine(err); got != c.want {
				t.Errorf("error:\n got: %s\nwant: %s", got, c.want)
			}
			if errors.Is(err, errUsage) != c.usage {
				t.Errorf("usage error: %v, want %v", errors.Is(err, errUsage), c.usage)
			}
		})
	}
}

// Heat's answers below follow the Orchestration API v1 reference
// (api-ref/source/v1/samples/stack-create-response.json and
// stack-show-response.json in openstack/heat), with this test's ids, names,
// statuses and outputs.
const (
	stackID        = "3095aefc-09fb-4bc7-b1f0-f21a304e864c"
	createResponse = `{
    "stack": {
        "id": "3095aefc-09fb-4bc7-b1f0-f21a304e864c",
        "links": [
            {
                "href": "http://192.168.123.200:8004/v1/eb1c63a4f77141548385f113a28f0f52/stacks/owncloud/3095aefc-09fb-4bc7-b1f0-f21a304e864c",
                "rel": "self"
            }
        ]
    }
}`
	showResponse = `{
    "stack": {
        "capabilities": [],
        "creation_time": "2014-06-03T20:59:46Z",
        "description": "ownCloud",
        "disable_rollback": true,
        "id": "3095aefc-09fb-4bc7-b1f0-f21a304e864c",
        "links": [
            {
                "href": "http://192.168.123.200:8004/v1/eb1c63a4f77141548385f113a28f0f52/stacks/owncloud/3095aefc-09fb-4bc7-b1f0-f21a304e864c",
                "rel": "self"
            }
        ],
        "notification_topics": [],
        "outputs": %s,
        "parameters": {
            "OS::project_id": "3ab5b02f-a01f-4f95-afa1-e254afc4a435",
            "OS::stack_id": "3095aefc-09fb-4bc7-b1f0-f21a304e864c",
            "OS::stack_name": "owncloud"
        },
        "stack_name": "owncloud",
        "stack_owner": "simple_username",
        "stack_status": %q,
        "stack_status_reason": %q,
        "template_description": "ownCloud",
        "stack_user_project_id": "65728b74-cfe7-4f17-9c15-11d4f686e591",
        "timeout_mins": "",
        "updated_time": "",
        "parent": "",
        "tags": ""
    }
}`
	outputsJSON = `[
            {"output_key": "owncloud_url", "output_value": "http://10.0.0.7/owncloud", "description": "ownCloud's address."},
            {"output_key": "database_address", "output_value": "10.0.0.8", "description": "The database host's address on the stack's network."}
        ]`
)

type stackState struct{ status, reason string }

// fakeHeat serves POST /stacks and GET /stacks/owncloud/ID under prefix,
// walking through states on each GET, and records the create request.
type fakeHeat struct {
	t      *testing.T
	states []stackState
	mu     sync.Mutex
	gets   int
	body   map[string]any
	token  string
}

func (h *fakeHeat) register(mux *http.ServeMux, prefix string) {
	mux.HandleFunc(prefix+"/stacks", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(h.t, r, "POST")
		th.TestHeader(h.t, r, "X-Auth-Token", h.token)
		h.mu.Lock()
		defer h.mu.Unlock()
		if err := json.NewDecoder(r.Body).Decode(&h.body); err != nil {
			h.t.Errorf("create body: %v", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, createResponse)
	})
	mux.HandleFunc(prefix+"/stacks/owncloud/"+stackID, func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(h.t, r, "GET")
		h.mu.Lock()
		defer h.mu.Unlock()
		st := h.states[min(h.gets, len(h.states)-1)]
		h.gets++
		outs := "[]"
		if st.status == "CREATE_COMPLETE" {
			outs = outputsJSON
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, showResponse, outs, st.status, st.reason)
	})
}

var (
	inProgress = stackState{"CREATE_IN_PROGRESS", "Stack CREATE started"}
	complete   = stackState{"CREATE_COMPLETE", "Stack CREATE completed successfully"}
	failed     = stackState{"CREATE_FAILED", "Resource CREATE failed: WaitConditionFailure: resources.db_server_wait: db_server: mysql create failed"}
)

// TestDeployStack drives deployStack against gophercloud's fake server.
func TestDeployStack(t *testing.T) {
	hot := []byte("heat_template_version: \"2018-08-31\"\nresources: {}\n")
	for _, c := range []struct {
		name       string
		states     []stackState
		wantOut    string
		wantErr    string
		wantStderr string
	}{
		{
			name:    "complete",
			states:  []stackState{inProgress, inProgress, complete},
			wantOut: "database_address: 10.0.0.8\nowncloud_url: http://10.0.0.7/owncloud\n",
			wantStderr: "stack owncloud: created (id " + stackID + ")\n" +
				"stack owncloud: CREATE_IN_PROGRESS: Stack CREATE started\n" +
				"stack owncloud: CREATE_COMPLETE: Stack CREATE completed successfully\n",
		},
		{
			name:    "failed",
			states:  []stackState{inProgress, failed},
			wantErr: "stack owncloud: CREATE_FAILED: " + failed.reason,
			wantStderr: "stack owncloud: created (id " + stackID + ")\n" +
				"stack owncloud: CREATE_IN_PROGRESS: Stack CREATE started\n" +
				"stack owncloud: CREATE_FAILED: " + failed.reason + "\n",
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := th.SetupHTTP()
			defer fs.Teardown()
			h := &fakeHeat{t: t, states: c.states, token: fakeclient.TokenID}
			h.register(fs.Mux, "")
			var out, errOut bytes.Buffer
			err := deployStack(context.Background(), fakeclient.ServiceClient(fs), stackSpec{name: "owncloud", template: hot,
				params: map[string]any{"network": "private"}, poll: time.Millisecond, timeoutMins: 60}, &out, &errOut)
			if errText(err) != c.wantErr {
				t.Fatalf("error %q, want %q", errText(err), c.wantErr)
			}
			if out.String() != c.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), c.wantOut)
			}
			if c.wantStderr != "" && errOut.String() != c.wantStderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", errOut.String(), c.wantStderr)
			}
			if h.body["template"] != string(hot) || h.body["stack_name"] != "owncloud" || h.body["timeout_mins"] != 60.0 {
				t.Errorf("create request: %v", h.body)
			}
			if p, _ := h.body["parameters"].(map[string]any); p["network"] != "private" {
				t.Errorf("parameters %v", h.body["parameters"])
			}
			// One GET per state: polling stops at the first final one.
			if h.gets != len(c.states) {
				t.Errorf("%d polls, want %d", h.gets, len(c.states))
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fakeKeystone answers a Keystone v3 password authentication with a
// catalog whose orchestration endpoint is heatURL.
func fakeKeystone(t *testing.T, mux *http.ServeMux, heatURL, token string) {
	mux.HandleFunc("/identity/v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		th.TestMethod(t, r, "POST")
		var req struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct {
							Name     string `json:"name"`
							Password string `json:"password"`
						} `json:"user"`
					} `json:"password"`
				} `json:"identity"`
			} `json:"auth"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("auth body: %v", err)
		}
		if u := req.Auth.Identity.Password.User; u.Name != "demo" || u.Password != "secret" {
			t.Errorf("credentials %+v", u)
		}
		w.Header().Set("X-Subject-Token", token)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token": {"expires_at": "2999-01-01T00:00:00.000000Z", "issued_at": "2026-01-01T00:00:00.000000Z",
  "methods": ["password"], "user": {"id": "u1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
  "project": {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}},
  "catalog": [{"id": "c1", "type": "orchestration", "name": "heat",
    "endpoints": [{"id": "e1", "interface": "public", "region": "RegionOne", "region_id": "RegionOne", "url": %q}]}]}}`, heatURL)
	})
}

// TestToscaDeployJSONGolden: `tosca deploy --json` prints one document
// (docs/json.md) once the stack exists: when it completes, with Heat's
// times and the outputs, and when it fails, with Heat's reason, exiting
// non-zero. Heat cannot run here (it needs its engine, a database and a
// Nova): fakeHeat is a recording stand-in answering with the bodies of
// Heat's API reference.
func TestToscaDeployJSONGolden(t *testing.T) {
	const token = "tok-0123456789"
	args := []string{"tosca", "deploy", toscaGolden[0].src, "--stack", "owncloud", "--no-service", "--kb", testKB,
		"--image-map", "../../examples/owncloud/images.yaml", "--poll", "1ms", "--json",
		"--input", "db_password=password1", "--input", "db_root_password=password2",
		"--input", "admin_password=password3", "--input", "network=private"}
	for _, c := range []struct {
		golden string
		states []stackState
		err    string
	}{
		{"tosca-deploy", []stackState{inProgress, complete}, ""},
		{"tosca-deploy-failed", []stackState{inProgress, failed}, "stack owncloud: CREATE_FAILED: " + failed.reason},
	} {
		t.Run(c.golden, func(t *testing.T) {
			fs := th.SetupHTTP()
			defer fs.Teardown()
			h := &fakeHeat{t: t, states: c.states, token: token}
			h.register(fs.Mux, "/heat/v1/p1")
			fakeKeystone(t, fs.Mux, fs.Endpoint()+"heat/v1/p1", token)
			t.Setenv("OS_CLOUD", "")
			t.Setenv("OS_AUTH_URL", fs.Endpoint()+"identity/v3/")
			t.Setenv("OS_USERNAME", "demo")
			t.Setenv("OS_PASSWORD", "secret")
			t.Setenv("OS_PROJECT_ID", "p1")
			t.Setenv("OS_DOMAIN_NAME", "Default")
			t.Setenv("OS_REGION_NAME", "RegionOne")
			out, stderr, err := runCLI(t, args...)
			if errText(err) != c.err {
				t.Fatalf("error %q, want %q (stderr %s)", errText(err), c.err, stderr)
			}
			var doc struct{ Seconds float64 }
			if jerr := json.Unmarshal([]byte(out), &doc); jerr != nil || doc.Seconds < 0 {
				t.Errorf("seconds: %v, %v", doc.Seconds, jerr)
			}
			jsonGolden(t, c.golden, out)
		})
	}
}

// TestToscaDeployCLI runs "ecrae tosca deploy" end to end: in-process
// resolution, HOT, authentication (OS_* variables, then clouds.yaml) and
// the stack, checking the exact template Heat receives.
func TestToscaDeployCLI(t *testing.T) {
	wantHOT, err := os.ReadFile(filepath.Join(goldenDir, "owncloud.hot.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const token = "tok-0123456789"
	args := []string{"tosca", "deploy", toscaGolden[0].src, "--stack", "owncloud", "--no-service", "--kb", testKB,
		"--image-map", "../../examples/owncloud/images.yaml", "--poll", "1ms",
		"--input", "db_password=password1", "--input", "db_root_password=password2",
		"--input", "admin_password=password3", "--input", "network=private"}
	for _, c := range []struct {
		name   string
		env    func(t *testing.T, authURL string)
		states []stackState
		want   string
		err    string
	}{
		{
			name: "OS_* variables",
			env: func(t *testing.T, authURL string) {
				t.Setenv("OS_CLOUD", "")
				t.Setenv("OS_AUTH_URL", authURL)
				t.Setenv("OS_USERNAME", "demo")
				t.Setenv("OS_PASSWORD", "secret")
				t.Setenv("OS_PROJECT_ID", "p1")
				t.Setenv("OS_DOMAIN_NAME", "Default")
				t.Setenv("OS_REGION_NAME", "RegionOne")
			},
			states: []stackState{inProgress, complete},
			want:   "database_address: 10.0.0.8\nowncloud_url: http://10.0.0.7/owncloud\n",
		},
		{
			name: "clouds.yaml",
			env: func(t *testing.T, authURL string) {
				f := filepath.Join(t.TempDir(), "clouds.yaml")
				if err := os.WriteFile(f, []byte(fmt.Sprintf(`clouds:
  lab:
    auth:
      auth_url: %s
      username: demo
      password: secret
      project_id: p1
      user_domain_name: Default
    region_name: RegionOne
`, authURL)), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv("OS_CLIENT_CONFIG_FILE", f)
				t.Setenv("OS_AUTH_URL", "")
				t.Setenv("OS_CLOUD", "lab")
			},
			states: []stackState{inProgress, failed},
			err:    "stack owncloud: CREATE_FAILED: " + failed.reason,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := th.SetupHTTP()
			defer fs.Teardown()
			h := &fakeHeat{t: t, states: c.states, token: token}
			h.register(fs.Mux, "/heat/v1/p1")
			fakeKeystone(t, fs.Mux, fs.Endpoint()+"heat/v1/p1", token)
			c.env(t, fs.Endpoint()+"identity/v3/")
			out, stderr, err := runCLI(t, args...)
			if errText(err) != c.err {
				t.Fatalf("error %q, want %q (stderr %s)", errText(err), c.err, stderr)
			}
			if out != c.want {
				t.Errorf("stdout %q, want %q", out, c.want)
			}
			if h.body["template"] != string(wantHOT) {
				t.Errorf("the template sent differs from owncloud.hot.yaml:\n%s", firstDiff(string(wantHOT), fmt.Sprint(h.body["template"])))
			}
			params, _ := h.body["parameters"].(map[string]any)
			want := map[string]any{"db_password": "password1", "db_root_password": "password2", "admin_password": "password3", "network": "private"}
			if len(params) != len(want) {
				t.Errorf("parameters %v, want %v", params, want)
			}
			for k, v := range want {
				if params[k] != v {
					t.Errorf("parameter %s = %v, want %v", k, params[k], v)
				}
			}
			if !strings.Contains(stderr, "stack owncloud: CREATE_IN_PROGRESS: Stack CREATE started\n") {
				t.Errorf("no progress on stderr:\n%s", stderr)
			}
		})
	}
}
