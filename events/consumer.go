package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config of a Consumer; zero values take the defaults.
type Config struct {
	// SubjectPrefix of Nova's notifications: <prefix>.versioned_notifications.>
	// (the shim driver's [ecrae_nats] subject_prefix + Nova's topic).
	// Default "nova".
	SubjectPrefix string
	// MetricsSubject is where node agents publish samples, one subject per
	// host: <MetricsSubject>.<host>. Default "ecrae.metrics".
	MetricsSubject string
	// ContainersSubject is where node agents publish their containers:
	// <ContainersSubject>.<host>. Default "ecrae.containers".
	ContainersSubject string
	// Stream names the JetStream stream. Default "ECRAE_EVENTS".
	Stream string
	// MaxAge and MaxBytes bound the stream (oldest dropped first). The
	// stream must hold what was applied since the last checkpoint, and what
	// was not applied yet. Defaults 72h and 1 GiB.
	MaxAge   time.Duration
	MaxBytes int64
	// StateFile is where the view is saved (with the stream sequence it
	// covers) every CheckpointEvery and on stop; "" = not saved, and a
	// restart rebuilds the view from whatever the stream still holds.
	StateFile       string
	CheckpointEvery time.Duration // default 10s
	// Replicas is how many copies of the stream the JetStream cluster
	// keeps (cluster mode: min(3, members)); 0 leaves it as the server's
	// default, one.
	Replicas int
	// Batch is how many messages each pull asks for. Default 1000.
	Batch int
	// ClockSkew is how far in the future a timestamp may be before the
	// message is refused. Default DefaultClockSkew.
	ClockSkew time.Duration
	// MaxWatts gives the largest power a host's model draws (nil, or false:
	// unbounded): a sample above twice that is refused. The caller owns the
	// knowledge base; events/ only asks.
	MaxWatts func(ctx context.Context, h *hostview.Host) (float64, bool)
}

// legacyDurable is the durable consumer that earlier versions acknowledged
// messages on; it is deleted at start (see Run).
const legacyDurable = "ecrae-hostview"

func (c *Config) defaults() {
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "nova"
	}
	if c.MetricsSubject == "" {
		c.MetricsSubject = "ecrae.metrics"
	}
	if c.ContainersSubject == "" {
		c.ContainersSubject = "ecrae.containers"
	}
	if c.Stream == "" {
		c.Stream = "ECRAE_EVENTS"
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 72 * time.Hour
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 10 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
	if c.ClockSkew <= 0 {
		c.ClockSkew = DefaultClockSkew
	}
}

// View is what the consumer needs of the host view.
type View interface {
	Apply(seq uint64, ev *hostview.Event) hostview.Outcome
	AppliedSeq() uint64
	SetAppliedSeq(seq uint64)
	Host(name string) (hostview.Host, bool)
	SaveFile(path string) error
	LoadFile(path string) (bool, error)
}

var _ View = (*hostview.View)(nil)

// Consumer feeds the view from the JetStream stream, in stream order:
// Nova's notifications and node samples.
type Consumer struct {
	cfg      Config
	js       jetstream.JetStream
	view     View
	log      *slog.Logger
	m        *Metrics
	now      func() time.Time
	subjects []string
	novaPfx  string // "<prefix>.versioned_notifications."
	metPfx   string // "<metrics subject>."
	ctrPfx   string // "<containers subject>."
	ready    chan struct{}
	logLimit limiter

	// mu serialises handle: the ordered consumer may call it from its old
	// and its new subscription around a reset.
	mu     sync.Mutex
	broken bool          // a gap could not be filled: wait for the restart
	reopen chan struct{} // handle asks Run for a new ordered consumer

	restoreOnce sync.Once
	restored    bool
}

// New checks the configuration. Run does the work.
func New(nc *nats.Conn, v View, cfg Config, log *slog.Logger, m *Metrics) (*Consumer, error) {
	cfg.defaults()
	for _, s := range []string{cfg.SubjectPrefix, cfg.MetricsSubject, cfg.ContainersSubject} {
		if strings.ContainsAny(s, " \t*>") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			return nil, fmt.Errorf("NATS subject %s: no spaces, wildcards, or leading or trailing dots", quote.Value(s))
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	c := &Consumer{
		cfg: cfg, js: js, view: v, log: log, m: m, now: time.Now,
		novaPfx: cfg.SubjectPrefix + ".versioned_notifications.",
		metPfx:  cfg.MetricsSubject + ".",
		ctrPfx:  cfg.ContainersSubject + ".",
		ready:   make(chan struct{}),
		reopen:  make(chan struct{}, 1),
	}
	c.subjects = []string{c.novaPfx + ">", c.metPfx + ">", c.ctrPfx + ">"}
	return c, nil
}

// SetMaxWatts sets Config.MaxWatts; call it before Run (the service builds
// the knowledge base's model lookup after the consumer).
func (c *Consumer) SetMaxWatts(f func(ctx context.Context, h *hostview.Host) (float64, bool)) {
	c.cfg.MaxWatts = f
}

// Subjects are the subjects the stream captures.
func (c *Consumer) Subjects() []string { return append([]string(nil), c.subjects...) }

// Ready is closed once the stream exists, the view is restored and its
// consumption has started.
func (c *Consumer) Ready() <-chan struct{} { return c.ready }

// EnsureStream creates the stream, or updates it to this configuration
// (idempotent: every start calls it).
func (c *Consumer) EnsureStream(ctx context.Context) (jetstream.Stream, error) {
	s, err := c.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        c.cfg.Stream,
		Description: "Nova versioned notifications and node samples for ECRAE's host view",
		Subjects:    c.subjects,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.cfg.MaxAge,
		MaxBytes:    c.cfg.MaxBytes,
		Duplicates:  2 * time.Minute, // publishers that set Nats-Msg-Id get dedup for free
		Replicas:    c.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s on %v: %w", c.cfg.Stream, c.subjects, err)
	}
	return s, nil
}

// Run sets up the stream, restores the view, and applies messages in
// stream order until ctx ends; then it saves the view.
//
// The view is its own bookmark: the saved file holds the view and the
// last stream sequence applied to it, written together, and every message
// up to that sequence has been applied exactly once (handle applies only
// the next sequence, fetching any it was not given). A restart, after a
// clean stop or a kill -9, loads the file and reads the stream again from
// the next sequence with an ordered consumer, so what was applied after
// the last save is applied again to the state it was not in. Nothing is
// acknowledged: the stream keeps messages by age and size, not by acks.
func (c *Consumer) Run(ctx context.Context) error {
	stream, err := c.EnsureStream(ctx)
	if err != nil {
		return err
	}
	restored := c.Restore()
	// Earlier versions kept a durable consumer whose acks ran ahead of
	// the saved view; nothing reads it now, and it would hold messages
	// pending on the server for good.
	if err := c.js.DeleteConsumer(ctx, c.cfg.Stream, legacyDurable); err == nil {
		c.log.Info("deleted the durable consumer of an earlier version", "durable", legacyDurable)
	}
	if err := c.position(ctx, stream, restored); err != nil {
		return err
	}
	for {
		err := c.consume(ctx, stream)
		if ctx.Err() != nil {
			c.checkpoint()
			return nil
		}
		c.log.Warn("host view: reading the stream again", "from_seq", c.view.AppliedSeq()+1, "err", err)
		select {
		case <-ctx.Done():
			c.checkpoint()
			return nil
		case <-time.After(time.Second):
		}
	}
}

// Restore loads the saved view, once (Run calls it; the service calls it
// before it says it is serving, so that it never answers from an empty
// view it is about to replace). It reports whether a view was restored.
func (c *Consumer) Restore() bool {
	c.restoreOnce.Do(func() {
		if c.cfg.StateFile == "" {
			return
		}
		found, err := c.view.LoadFile(c.cfg.StateFile)
		if err != nil {
			// A damaged file must not stop the service: start empty, the
			// stream and the next resync rebuild the view.
			c.log.Error("host view state unreadable: rebuilding it from the stream", "path", c.cfg.StateFile, "err", err)
		} else if found {
			c.restored = true
			c.log.Info("host view restored", "path", c.cfg.StateFile, "applied_seq", c.view.AppliedSeq())
		}
	})
	return c.restored
}

// position checks the view's sequence against the stream before reading.
func (c *Consumer) position(ctx context.Context, stream jetstream.Stream, restored bool) error {
	si, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.cfg.Stream, err)
	}
	have, first, last := c.view.AppliedSeq(), si.State.FirstSeq, si.State.LastSeq
	switch {
	case have > last:
		// The stream is younger than the view (its store was wiped, or it
		// was recreated): its sequences are not the ones the view counts.
		c.log.Warn("the stream holds fewer messages than the saved view covers (recreated?): following it from its first message; the next resync repairs the view",
			"applied_seq", have, "stream_last_seq", last)
		c.view.SetAppliedSeq(max(first, 1) - 1)
	case have == 0 && first > 1:
		if c.cfg.StateFile != "" && !restored {
			// Nothing saved yet, or the file was unreadable: what the
			// stream dropped before we read it is gone.
			c.log.Info("host view built from the stream's first message", "first_seq", first)
		}
		c.view.SetAppliedSeq(first - 1)
	}
	return nil
}

// consume reads the stream from the view's next sequence until ctx ends,
// or until handle finds a gap it cannot fill (the error says why).
func (c *Consumer) consume(ctx context.Context, stream jetstream.Stream) error {
	c.mu.Lock()
	c.broken = false
	c.mu.Unlock()
	select { // a request left by the previous round
	case <-c.reopen:
	default:
	}
	from := c.view.AppliedSeq() + 1
	oc, err := c.js.OrderedConsumer(ctx, c.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer from %d: %w", from, err)
	}
	handle := func(msg jetstream.Msg) { c.handle(ctx, stream, msg) }
	cc, err := oc.Consume(handle, jetstream.PullMaxMessages(c.cfg.Batch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Warn("NATS consumer", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", c.cfg.Stream, from, err)
	}
	defer func() {
		cc.Stop()
		// Wait for a handler in flight: the next round starts after it.
		c.mu.Lock()
		c.mu.Unlock() //nolint:staticcheck // an empty critical section is the wait
	}()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
	c.log.Info("host view consuming", "stream", c.cfg.Stream, "subjects", c.subjects, "from_seq", from)

	tick := time.NewTicker(c.cfg.CheckpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.checkpoint()
		case <-c.reopen:
			return errors.New("a gap in the delivered sequence could not be filled")
		case <-ctx.Done():
			return nil
		}
	}
}

func (c *Consumer) checkpoint() {
	if c.cfg.StateFile == "" {
		return
	}
	if err := c.view.SaveFile(c.cfg.StateFile); err != nil {
		c.log.Error("host view checkpoint", "err", err)
	}
}

// handle is the ordered consumer's callback. It applies the view's next
// sequence only: a message at or below it was applied already (a
// redelivery after a consumer reset), and one past it means messages were
// not delivered, which are fetched from the stream first.
func (c *Consumer) handle(ctx context.Context, stream jetstream.Stream, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		c.m.count("", outcomeMalformed)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return
	}
	seq, next := md.Sequence.Stream, c.view.AppliedSeq()+1
	if seq < next {
		c.m.count(c.typeOf(msg.Subject()), outcomeReplayed)
		return
	}
	if seq > next {
		if err := c.fill(ctx, stream, next, seq); err != nil {
			c.broken = true
			c.log.Warn("host view: missing messages not fetched", "from", next, "to", seq-1, "err", err)
			select {
			case c.reopen <- struct{}{}:
			default:
			}
			return
		}
	}
	c.process(ctx, seq, msg.Subject(), msg.Data())
}

// fill applies stream messages from..to-1, which the consumer skipped. A
// message the stream no longer has is lost: counted, and the next resync
// repairs the view.
func (c *Consumer) fill(ctx context.Context, stream jetstream.Stream, from, to uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	si, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.cfg.Stream, err)
	}
	if first := min(si.State.FirstSeq, to); from < first {
		c.lost(first-from, "dropped from the stream (max age or size) before it was applied")
		c.view.Apply(first-1, nil)
		from = first
	}
	var deleted uint64 // counted once for the whole gap: one log line
	defer func() { c.lost(deleted, "deleted from the stream before it was applied") }()
	for seq := from; seq < to; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			deleted++
			c.view.Apply(seq, nil)
			continue
		}
		if err != nil {
			return fmt.Errorf("get message %d: %w", seq, err)
		}
		c.process(ctx, seq, m.Subject, m.Data)
	}
	return nil
}

func (c *Consumer) lost(n uint64, reason string) {
	if n == 0 {
		return
	}
	c.m.lost.Add(float64(n))
	c.log.Warn("messages lost: the next resync repairs the view", "count", n, "reason", reason)
}

// process decodes and applies one message. It never fails: a malformed or
// refused message is counted, logged and recorded as dealt with.
func (c *Consumer) process(ctx context.Context, seq uint64, subject string, data []byte) {
	var ev *hostview.Event
	var typ string
	var err error
	dec := Decoder{Now: c.now, ClockSkew: c.cfg.ClockSkew}
	if host, ok := strings.CutPrefix(subject, c.metPfx); ok {
		typ = TypeSample
		ev, err = dec.Sample(host, data)
		if err == nil {
			err = c.checkWatts(ctx, ev)
		}
	} else if host, ok := strings.CutPrefix(subject, c.ctrPfx); ok {
		typ = TypeContainers
		ev, err = dec.Containers(host, data)
	} else {
		ev, typ, err = dec.Notification(data)
	}
	if err != nil {
		c.view.Apply(seq, nil)
		if typ == "" {
			typ = c.typeOf(subject) // the body did not say: the subject does
		}
		c.refuse(seq, subject, typ, err)
		return
	}
	if ev == nil {
		c.view.Apply(seq, nil)
		c.m.count(typ, hostview.Ignored.String())
		return
	}
	out := c.view.Apply(seq, ev)
	if out == hostview.UnknownHost {
		c.refuse(seq, subject, ev.Type, reject(ReasonUnknownHost, "sample for host %s, which the view does not know", quote.Value(ev.Power.Host)))
		return
	}
	c.m.count(ev.Type, out.String())
	if out == hostview.Applied {
		c.m.lag.Observe(max(0, c.now().Sub(ev.Timestamp).Seconds()))
	}
}

// checkWatts refuses a sample above twice its host's model maximum (a
// meter in the wrong unit, or another machine's). A host the view does not
// know is left to Apply, which refuses it.
func (c *Consumer) checkWatts(ctx context.Context, ev *hostview.Event) error {
	if !ev.Power.HasWatts || c.cfg.MaxWatts == nil {
		return nil
	}
	h, ok := c.view.Host(ev.Power.Host)
	if !ok {
		return nil
	}
	if mx, ok := c.cfg.MaxWatts(ctx, &h); ok && ev.Power.Watts > 2*mx {
		return reject(ReasonSampleRange, "watts %v for host %s: want at most 2 x its model's maximum %v W", ev.Power.Watts, quote.Value(h.Name), mx)
	}
	return nil
}

// refuse counts and logs (rate-limited) a message not applied.
func (c *Consumer) refuse(seq uint64, subject, typ string, err error) {
	outcome := outcomeMalformed
	var rej *RejectedError
	if errors.As(err, &rej) {
		outcome = outcomeRejected
		c.m.rejected.WithLabelValues(rej.Reason).Inc()
	}
	c.m.count(typ, outcome)
	if n, ok := c.logLimit.allow(c.now()); ok {
		c.log.Warn("message skipped", "outcome", outcome, "subject", subject, "seq", seq, "err", err, "suppressed_since_last", n)
	}
}

// typeOf guesses the event type from the subject, for counting messages
// that are not decoded.
func (c *Consumer) typeOf(subject string) string {
	if strings.HasPrefix(subject, c.metPfx) {
		return TypeSample
	}
	if strings.HasPrefix(subject, c.ctrPfx) {
		return TypeContainers
	}
	if rest, ok := strings.CutPrefix(subject, c.novaPfx); ok {
		if _, et, ok := strings.Cut(rest, "."); ok {
			return et
		}
	}
	return ""
}

// limiter lets through at most 20 log lines a minute and counts the rest.
type limiter struct {
	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

func (l *limiter) allow(now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.window) > time.Minute {
		l.window, l.n = now, 0
	}
	if l.n >= 20 {
		l.suppressed++
		return 0, false
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return s, true
}
