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
	// Stream and Durable name the JetStream stream and durable consumer.
	// Defaults "ECRAE_EVENTS" and "ecrae-hostview".
	Stream, Durable string
	// MaxAge and MaxBytes bound the stream (oldest dropped first). The
	// stream only needs to hold what was not applied yet, plus what was
	// applied since the last checkpoint. Defaults 72h and 1 GiB.
	MaxAge   time.Duration
	MaxBytes int64
	// StateFile is where the view is saved (with the stream sequence it
	// covers) every CheckpointEvery and on stop; "" = not saved, and a
	// restart rebuilds the view from whatever the stream still holds.
	StateFile       string
	CheckpointEvery time.Duration // default 10s
	// AckWait is how long the server waits for an ack before redelivering.
	// Default 30s.
	AckWait time.Duration
	// Batch is how many messages each pull asks for. Default 1000.
	Batch int
}

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
	if c.Durable == "" {
		c.Durable = "ecrae-hostview"
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
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 1000
	}
}

// View is what the consumer needs of the host view.
type View interface {
	Apply(seq uint64, ev *hostview.Event) hostview.Outcome
	AppliedSeq() uint64
	SaveFile(path string) error
	LoadFile(path string) (bool, error)
}

var _ View = (*hostview.View)(nil)

// Consumer feeds the view from a durable JetStream consumer: Nova's
// notifications and node samples, each acknowledged once applied.
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
}

// New checks the configuration. Run does the work.
func New(nc *nats.Conn, v View, cfg Config, log *slog.Logger, m *Metrics) (*Consumer, error) {
	cfg.defaults()
	for _, s := range []string{cfg.SubjectPrefix, cfg.MetricsSubject, cfg.ContainersSubject} {
		if strings.ContainsAny(s, " \t*>") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			return nil, fmt.Errorf("NATS subject %q: no spaces, wildcards, or leading or trailing dots", s)
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
	}
	c.subjects = []string{c.novaPfx + ">", c.metPfx + ">", c.ctrPfx + ">"}
	return c, nil
}

// Subjects are the subjects the stream captures.
func (c *Consumer) Subjects() []string { return append([]string(nil), c.subjects...) }

// Ready is closed once the stream and consumer exist and the view has
// caught up with what was acknowledged before (see Run).
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
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s on %v: %w", c.cfg.Stream, c.subjects, err)
	}
	return s, nil
}

// Run sets up the stream and the durable consumer, restores the view, and
// applies messages until ctx ends; then it saves the view.
//
// Restart: the view saved in StateFile covers stream sequences up to its
// AppliedSeq; the durable consumer resumes after its ack floor. Messages
// redelivered at or below AppliedSeq are acknowledged without being applied
// again. If the ack floor is past AppliedSeq (acknowledged after the last
// save, then a crash), the gap is replayed from the stream first.
func (c *Consumer) Run(ctx context.Context) error {
	stream, err := c.EnsureStream(ctx)
	if err != nil {
		return err
	}
	if c.cfg.StateFile != "" {
		found, err := c.view.LoadFile(c.cfg.StateFile)
		if err != nil {
			// A damaged file must not stop the service: start empty, the
			// stream and the next resync rebuild the view.
			c.log.Error("host view state unreadable: starting empty", "path", c.cfg.StateFile, "err", err)
		} else if found {
			c.log.Info("host view restored", "path", c.cfg.StateFile, "applied_seq", c.view.AppliedSeq())
		}
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       c.cfg.Durable,
		Description:   "ECRAE host view",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.AckWait,
		MaxAckPending: 4 * c.cfg.Batch,
		// No subject filter: the stream holds only our subjects, and a
		// multi-subject filter costs the server a subject-tree walk per
		// message (a third of ingestion in BenchmarkIngest).
	})
	if err != nil {
		return fmt.Errorf("durable consumer %s: %w", c.cfg.Durable, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("durable consumer %s: %w", c.cfg.Durable, err)
	}
	if floor, have := info.AckFloor.Stream, c.view.AppliedSeq(); floor > have {
		if err := c.replay(ctx, stream, have+1, floor); err != nil {
			return err
		}
	}
	cc, err := cons.Consume(c.handle, jetstream.PullMaxMessages(c.cfg.Batch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Warn("NATS consumer", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.cfg.Durable, err)
	}
	close(c.ready)
	c.log.Info("host view consuming", "stream", c.cfg.Stream, "subjects", c.subjects, "durable", c.cfg.Durable, "applied_seq", c.view.AppliedSeq())

	tick := time.NewTicker(c.cfg.CheckpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			c.checkpoint()
		case <-ctx.Done():
			cc.Drain() // apply and ack what was delivered already
			select {
			case <-cc.Closed():
			case <-time.After(5 * time.Second):
				cc.Stop()
			}
			c.checkpoint()
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

// replay applies stream messages from..to (inclusive) with an ordered
// consumer: acknowledged before a crash, but not in the saved view.
func (c *Consumer) replay(ctx context.Context, stream jetstream.Stream, from, to uint64) error {
	si, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.cfg.Stream, err)
	}
	c.log.Warn("host view behind the durable consumer: replaying from the stream", "from", from, "to", to)
	if si.State.Msgs == 0 || si.State.LastSeq < from {
		c.lost(to - from + 1)
		c.view.Apply(to, nil)
		return nil
	}
	oc, err := c.js.OrderedConsumer(ctx, c.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("replay %d..%d: %w", from, to, err)
	}
	it, err := oc.Messages()
	if err != nil {
		return fmt.Errorf("replay %d..%d: %w", from, to, err)
	}
	defer it.Stop()
	next := from
	for next <= to {
		msg, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				break // nothing more in the stream
			}
			return fmt.Errorf("replay %d..%d: %w", from, to, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		if seq > next {
			c.lost(min(seq, to+1) - next)
		}
		if seq > to {
			next = seq
			break
		}
		c.process(seq, msg.Subject(), msg.Data())
		next = seq + 1
	}
	if next <= to {
		c.lost(to + 1 - next)
	}
	c.view.Apply(to, nil)
	return nil
}

func (c *Consumer) lost(n uint64) {
	if n == 0 {
		return
	}
	c.m.lost.Add(float64(n))
	c.log.Warn("acknowledged messages no longer in the stream: the next resync repairs the view", "count", n)
}

// handle is the durable consumer's callback: apply, then acknowledge.
func (c *Consumer) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		c.m.count("", outcomeMalformed)
		_ = msg.Term()
		return
	}
	seq := md.Sequence.Stream
	if seq <= c.view.AppliedSeq() {
		c.m.count(c.typeOf(msg.Subject()), outcomeReplayed)
	} else {
		c.process(seq, msg.Subject(), msg.Data())
	}
	if err := msg.Ack(); err != nil {
		c.log.Warn("ack", "subject", msg.Subject(), "seq", seq, "err", err)
	}
}

// process decodes and applies one message. It never fails: a malformed
// message is counted, logged and recorded as dealt with.
func (c *Consumer) process(seq uint64, subject string, data []byte) {
	var ev *hostview.Event
	var typ string
	var err error
	if host, ok := strings.CutPrefix(subject, c.metPfx); ok {
		typ = TypeSample
		ev, err = DecodeSample(host, data)
	} else if host, ok := strings.CutPrefix(subject, c.ctrPfx); ok {
		typ = TypeContainers
		ev, err = DecodeContainers(host, data)
	} else {
		ev, typ, err = DecodeNotification(data)
	}
	if err != nil {
		c.view.Apply(seq, nil)
		if typ == "" {
			typ = c.typeOf(subject) // the body did not say: the subject does
		}
		c.m.count(typ, outcomeMalformed)
		if n, ok := c.logLimit.allow(c.now()); ok {
			c.log.Warn("malformed message skipped", "subject", subject, "seq", seq, "err", err, "suppressed_since_last", n)
		}
		return
	}
	if ev == nil {
		c.view.Apply(seq, nil)
		c.m.count(typ, hostview.Ignored.String())
		return
	}
	out := c.view.Apply(seq, ev)
	c.m.count(ev.Type, out.String())
	if out == hostview.Applied {
		c.m.lag.Observe(max(0, c.now().Sub(ev.Timestamp).Seconds()))
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
