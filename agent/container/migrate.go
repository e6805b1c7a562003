package container

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Migration modes.
const (
	ModeAuto     = "auto"
	ModePostcopy = "postcopy"
	ModePrecopy  = "precopy"
	ModeStopcopy = "stopcopy"
)

// MigrateSubject is where a host's agent takes migration requests.
func MigrateSubject(host string) string { return "ecrae.agent." + host + ".migrate" }

// receiveSubject is where a destination agent is asked to take a container.
func receiveSubject(host string) string { return "ecrae.agent." + host + ".receive" }

// MigrateRequest asks the source agent to move one of its containers.
type MigrateRequest struct {
	Container string `json:"container"`
	To        string `json:"to"`
	Mode      string `json:"mode,omitempty"` // "" = auto
}

// MigrateReply says what happened. On failure Error says why and where the
// container runs (always the source: it is restored there if needed).
type MigrateReply struct {
	OK        string `json:"ok,omitempty"` // "" on failure
	Error     string `json:"error,omitempty"`
	Container string `json:"container"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Mode is the mode used, ModeNote why (for auto, or a refusal).
	Mode     string `json:"mode,omitempty"`
	ModeNote string `json:"mode_note,omitempty"`
	// TotalMS: request to done (for post-copy: to the restore, pages may
	// still be arriving). FrozenMS: dump start to the restored container
	// running on the destination.
	TotalMS  float64 `json:"total_ms"`
	FrozenMS float64 `json:"frozen_ms"`
	// PagesDoneMS (post-copy): restore to the last page arrived.
	PagesDoneMS float64 `json:"pages_done_ms,omitempty"`
	// Rounds (pre-copy): each pre-dump round's stats, and why they stopped.
	Rounds     []DumpStats `json:"rounds,omitempty"`
	RoundsNote string      `json:"rounds_note,omitempty"`
	// BytesSent: images and root file system, plus pages through the relay.
	BytesSent int64 `json:"bytes_sent"`
}

type receiveRequest struct {
	Container string `json:"container"`
	From      string `json:"from"`
	Arch      string `json:"arch"`
	Mode      string `json:"mode"`
	// Runtime is the source's (lxc, podman): a destination takes only its
	// own runtime's containers.
	Runtime string `json:"runtime,omitempty"`
	// Image the container runs (podman), "" when the runtime has none.
	Image string `json:"image,omitempty"`
}

type receiveReply struct {
	Addr string `json:"addr,omitempty"`
	// NeedImage: the destination has not the image; the source sends it.
	NeedImage bool `json:"need_image,omitempty"`
	// Token must open the TCP stream: the listener takes the first
	// connection, and only the agent that asked over NATS knows it.
	Token string `json:"token,omitempty"`
	Error string `json:"error,omitempty"`
}

// header opens the TCP stream from the source.
type header struct {
	Token     string `json:"token"`
	Mode      string `json:"mode"`
	SourceDir string `json:"source_dir"` // to rewrite the config's paths
	PagesAddr string `json:"pages_addr,omitempty"`
}

// result is a line from the destination: after the restore, and for
// post-copy again when the last page has arrived.
type result struct {
	Error       string  `json:"error,omitempty"`
	PagesDoneMS float64 `json:"pages_done_ms,omitempty"`
}

// Migrator is the migration side of a node agent.
type Migrator struct {
	Host string
	RT   Runtime
	// CRIU runs the destination's lazy-pages daemon and the pre-dump
	// rounds.
	CRIU CRIU
	NC   *nats.Conn
	// DataHost is the address the agent listens on for its peers' TCP
	// connections (images, pages).
	DataHost string
	// StateDir holds images while a migration runs.
	StateDir string
	Features Features
	// Precopy bounds pre-copy's rounds.
	Precopy PrecopyPolicy
	// ReceiveTimeout bounds a destination's wait for the source's stream.
	ReceiveTimeout time.Duration
	Log            *slog.Logger
	// Changed, when set, is called after a container left or arrived.
	Changed func()

	mu     sync.Mutex
	busy   map[string]bool // containers being migrated (either side)
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// Serve answers migration requests until ctx ends, then waits for the
// migrations in flight.
func (m *Migrator) Serve(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.ReceiveTimeout <= 0 {
		m.ReceiveTimeout = 2 * time.Minute
	}
	m.mu.Lock() // the Reporter may ask Migrating already
	m.busy = map[string]bool{}
	m.mu.Unlock()
	if err := os.MkdirAll(m.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	handle := func(f func(context.Context, *nats.Msg)) nats.MsgHandler {
		return func(msg *nats.Msg) {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				f(ctx, msg)
			}()
		}
	}
	s1, err := m.NC.Subscribe(MigrateSubject(m.Host), handle(m.handleMigrate))
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	s2, err := m.NC.Subscribe(receiveSubject(m.Host), handle(m.handleReceive))
	if err != nil {
		_ = s1.Unsubscribe()
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := m.NC.Flush(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	<-ctx.Done()
	_ = s1.Unsubscribe()
	_ = s2.Unsubscribe()
	m.wg.Wait()
	return nil
}

func (m *Migrator) claim(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.busy[name] {
		return false
	}
	m.busy[name] = true
	return true
}

// Migrating reports whether a migration of the container runs here
// (either side): the Reporter says so with the container.
func (m *Migrator) Migrating(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.busy[name]
}

func (m *Migrator) release(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.busy, name)
}

func respond(msg *nats.Msg, v any) {
	b, _ := json.Marshal(v)
	_ = msg.Respond(b)
}

// ChooseMode resolves a requested mode against the node's features.
func ChooseMode(req string, f Features) (mode, note string, err error) {
	switch req {
	case "", ModeAuto:
		switch {
		case f.Lazy:
			return ModePostcopy, "auto: post-copy (userfaultfd works here)", nil
		case f.DirtyTrack:
			return ModePrecopy, fmt.Sprintf("auto: pre-copy (no post-copy: %s; soft-dirty tracking works)", f.NoLazy), nil
		default:
			return ModeStopcopy, fmt.Sprintf("auto: stop-and-copy (no post-copy: %s; no pre-copy: %s)", f.NoLazy, f.NoDirty), nil
		}
	case ModePostcopy:
		if !f.Lazy {
			return "", "", fmt.Errorf("mode postcopy: %s", f.NoLazy)
		}
		return ModePostcopy, "", nil
	case ModePrecopy:
		if !f.DirtyTrack {
			return "", "", fmt.Errorf("mode precopy: %s; use postcopy or stopcopy", f.NoDirty)
		}
		return ModePrecopy, "", nil
	case ModeStopcopy:
		return ModeStopcopy, "", nil
	}
	return "", "", fmt.Errorf("mode %.100q: want auto, postcopy, precopy or stopcopy", req)
}

func (m *Migrator) handleMigrate(ctx context.Context, msg *nats.Msg) {
	start := time.Now()
	var req MigrateRequest
	rep := MigrateReply{From: m.Host}
	fail := func(err error) {
		rep.Error = err.Error()
		rep.TotalMS = ms(time.Since(start))
		m.Log.Warn("migration failed", "container", rep.Container, "to", rep.To, "err", err)
		respond(msg, rep)
	}
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		fail(fmt.Errorf("migrate request: not JSON: %v", err))
		return
	}
	rep.Container, rep.To = req.Container, req.To
	if err := m.migrate(ctx, req, &rep, start); err != nil {
		fail(err)
		return
	}
	rep.OK = "migrated"
	m.changed()
	rep.TotalMS = ms(time.Since(start))
	m.Log.Info("container migrated", "container", req.Container, "to", req.To, "mode", rep.Mode, "total_ms", rep.TotalMS, "frozen_ms", rep.FrozenMS, "bytes", rep.BytesSent)
	respond(msg, rep)
}

func (m *Migrator) migrate(ctx context.Context, req MigrateRequest, rep *MigrateReply, start time.Time) error {
	if !validName(req.Container) {
		return fmt.Errorf("container: name %.100q is not valid", req.Container)
	}
	if req.To == "" {
		return errors.New("to: no destination host")
	}
	if req.To == m.Host {
		return fmt.Errorf("to: %.100q is the host the container is on", req.To)
	}
	mode, note, err := ChooseMode(req.Mode, m.features())
	if err != nil {
		return err
	}
	rep.Mode, rep.ModeNote = mode, note
	if !m.claim(req.Container) {
		return fmt.Errorf("container %q: a migration is already running", req.Container)
	}
	defer m.release(req.Container)
	c, err := m.RT.Get(ctx, req.Container)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Host, err)
	}
	if c.State != "RUNNING" {
		return fmt.Errorf("container %q on %s is %s, not RUNNING", c.Name, m.Host, c.State)
	}

	// The destination prepares a TCP listener for this migration.
	rq := receiveRequest{Container: c.Name, From: m.Host, Arch: m.RT.NodeArch(), Mode: mode, Runtime: m.RT.Kind()}
	ir, hasImages := m.RT.(imageRuntime)
	if hasImages {
		if rq.Image, err = ir.Image(ctx, c.Name); err != nil {
			return fmt.Errorf("%s: %w", m.Host, err)
		}
	}
	b, _ := json.Marshal(rq)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rmsg, err := m.NC.RequestWithContext(rctx, receiveSubject(req.To), b)
	cancel()
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("to: destination %q is down (no agent answers on %s): container %q keeps running on %s", req.To, receiveSubject(req.To), c.Name, m.Host)
		}
		return fmt.Errorf("to: asking %q: %w", req.To, err)
	}
	var rr receiveReply
	if err := json.Unmarshal(rmsg.Data, &rr); err != nil || (rr.Error == "" && rr.Addr == "") {
		return fmt.Errorf("to: destination %q answered %.100q", req.To, rmsg.Data)
	}
	if rr.Error != "" {
		return fmt.Errorf("destination %s refused: %s; container %q keeps running on %s", req.To, rr.Error, c.Name, m.Host)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", rr.Addr)
	if err != nil {
		return fmt.Errorf("to: connecting to %s at %s: %w", req.To, rr.Addr, err)
	}
	defer conn.Close()

	work, err := os.MkdirTemp(m.StateDir, "out-"+c.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "images")
	if err := os.Mkdir(img, 0o700); err != nil {
		return err
	}
	trees := m.RT.Trees(c.Name)
	if trees == nil {
		trees = map[string]string{}
	}
	trees["img"] = img
	if rr.NeedImage && hasImages {
		// Saved before the dump: the container is not frozen for it.
		dir := filepath.Join(work, "image")
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := ir.SaveImage(ctx, rq.Image, filepath.Join(dir, imageFile)); err != nil {
			return fmt.Errorf("image %s for %s: %w; container %q keeps running on %s", rq.Image, req.To, err, c.Name, m.Host)
		}
		trees["image"] = dir
	}
	switch mode {
	case ModePostcopy:
		return m.sendPostcopy(ctx, c, conn, work, img, trees, rr.Token, rep)
	case ModePrecopy:
		return m.sendPrecopy(ctx, c, conn, work, img, trees, rr.Token, rep)
	}
	return m.sendStopcopy(ctx, c, conn, work, img, trees, rr.Token, rep)
}

// imageFile is the saved image inside the stream's "image" tree.
const imageFile = "image.tar"

// features are the node's CRIU features as this runtime can use them.
func (m *Migrator) features() Features {
	f := m.Features
	noLazy, noDirty := m.RT.Limits()
	if noLazy != "" {
		f.Lazy, f.NoLazy = false, noLazy
	}
	if noDirty != "" {
		f.DirtyTrack, f.NoDirty = false, noDirty
	}
	return f
}

// sendStopcopy: dump (pages included) to local images, send them with the
// root file system, restore on the destination. The images stay here until
// the destination confirms, so a failure restores the container here.
func (m *Migrator) sendStopcopy(ctx context.Context, c Container, conn net.Conn, work, img string, trees map[string]string, token string, rep *MigrateReply) error {
	frozen := time.Now()
	if err := m.RT.Dump(ctx, c.Name, img, work); err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, false)
	}
	cw := &countWriter{w: conn}
	err := sendStream(cw, header{Token: token, Mode: ModeStopcopy, SourceDir: trees["ct"]}, trees)
	err = finish(conn, err)
	rep.BytesSent = cw.n.Load()
	if err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, true)
	}
	rep.FrozenMS = ms(time.Since(frozen))
	m.destroy(ctx, c.Name)
	return nil
}

// sendPostcopy: the seed's §6.3. Dump with lazy pages (CRIU keeps the
// frozen memory and serves it), send the other images and the root file
// system, the destination restores at once and pulls pages through the
// relay on demand, then in the background.
func (m *Migrator) sendPostcopy(ctx context.Context, c Container, conn net.Conn, work, img string, trees map[string]string, token string, rep *MigrateReply) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	dctx, stopDump := context.WithCancel(ctx)
	defer stopDump()
	rl, err := startRelay(dctx, m.DataHost, "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	defer rl.Close()
	frozen := time.Now()
	dumpDone := make(chan error, 1)
	go func() {
		dumpDone <- m.RT.Dump(dctx, c.Name, img, work, "lazy-pages", "address 127.0.0.1", "port "+strconv.Itoa(port))
	}()
	// The images are complete once the dump's page server listens.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !listening(port) {
		select {
		case err := <-dumpDone:
			if err == nil {
				err = errors.New("dump ended before serving pages")
			}
			return m.keepRunning(ctx, c.Name, img, work, err, false)
		case <-ctx.Done():
			stopDump()
			<-dumpDone
			return m.keepRunning(context.WithoutCancel(ctx), c.Name, img, work, ctx.Err(), false)
		case <-tick.C:
		}
	}
	cw := &countWriter{w: conn}
	err = sendStream(cw, header{Token: token, Mode: ModePostcopy, SourceDir: trees["ct"], PagesAddr: rl.Addr()}, trees)
	err = finish(conn, err)
	if err != nil {
		// Not restored there: stop serving pages. The memory was only in
		// the dump process, so the container cannot be brought back here
		// if CRIU has already stopped it.
		stopDump()
		<-dumpDone
		rep.BytesSent = cw.n.Load() + rl.bytes.Load()
		return m.keepRunning(context.WithoutCancel(ctx), c.Name, img, work, err, false)
	}
	rep.FrozenMS = ms(time.Since(frozen))
	// Restored there: the pages follow. The second line comes when the
	// destination's lazy-pages daemon has every page.
	res, err := readResult(conn)
	derr := <-dumpDone
	rl.Close()
	rep.BytesSent = cw.n.Load() + rl.bytes.Load()
	rep.PagesDoneMS = res.PagesDoneMS
	m.destroy(context.WithoutCancel(ctx), c.Name)
	if err != nil || derr != nil {
		return fmt.Errorf("container %q runs on %s but its page transfer failed (it may crash there): %w", c.Name, rep.To, errors.Join(err, derr))
	}
	return nil
}

// sendPrecopy: pre-dump rounds while the container runs, each round's
// images sent as soon as it ends (after the first, only the pages written
// since the round before), then the final dump, which copies only the last
// dirty set while the container is frozen, and the restore there. Every
// round is dumped here before it is sent, so a failed transfer restores
// the container from its own images.
func (m *Migrator) sendPrecopy(ctx context.Context, c Container, conn net.Conn, work, img string, trees map[string]string, token string, rep *MigrateReply) error {
	pid, err := m.RT.InitPID(ctx, c.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Host, err)
	}
	cw := &countWriter{w: conn}
	defer func() { rep.BytesSent = cw.n.Load() }()
	if err := sendHeader(cw, header{Token: token, Mode: ModePrecopy, SourceDir: trees["ct"]}); err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, false)
	}
	ts := newTarStream(cw)
	rounds, last, why, err := precopyRounds(ctx, m.CRIU, pid, work, m.Precopy, func(dir string) error {
		return ts.add(dir, filepath.Join(work, dir))
	})
	rep.Rounds, rep.RoundsNote = rounds, why
	// A pre-dump leaves the container running, and so does a failed dump;
	// closing the connection tells the destination.
	if err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, false)
	}
	frozen := time.Now()
	if err := m.RT.Dump(ctx, c.Name, img, work, "track-mem", "prev-images-dir ../"+last); err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, false)
	}
	for _, t := range sortedTrees(trees) {
		if err = ts.add(t[0], t[1]); err != nil {
			break
		}
	}
	if err == nil {
		err = ts.close()
	}
	if err = finish(conn, err); err != nil {
		return m.keepRunning(ctx, c.Name, img, work, err, true)
	}
	rep.FrozenMS = ms(time.Since(frozen))
	m.destroy(ctx, c.Name)
	return nil
}

// keepRunning makes sure the container runs here after a failed migration:
// if the dump stopped it, it is restored from the local images.
func (m *Migrator) keepRunning(ctx context.Context, name, img, work string, cause error, dumped bool) error {
	st, err := m.RT.State(ctx, name)
	if err == nil && st == "RUNNING" {
		return fmt.Errorf("%w; container %q keeps running on %s", cause, name, m.Host)
	}
	if !dumped {
		return fmt.Errorf("%w; container %q is %s on %s and its memory is lost (state: %v)", cause, name, st, m.Host, err)
	}
	if rerr := m.RT.Recover(ctx, name, img, work); rerr != nil {
		return fmt.Errorf("%w; restoring container %q on %s failed too: %v", cause, name, m.Host, rerr)
	}
	return fmt.Errorf("%w; container %q was restored and runs on %s", cause, name, m.Host)
}

func (m *Migrator) changed() {
	if m.Changed != nil {
		m.Changed()
	}
}

func (m *Migrator) destroy(ctx context.Context, name string) {
	if err := m.RT.Destroy(ctx, name); err != nil {
		m.Log.Warn("migrated container left behind", "container", name, "err", err)
	}
}

func sendStream(w *countWriter, h header, trees map[string]string) error {
	if err := sendHeader(w, h); err != nil {
		return err
	}
	return writeTar(w, sortedTrees(trees))
}

func sendHeader(w io.Writer, h header) error {
	b, _ := json.Marshal(h)
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// sortedTrees orders the trees by prefix: the stream is the same for the
// same container.
func sortedTrees(trees map[string]string) [][2]string {
	out := make([][2]string, 0, len(trees))
	for k, v := range trees {
		out = append(out, [2]string{k, v})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// finish reads the destination's first result line after the stream; when
// sending failed, the destination's reason (if it gave one) replaces the
// write error.
func finish(conn net.Conn, sendErr error) error {
	if sendErr == nil {
		_, err := readResult(conn)
		return err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	if r, err := readResult(conn); err != nil && r.Error != "" {
		return err
	}
	return sendErr
}

func readResult(conn net.Conn) (result, error) {
	// One byte at a time: the second line is read by a later call.
	var line []byte
	one := make([]byte, 1)
	for {
		n, err := conn.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			line = append(line, one[0])
			if len(line) > 1<<16 {
				return result{}, errors.New("destination: reply line too long")
			}
		}
		if err != nil {
			return result{}, fmt.Errorf("destination closed the connection: %w", err)
		}
	}
	var r result
	if err := json.Unmarshal(line, &r); err != nil {
		return result{}, fmt.Errorf("destination: reply %.100q: %w", line, err)
	}
	if r.Error != "" {
		return r, fmt.Errorf("destination: %s", r.Error)
	}
	return r, nil
}

func (m *Migrator) handleReceive(ctx context.Context, msg *nats.Msg) {
	var req receiveRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		respond(msg, receiveReply{Error: fmt.Sprintf("receive request: not JSON: %v", err)})
		return
	}
	refuse := func(format string, args ...any) { respond(msg, receiveReply{Error: fmt.Sprintf(format, args...)}) }
	f := m.features()
	kind := req.Runtime
	if kind == "" {
		kind = "lxc" // agents from before podman
	}
	switch {
	case !validName(req.Container):
		refuse("container name %.100q is not valid", req.Container)
		return
	case req.Arch != m.RT.NodeArch():
		refuse("%s is %s, container %q is %s: CRIU restores on the same ISA only", m.Host, m.RT.NodeArch(), req.Container, req.Arch)
		return
	case kind != m.RT.Kind():
		refuse("%s runs %s containers, container %q is %.100s", m.Host, m.RT.Kind(), req.Container, kind)
		return
	case req.Mode == ModePostcopy && !f.Lazy:
		refuse("%s cannot restore with post-copy: %s", m.Host, f.NoLazy)
		return
	case req.Mode == ModePrecopy && !f.DirtyTrack:
		refuse("%s cannot restore with pre-copy: %s", m.Host, f.NoDirty)
		return
	}
	if !m.claim(req.Container) {
		refuse("%s is already receiving container %q", m.Host, req.Container)
		return
	}
	defer m.release(req.Container)
	if has, err := m.RT.Has(ctx, req.Container); err != nil || has {
		refuse("%s already has a container %q%s", m.Host, req.Container, errSuffix(err))
		return
	}
	needImage := false
	if ir, ok := m.RT.(imageRuntime); ok && req.Image != "" {
		needImage = !ir.HasImage(ctx, req.Image)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(m.DataHost, "0"))
	if err != nil {
		refuse("%s: listen: %v", m.Host, err)
		return
	}
	token := rand.Text()
	respond(msg, receiveReply{Addr: ln.Addr().String(), Token: token, NeedImage: needImage})
	if err := m.receive(ctx, req, ln, token, needImage); err != nil {
		m.Log.Warn("receiving a container failed", "container", req.Container, "from", req.From, "err", err)
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (or cannot tell: %v)", err)
}

// maxPrecopyRounds bounds the pre-dump rounds a destination takes.
const maxPrecopyRounds = 100

// precopyTrees admits pre-copy's round directories pre-1 ... pre-N into
// work, beside the final images, as readTar meets them.
func precopyTrees(work string) func(prefix string) (string, bool) {
	return func(prefix string) (string, bool) {
		n, err := strconv.Atoi(strings.TrimPrefix(prefix, "pre-"))
		if !strings.HasPrefix(prefix, "pre-") || err != nil || n < 1 || n > maxPrecopyRounds || precopyDir(n) != prefix {
			return "", false
		}
		d := filepath.Join(work, prefix)
		return d, os.Mkdir(d, 0o700) == nil
	}
}

func (m *Migrator) receive(ctx context.Context, req receiveRequest, ln net.Listener, token string, needImage bool) error {
	actx, cancel := context.WithTimeout(ctx, m.ReceiveTimeout)
	stop := context.AfterFunc(actx, func() { ln.Close() })
	conn, err := ln.Accept()
	stop()
	cancel()
	ln.Close()
	if err != nil {
		return fmt.Errorf("no stream from %s: %w", req.From, err)
	}
	defer conn.Close()
	stopConn := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopConn()
	work, err := os.MkdirTemp(m.StateDir, "in-"+req.Container+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	img := filepath.Join(work, "images")
	reply := func(r result) { b, _ := json.Marshal(r); _, _ = conn.Write(append(b, '\n')) }
	trees := m.RT.Trees(req.Container)
	if trees == nil {
		trees = map[string]string{}
	}
	failed := func(err error) error {
		m.RT.Discard(ctx, req.Container) // never restored: no half container left
		reply(result{Error: fmt.Sprintf("%s: %v", m.Host, err)})
		// Read what the source still sends before closing: closing with
		// unread data resets the connection, and the source would lose
		// the reason.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		return err
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	line, err := br.ReadSlice('\n') // a header longer than the buffer is refused
	if err != nil {
		return failed(fmt.Errorf("stream header: %w", err))
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return failed(fmt.Errorf("stream header: %w", err))
	}
	if subtle.ConstantTimeCompare([]byte(h.Token), []byte(token)) != 1 {
		return failed(errors.New("stream header: wrong token"))
	}
	if h.Mode != req.Mode {
		return failed(fmt.Errorf("stream header: mode %.100q, asked for %s", h.Mode, req.Mode))
	}
	trees["img"] = img
	if needImage {
		trees["image"] = filepath.Join(work, "image")
	}
	for _, d := range trees {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return failed(err)
		}
	}
	// Pre-copy's rounds come first in the stream, each in its own
	// directory beside the final images (their parents, by relative link).
	var more func(prefix string) (string, bool)
	if h.Mode == ModePrecopy {
		more = precopyTrees(work)
	}
	if err := readTar(br, trees, more); err != nil {
		return failed(err)
	}
	if err := m.RT.Received(req.Container, h.SourceDir); err != nil {
		return failed(err)
	}
	if needImage {
		ir, _ := m.RT.(imageRuntime)
		if err := ir.LoadImage(ctx, filepath.Join(trees["image"], imageFile)); err != nil {
			return failed(fmt.Errorf("loading image %s: %w", req.Image, err))
		}
	}
	if h.Mode != ModePostcopy {
		if err := m.RT.Restore(ctx, req.Container, img, work); err != nil {
			return failed(err)
		}
		m.changed()
		reply(result{})
		return nil
	}
	host, port, err := net.SplitHostPort(h.PagesAddr)
	if err != nil {
		return failed(fmt.Errorf("pages_addr %.100q: %w", h.PagesAddr, err))
	}
	// The lazy-pages daemon serves the restored tasks' page faults from
	// the source's page server, then pulls the rest in the background.
	lp := exec.CommandContext(ctx, m.CRIU.Bin, "lazy-pages", "--page-server", "--address", host, "--port", port, "-D", img, "-o", "lazy-pages.log")
	if err := lp.Start(); err != nil {
		return failed(fmt.Errorf("criu lazy-pages: %w", err))
	}
	lpDone := make(chan error, 1)
	go func() { lpDone <- lp.Wait() }()
	sock := filepath.Join(img, "lazy-pages.socket")
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-lpDone:
			return failed(fmt.Errorf("criu lazy-pages ended at start: %v%s", err, logTail(filepath.Join(img, "lazy-pages.log"))))
		case <-tick.C:
		}
	}
	restored := time.Now()
	if err := m.RT.Restore(ctx, req.Container, img, work, "lazy-pages"); err != nil {
		_ = lp.Process.Kill()
		<-lpDone
		return failed(err)
	}
	m.changed()
	reply(result{})
	err = <-lpDone
	r := result{PagesDoneMS: ms(time.Since(restored))}
	if err != nil {
		r.Error = fmt.Sprintf("%s: criu lazy-pages: %v%s", m.Host, err, logTail(filepath.Join(img, "lazy-pages.log")))
	}
	reply(r)
	return err
}

// validName reports whether name can be a container's name (LXC: its
// directory's): one path element, not "." or "..".
func validName(name string) bool {
	return name != "" && len(name) <= 255 && !strings.ContainsAny(name, "/\x00") && name != "." && name != ".."
}

// rewriteConfig points the container's config at its new directory.
func rewriteConfig(p, from, to string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if from != "" && from != to {
		b = []byte(strings.ReplaceAll(string(b), from+"/", to+"/"))
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
