package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Podman drives one podman storage's containers (podman 4.3 with runc; the
// CRIU it uses is the first on PATH, so this CRIU is put there).
type Podman struct {
	// Bin is the podman binary, default "podman".
	Bin string
	// Flags are podman's global flags on every call: --root, --runroot,
	// --storage-driver, --cgroup-manager, --events-backend, ...
	Flags []string
	// OCIRuntime is the OCI runtime (--runtime), default runc: Debian's
	// crun refuses hybrid cgroups and has no checkpoint support.
	OCIRuntime string
	CRIU       CRIU
	// Arch is the node's ISA.
	Arch string
}

// checkpointFile is the export inside the images directory.
const checkpointFile = "checkpoint.tar"

// podmanName is what podman accepts as a container name (and ids match
// it). Checked before a name goes on podman's command line: "--all" there
// would be a flag.
var podmanName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkName refuses a name no podman container can have.
func checkName(name string) error {
	if len(name) > 255 || !podmanName.MatchString(name) {
		return fmt.Errorf("container %.100q: %w", name, ErrUnknown)
	}
	return nil
}

func (p *Podman) args(args ...string) []string {
	bin := p.Bin
	if bin == "" {
		bin = "podman"
	}
	rt := p.OCIRuntime
	if rt == "" {
		rt = "runc"
	}
	out := append([]string{bin}, p.Flags...)
	out = append(out, "--runtime", rt)
	return append(out, args...)
}

// run runs podman with this CRIU first on PATH. Output goes to a file: a
// restore leaves conmon behind, and a pipe it inherited would never end.
func (p *Podman) run(ctx context.Context, args ...string) (string, error) {
	env := os.Environ()
	if p.CRIU.Bin != "" {
		env = append(env, "PATH="+filepath.Dir(p.CRIU.Bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	out, err := runGroup(ctx, env, p.args(args...))
	if err != nil {
		return out, fmt.Errorf("podman %s: %w: %s", args[0], err, podmanError([]byte(out)))
	}
	return out, nil
}

// podmanError is the first "Error:" line of podman's output (its cause),
// else the last line.
func podmanError(out []byte) string {
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "Error: "); i >= 0 {
			line = strings.TrimSpace(line[i:])
			if len(line) > 300 {
				line = line[:300]
			}
			return line
		}
	}
	return lastLine(out)
}

// Kind is "podman".
func (p *Podman) Kind() string { return "podman" }

// NodeArch is the node's ISA.
func (p *Podman) NodeArch() string { return p.Arch }

// podmanInspect is what the agent reads of `podman container inspect`.
type podmanInspect struct {
	ID        string `json:"Id"`
	Name      string `json:"Name"`
	Image     string `json:"Image"`
	ImageName string `json:"ImageName"`
	State     struct {
		Status string `json:"Status"`
		Pid    int    `json:"Pid"`
	} `json:"State"`
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"Config"`
	HostConfig struct {
		Memory    int64 `json:"Memory"`
		NanoCpus  int64 `json:"NanoCpus"`
		CPUQuota  int64 `json:"CpuQuota"`
		CPUPeriod int64 `json:"CpuPeriod"`
	} `json:"HostConfig"`
}

// parseInspect reads `podman container inspect`'s JSON array into
// Containers (without usage). A container without id or name is an error.
func parseInspect(b []byte, arch string) ([]Container, []podmanInspect, error) {
	var raw []podmanInspect
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, fmt.Errorf("podman inspect: %w", err)
	}
	out := make([]Container, 0, len(raw))
	for _, r := range raw {
		if r.ID == "" || r.Name == "" {
			return nil, nil, fmt.Errorf("podman inspect: a container without id or name (%.100q)", r.ID+r.Name)
		}
		c := Container{Name: r.Name, ID: r.ID, State: podmanState(r.State.Status), Arch: arch, Tag: r.Config.Labels["ecrae.tag"]}
		if m := r.HostConfig.Memory; m > 0 {
			c.MemoryLimitMB = m >> 20
		}
		switch {
		case r.HostConfig.NanoCpus > 0:
			c.CPULimit = float64(r.HostConfig.NanoCpus) / 1e9
		case r.HostConfig.CPUQuota > 0 && r.HostConfig.CPUPeriod > 0:
			c.CPULimit = float64(r.HostConfig.CPUQuota) / float64(r.HostConfig.CPUPeriod)
		}
		out = append(out, c)
	}
	return out, raw, nil
}

// podmanState maps podman's states to the report's (LXC's words).
func podmanState(s string) string {
	switch s {
	case "running":
		return "RUNNING"
	case "paused":
		return "FROZEN"
	case "exited", "stopped", "created", "configured", "initialized":
		return "STOPPED"
	}
	return strings.ToUpper(s)
}

// podmanUsage is one line of `podman stats --format '{{json .ContainerStats}}'`.
type podmanUsage struct {
	ContainerID string `json:"ContainerID"`
	CPUNano     uint64 `json:"CPUNano"`
	MemUsage    uint64 `json:"MemUsage"`
}

// parseStats reads the stats lines by container id; a line that is not a
// stats object is an error.
func parseStats(out string) (map[string]podmanUsage, error) {
	m := map[string]podmanUsage{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var u podmanUsage
		if err := json.Unmarshal([]byte(line), &u); err != nil || u.ContainerID == "" {
			return nil, fmt.Errorf("podman stats: line %.100q", line)
		}
		m[u.ContainerID] = u
	}
	return m, sc.Err()
}

func applyUsage(c *Container, u podmanUsage) {
	c.CPUSeconds = float64(u.CPUNano) / 1e9
	c.MemoryUsedMB = int64(math.Ceil(float64(u.MemUsage) / (1 << 20)))
}

// inspect describes the named (or id'd) containers; ErrUnknown when one
// is not there.
func (p *Podman) inspect(ctx context.Context, refs ...string) ([]Container, []podmanInspect, error) {
	for _, r := range refs {
		if err := checkName(r); err != nil {
			return nil, nil, err
		}
	}
	out, err := p.run(ctx, append([]string{"container", "inspect"}, refs...)...)
	if err != nil {
		if strings.Contains(out, "no such container") {
			return nil, nil, fmt.Errorf("container %.100q: %w", strings.Join(refs, " "), ErrUnknown)
		}
		return nil, nil, err
	}
	// podman prints warnings on stderr, which shares the file: the JSON
	// array starts at the first '['.
	if i := strings.IndexByte(out, '['); i > 0 {
		out = out[i:]
	}
	return parseInspect([]byte(out), p.Arch)
}

// List returns the running (or paused) containers, with usage.
func (p *Podman) List(ctx context.Context) ([]Container, error) {
	out, err := p.run(ctx, "ps", "-q", "--no-trunc")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, nil
	}
	cs, _, err := p.inspect(ctx, ids...)
	if errors.Is(err, ErrUnknown) {
		// One stopped and went between the two calls: one at a time.
		cs = cs[:0]
		for _, id := range ids {
			one, _, err := p.inspect(ctx, id)
			if errors.Is(err, ErrUnknown) {
				continue
			}
			if err != nil {
				return nil, err
			}
			cs = append(cs, one...)
		}
	} else if err != nil {
		return nil, err
	}
	var running []Container
	for _, c := range cs {
		if c.State == "RUNNING" || c.State == "FROZEN" {
			running = append(running, c)
		}
	}
	p.usage(ctx, running)
	return running, nil
}

// usage fills CPU time and memory use from podman stats. Usage is best
// effort: a container that stopped meanwhile makes the call fail, and
// then each is asked alone.
func (p *Podman) usage(ctx context.Context, cs []Container) {
	if len(cs) == 0 {
		return
	}
	ask := func(ids ...string) map[string]podmanUsage {
		args := append([]string{"stats", "--no-stream", "--no-reset", "--format", "{{json .ContainerStats}}"}, ids...)
		out, err := p.run(ctx, args...)
		if err != nil {
			return nil
		}
		m, err := parseStats(out)
		if err != nil {
			return nil
		}
		return m
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	m := ask(ids...)
	for i := range cs {
		u, ok := m[cs[i].ID]
		if !ok && m == nil {
			u, ok = ask(cs[i].ID)[cs[i].ID]
		}
		if ok {
			applyUsage(&cs[i], u)
		}
	}
}

// Get describes one container.
func (p *Podman) Get(ctx context.Context, name string) (Container, error) {
	cs, _, err := p.inspect(ctx, name)
	if err != nil {
		return Container{}, err
	}
	if len(cs) != 1 {
		return Container{}, fmt.Errorf("container %.100q: %w", name, ErrUnknown)
	}
	c := cs[0]
	if c.State == "RUNNING" || c.State == "FROZEN" {
		p.usage(ctx, cs)
		c = cs[0]
	}
	return c, nil
}

// State is the container's state.
func (p *Podman) State(ctx context.Context, name string) (string, error) {
	cs, _, err := p.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if len(cs) != 1 {
		return "", fmt.Errorf("container %.100q: %w", name, ErrUnknown)
	}
	return cs[0].State, nil
}

// Has reports whether a container of that name exists (any state).
func (p *Podman) Has(ctx context.Context, name string) (bool, error) {
	if checkName(name) != nil {
		return false, nil
	}
	_, err := p.run(ctx, "container", "exists", name)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil
	}
	return err == nil, err
}

// Trees: none, the export holds the root file system's changes.
func (p *Podman) Trees(string) map[string]string { return nil }

// Received: nothing to fix.
func (p *Podman) Received(string, string) error { return nil }

// Dump exports a checkpoint of the container into img and stops it.
// --keep leaves CRIU's images with the container, so Recover can restore
// it here. Uncompressed: a working set's pages are sent as they are
// (zstd would hide the transfer of the tests' uniform pages, and costs the
// frozen container time on real ones).
func (p *Podman) Dump(ctx context.Context, name, img, _ string, criuOpts ...string) error {
	if len(criuOpts) > 0 {
		return fmt.Errorf("podman: CRIU options %q cannot be passed through podman", criuOpts)
	}
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := p.run(ctx, "container", "checkpoint", "--keep", "--compress", "none", "--export", filepath.Join(img, checkpointFile), name); err != nil {
		return fmt.Errorf("dump of container %q: %w", name, err)
	}
	return nil
}

// Restore imports the checkpoint: the container keeps its name and id.
func (p *Podman) Restore(ctx context.Context, name, img, _ string, criuOpts ...string) error {
	if len(criuOpts) > 0 {
		return fmt.Errorf("podman: CRIU options %q cannot be passed through podman", criuOpts)
	}
	if _, err := p.run(ctx, "container", "restore", "--import", filepath.Join(img, checkpointFile)); err != nil {
		return fmt.Errorf("restore of container %q: %w", name, err)
	}
	return nil
}

// Recover restores the container from the checkpoint Dump kept with it.
func (p *Podman) Recover(ctx context.Context, name, _, _ string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := p.run(ctx, "container", "restore", "--keep", name); err != nil {
		return fmt.Errorf("restore of container %q: %w", name, err)
	}
	return nil
}

// Discard removes a container a failed restore may have created.
func (p *Podman) Discard(ctx context.Context, name string) {
	if checkName(name) != nil {
		return
	}
	_, _ = p.run(context.WithoutCancel(ctx), "rm", "--force", "--time", "0", "--ignore", name)
}

// Destroy removes the (stopped) source container and its checkpoint.
func (p *Podman) Destroy(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := p.run(ctx, "rm", "--force", "--time", "0", name)
	return err
}

// Limits: podman 4.3 passes no CRIU options to runc. runc alone could
// dump with lazy pages, but the container would leave podman's control.
func (p *Podman) Limits() (noLazy, noDirty string) {
	return "podman cannot dump with lazy pages (podman 4.3 passes no CRIU options to runc, and its export is written only after the dump, which in lazy mode waits for the destination to take every page)",
		"podman cannot give CRIU the previous round's images (podman 4.3 passes no CRIU options to runc; its own --pre-checkpoint is a single round)"
}

// InitPID is the container's init as podman inspect says.
func (p *Podman) InitPID(ctx context.Context, name string) (int, error) {
	_, raw, err := p.inspect(ctx, name)
	if err != nil {
		return 0, err
	}
	if len(raw) != 1 || raw[0].State.Pid <= 0 {
		return 0, fmt.Errorf("container %q: no running init", name)
	}
	return raw[0].State.Pid, nil
}

// Image is the image the container was made from: its name when it has
// one (a restore looks the image up by it), else its id.
func (p *Podman) Image(ctx context.Context, name string) (string, error) {
	_, raw, err := p.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if len(raw) != 1 {
		return "", fmt.Errorf("container %.100q: %w", name, ErrUnknown)
	}
	if raw[0].ImageName != "" {
		return raw[0].ImageName, nil
	}
	return raw[0].Image, nil
}

// HasImage reports whether the image is in this storage.
func (p *Podman) HasImage(ctx context.Context, ref string) bool {
	if ref == "" || strings.HasPrefix(ref, "-") {
		return false // not a reference: a flag
	}
	_, err := p.run(ctx, "image", "exists", ref)
	return err == nil
}

// SaveImage writes the image to file (docker-archive, with its name).
func (p *Podman) SaveImage(ctx context.Context, ref, file string) error {
	_, err := p.run(ctx, "save", "--quiet", "--output", file, ref)
	return err
}

// LoadImage loads an image written by SaveImage.
func (p *Podman) LoadImage(ctx context.Context, file string) error {
	_, err := p.run(ctx, "load", "--quiet", "--input", file)
	return err
}
