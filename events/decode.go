package events

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
	json "github.com/segmentio/encoding/json"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Limits on what one message may carry, checked by every decoder: a value
// past them cannot be a real one, and one huge field would otherwise live in
// the view (and in every answer of ecrae hosts) for good.
const (
	MaxMessageBytes = 1 << 20 // a whole message, envelope included
	MaxUUIDBytes    = 36      // Nova's instance uuid, 8-4-4-4-12
	MaxNameBytes    = 255     // host, node, instance, flavor names and other strings (Nova's columns)
	// DefaultClockSkew is how far past now a timestamp may be: Nova orders
	// an instance's events by it, so one from the future would pin its
	// instance against every later real event.
	DefaultClockSkew = 5 * time.Minute
)

// Reasons a well-formed message is refused (ecrae_events_rejected_total).
const (
	ReasonTooLarge        = "too_large"
	ReasonFieldTooLong    = "field_too_long"
	ReasonFutureTimestamp = "future_timestamp"
	ReasonSampleRange     = "sample_out_of_range"
	ReasonUnknownHost     = "unknown_host"
)

// RejectedError is a message refused by a limit; it wraps ErrMalformed.
type RejectedError struct {
	Reason string // one of the Reason constants
	Detail string
}

func (e *RejectedError) Error() string { return "refused (" + e.Reason + "): " + e.Detail }

// Unwrap makes a refused message a malformed one to callers that do not
// care why.
func (e *RejectedError) Unwrap() error { return ErrMalformed }

func reject(reason, format string, args ...any) error {
	return &RejectedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// field checks one string against its limit.
func field(name, s string, limit int) error {
	if len(s) > limit {
		return reject(ReasonFieldTooLong, "%s is %d bytes, limit %d: %s", name, len(s), limit, quote.Value(s))
	}
	return nil
}

// Decoder decodes messages against the clock. The zero value uses
// time.Now and DefaultClockSkew.
type Decoder struct {
	Now       func() time.Time
	ClockSkew time.Duration
}

// notAfter refuses a timestamp past now + the clock skew.
func (d Decoder) notAfter(name string, t time.Time) error {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	skew := d.ClockSkew
	if skew <= 0 {
		skew = DefaultClockSkew
	}
	if limit := now().Add(skew); t.After(limit) {
		return reject(ReasonFutureTimestamp, "%s %s is later than now + %s (%s)", name, t.Format(time.RFC3339), skew, limit.UTC().Format(time.RFC3339))
	}
	return nil
}

func tooLarge(data []byte) error {
	if len(data) > MaxMessageBytes {
		return reject(ReasonTooLarge, "message is %d bytes, limit %d", len(data), MaxMessageBytes)
	}
	return nil
}

// instanceOps is every instance notification the view applies, and how.
// Each names the instance's current host in its payload, except
// instance.live_migration_post.end: the source compute sends it and it
// still names the source, so it changes nothing (the destination's
// live_migration_post_dest.end moves the instance).
var instanceOps = map[string]hostview.InstanceOp{
	"instance.create.end":                   hostview.OpUpsert,
	"instance.delete.end":                   hostview.OpDelete,
	"instance.live_migration_post_dest.end": hostview.OpUpsert,
	"instance.resize_finish.end":            hostview.OpUpsert,
	"instance.resize_confirm.end":           hostview.OpUpsert,
	"instance.resize_revert.end":            hostview.OpUpsert,
	// Sent by the API before the move; its payload names the (down) source
	// host and the new state. instance.rebuild.end from the destination
	// moves the instance.
	"instance.evacuate": hostview.OpUpsert,
	// Sent by the compute that rebuilt the instance, which hosts it now;
	// after an evacuation the payload still names the source (seen in
	// Nova 26's harness, integration/fixtures): the publisher wins.
	"instance.rebuild.end":        hostview.OpUpsert,
	"instance.shelve.end":         hostview.OpUpsert,
	"instance.shelve_offload.end": hostview.OpUpsert, // host is null: the instance leaves it
	"instance.unshelve.end":       hostview.OpUpsert,
	"instance.power_off.end":      hostview.OpUpsert,
	"instance.power_on.end":       hostview.OpUpsert,
	"instance.suspend.end":        hostview.OpUpsert,
	"instance.resume.end":         hostview.OpUpsert,
	"instance.pause.end":          hostview.OpUpsert,
	"instance.unpause.end":        hostview.OpUpsert,
	"instance.soft_delete.end":    hostview.OpUpsert,
	"instance.restore.end":        hostview.OpUpsert,
}

// Event types handled besides instanceOps.
const (
	typeLiveMigrationPost = "instance.live_migration_post.end"
	typeRebuildEnd        = "instance.rebuild.end"
	typeServiceCreate     = "service.create"
	typeServiceUpdate     = "service.update"
	typeServiceDelete     = "service.delete"
	typeMetricsUpdate     = "metrics.update"
	// TypeSample is the type under which node samples are counted.
	TypeSample = "ecrae.metrics"
)

// Handled reports whether the view applies events of this type.
func Handled(eventType string) bool {
	if _, ok := instanceOps[eventType]; ok {
		return true
	}
	switch eventType {
	case typeLiveMigrationPost, typeServiceCreate, typeServiceUpdate, typeServiceDelete, typeMetricsUpdate:
		return true
	}
	return false
}

// HandledTypes lists every Nova event type the view applies.
func HandledTypes() []string {
	out := []string{typeLiveMigrationPost, typeServiceCreate, typeServiceUpdate, typeServiceDelete, typeMetricsUpdate}
	for t := range instanceOps {
		out = append(out, t)
	}
	return out
}

// message is oslo.messaging's notification dict, or its messagingv2
// envelope ({"oslo.version": "2.0", "oslo.message": "<the dict as JSON>"}).
// The payload's fields of every type the view uses are decoded in the same
// pass (encoding/json validates, then decodes: one pass instead of one per
// level halves the decoding time, which dominates ingestion).
type message struct {
	MessageID   string  `json:"message_id"`
	PublisherID string  `json:"publisher_id"`
	EventType   string  `json:"event_type"`
	Priority    string  `json:"priority"`
	Payload     payload `json:"payload"`
	Timestamp   string  `json:"timestamp"`
	OsloVersion string  `json:"oslo.version"`
	OsloMessage *string `json:"oslo.message"`
}

// payload is a Nova versioned object: InstanceActionPayload (and its
// kin), ServiceStatusPayload or MetricsPayload, whose fields do not clash.
// Values, not pointers, and no maps: a JSON null leaves a string empty, and
// every allocation saved is GC work the ingestion loop does not do.
type payload struct {
	Name string      `json:"nova_object.name"`
	Data payloadData `json:"nova_object.data"`
}

type payloadData struct {
	// Instance payloads.
	UUID        string       `json:"uuid"`
	DisplayName string       `json:"display_name"`
	Host        string       `json:"host"`
	Node        string       `json:"node"`
	TenantID    string       `json:"tenant_id"`
	State       string       `json:"state"`
	PowerState  string       `json:"power_state"`
	TaskState   string       `json:"task_state"`
	Flavor      flavorObject `json:"flavor"`
	// ServiceStatusPayload.
	Binary         string `json:"binary"`
	Disabled       bool   `json:"disabled"`
	DisabledReason string `json:"disabled_reason"`
	ForcedDown     bool   `json:"forced_down"`
	// MetricsPayload.
	Nodename string         `json:"nodename"`
	Metrics  []metricObject `json:"metrics"`
}

type flavorObject struct {
	Data flavorPayload `json:"nova_object.data"`
}

type flavorPayload struct {
	Name        string `json:"name"`
	FlavorID    string `json:"flavorid"`
	VCPUs       int    `json:"vcpus"`
	MemoryMB    int64  `json:"memory_mb"`
	RootGB      int64  `json:"root_gb"`
	EphemeralGB int64  `json:"ephemeral_gb"`
	Swap        int64  `json:"swap"`
	ExtraSpecs  struct {
		Tag string `json:"ecrae:tag"`
	} `json:"extra_specs"`
}

// present reports whether the payload carried a flavor.
func (f *flavorPayload) present() bool {
	return f.Name != "" || f.FlavorID != "" || f.VCPUs != 0 || f.MemoryMB != 0
}

type metricObject struct {
	Data metricPayload `json:"nova_object.data"`
}

type metricPayload struct {
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Timestamp string  `json:"timestamp"`
}

// TagExtraSpec is the flavor extra spec that carries an instance's
// workload tag (as the scheduler shim reads it).
const TagExtraSpec = "ecrae:tag"

// DecodeNotification is Decoder{}.Notification: now is time.Now.
func DecodeNotification(data []byte) (*hostview.Event, string, error) {
	return Decoder{}.Notification(data)
}

// Notification decodes one Nova versioned notification, plain or in
// oslo's messagingv2 envelope. It returns the event type (when readable)
// and the event, or a nil event for a type the view does not use. An error
// wraps ErrMalformed; a refused limit is a *RejectedError.
func (dec Decoder) Notification(data []byte) (*hostview.Event, string, error) {
	if err := tooLarge(data); err != nil {
		return nil, "", err
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, ignoredType(data), malformedUnlessIgnored(data, err)
	}
	if m.OsloMessage != nil {
		if !strings.HasPrefix(m.OsloVersion, "2.") {
			return nil, "", malformed("oslo envelope version %s, want 2.x", quote.Value(m.OsloVersion))
		}
		inner := []byte(*m.OsloMessage)
		m = message{}
		if err := json.Unmarshal(inner, &m); err != nil {
			return nil, ignoredType(inner), malformedUnlessIgnored(inner, err)
		}
		if m.OsloMessage != nil {
			return nil, "", malformed("nested oslo envelope")
		}
	}
	et := m.EventType
	if et == "" {
		return nil, "", malformed("no event_type")
	}
	if !Handled(et) {
		return nil, et, nil
	}
	ts, err := parseTime(m.Timestamp)
	if err != nil {
		return nil, et, malformed("timestamp: %v", err)
	}
	if err := dec.notAfter("timestamp", ts); err != nil {
		return nil, et, err
	}
	if err := m.checkFields(); err != nil {
		return nil, et, err
	}
	ev := &hostview.Event{Type: et, MessageID: m.MessageID, Timestamp: ts}
	if host, ok := strings.CutPrefix(m.PublisherID, "nova-compute:"); ok && host != "" {
		ev.Publisher = host
	}
	d := &m.Payload.Data
	switch {
	case et == typeLiveMigrationPost:
		if d.UUID == "" {
			return nil, et, malformed("payload: no instance uuid")
		}
		ev.Kind = hostview.KindNone
	case strings.HasPrefix(et, "instance."):
		if err := decodeInstance(d, instanceOps[et], ev); err != nil {
			return nil, et, err
		}
	case strings.HasPrefix(et, "service."):
		if err := decodeService(d, et, ev); err != nil {
			return nil, et, err
		}
	default: // metrics.update
		if err := decodeMetrics(d, ev); err != nil {
			return nil, et, err
		}
		if err := dec.notAfter("cpu.percent timestamp", ev.Metrics.At); err != nil {
			return nil, et, err
		}
	}
	return ev, et, nil
}

// checkFields holds every string the view may keep to its limit.
func (m *message) checkFields() error {
	d := &m.Payload.Data
	f := &d.Flavor.Data
	if err := field("payload uuid", d.UUID, MaxUUIDBytes); err != nil {
		return err
	}
	for _, s := range []struct{ name, v string }{
		{"message_id", m.MessageID}, {"publisher_id", m.PublisherID},
		{"payload display_name", d.DisplayName}, {"payload host", d.Host}, {"payload node", d.Node},
		{"payload tenant_id", d.TenantID}, {"payload state", d.State}, {"payload power_state", d.PowerState},
		{"payload task_state", d.TaskState}, {"payload binary", d.Binary}, {"payload disabled_reason", d.DisabledReason},
		{"payload nodename", d.Nodename}, {"flavor name", f.Name}, {"flavor flavorid", f.FlavorID},
		{"flavor extra spec " + TagExtraSpec, f.ExtraSpecs.Tag},
	} {
		if err := field(s.name, s.v, MaxNameBytes); err != nil {
			return err
		}
	}
	return nil
}

// ignoredType reads only the event type of a message that did not decode
// as a whole, so that a type the view does not use is ignored, not called
// malformed, when its payload has a field of the same name but another
// shape than the view's.
func ignoredType(data []byte) string {
	var m struct {
		EventType   string  `json:"event_type"`
		OsloMessage *string `json:"oslo.message"`
	}
	if json.Unmarshal(data, &m) != nil || m.OsloMessage != nil || Handled(m.EventType) {
		return ""
	}
	return m.EventType
}

func malformedUnlessIgnored(data []byte, err error) error {
	if ignoredType(data) != "" {
		return nil
	}
	return malformed("%v", err)
}

func decodeInstance(d *payloadData, op hostview.InstanceOp, ev *hostview.Event) error {
	if d.UUID == "" {
		return malformed("payload: no instance uuid")
	}
	ev.Kind = hostview.KindInstance
	c := &ev.Instance
	c.Op = op
	c.Instance = hostview.Instance{
		UUID: d.UUID, Name: d.DisplayName, Host: d.Host, Node: d.Node,
		Project: d.TenantID, State: d.State, PowerState: d.PowerState, TaskState: d.TaskState,
	}
	if ev.Type == typeRebuildEnd && ev.Publisher != "" && ev.Publisher != c.Instance.Host {
		c.Instance.Host, c.Instance.Node = ev.Publisher, ""
	}
	if f := &d.Flavor.Data; f.present() {
		if f.VCPUs < 0 || f.MemoryMB < 0 || f.RootGB < 0 || f.EphemeralGB < 0 || f.Swap < 0 {
			return malformed("payload: flavor with a negative size")
		}
		c.HasFlavor = true
		c.Instance.Flavor = hostview.Flavor{Name: f.Name, VCPUs: f.VCPUs, MemoryMB: f.MemoryMB,
			RootGB: f.RootGB, EphemeralGB: f.EphemeralGB, SwapMB: f.Swap}
		c.Instance.Tag = f.ExtraSpecs.Tag
	}
	return nil
}

func decodeService(d *payloadData, et string, ev *hostview.Event) error {
	if d.Host == "" {
		return malformed("payload: no service host")
	}
	ev.Kind = hostview.KindService
	ev.Service = hostview.ServiceChange{
		Host: d.Host, Binary: d.Binary, Disabled: d.Disabled,
		DisabledReason: d.DisabledReason, ForcedDown: d.ForcedDown,
		Deleted: et == typeServiceDelete,
	}
	if ev.Service.Binary != "nova-compute" || ev.Service.Deleted || ev.Service.ForcedDown {
		// Not the compute speaking for itself: an operator acted on it.
		ev.Publisher = ""
	}
	return nil
}

func decodeMetrics(d *payloadData, ev *hostview.Event) error {
	if d.Host == "" {
		return malformed("payload: no host")
	}
	ev.Kind = hostview.KindMetrics
	ev.Metrics = hostview.MetricsSample{Host: d.Host, Nodename: d.Nodename}
	for _, mo := range d.Metrics {
		if mo.Data.Name != "cpu.percent" {
			continue
		}
		v := mo.Data.Value
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return malformed("cpu.percent is %v", v)
		}
		// Nova's cpu.virt_driver monitor reports an integer percentage.
		ev.Metrics.CPU, ev.Metrics.HasCPU = math.Min(1, math.Max(0, v/100)), true
		if t, err := parseTime(mo.Data.Timestamp); err == nil {
			ev.Metrics.At = t
		}
	}
	return nil
}

// Sample is a node agent's power and utilisation sample, published as JSON
// on ecrae.metrics.<host>. See the package documentation.
type Sample struct {
	Host           string   `json:"host"`
	Timestamp      string   `json:"timestamp"`
	Watts          *float64 `json:"watts"`
	CPUUtilization *float64 `json:"cpu_utilization"`
	// CPUDemand is the CPU the node's tasks asked for, as a share of its
	// CPUs: the busy share plus the share they spent runnable but waiting
	// for a CPU. Above 1 the node is asked for more than it has, which
	// cpu_utilization (at most 1) cannot tell. Absent when the kernel keeps
	// no run-queue statistics.
	CPUDemand *float64 `json:"cpu_demand,omitempty"`
	// Source is where the agent read the watts (rapl, ipmi, redfish), or
	// proc for utilisation only: informational.
	Source string `json:"source"`
	// WattsSource is "measured" (or absent) when watts were measured,
	// "model" when they were not: such watts are never taken as a
	// measurement (the KB model stands in).
	WattsSource string `json:"watts_source"`
}

// MaxCPUDemand bounds a sample's cpu_demand: more runnable tasks than 64
// times the CPUs is a broken reading, not a load.
const MaxCPUDemand = 64

// Values of Sample.WattsSource.
const (
	WattsMeasured = "measured"
	WattsModel    = "model"
)

// DecodeSample is Decoder{}.Sample: now is time.Now.
func DecodeSample(subjectHost string, data []byte) (*hostview.Event, error) {
	return Decoder{}.Sample(subjectHost, data)
}

// Sample decodes a node sample; subjectHost is the last token of its
// subject, used when the body names no host. Whether the watts fit the
// host's model is the consumer's check (the model is not known here).
func (dec Decoder) Sample(subjectHost string, data []byte) (*hostview.Event, error) {
	if err := tooLarge(data); err != nil {
		return nil, err
	}
	var s Sample
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, malformed("not a JSON object: %v", err)
	}
	host := s.Host
	if host == "" {
		host = subjectHost
	}
	if host == "" {
		return nil, malformed("no host")
	}
	if err := field("host", host, MaxNameBytes); err != nil {
		return nil, err
	}
	if s.Timestamp == "" {
		return nil, malformed("no timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, s.Timestamp)
	if err != nil {
		return nil, malformed("timestamp %s is not RFC 3339", quote.Value(s.Timestamp))
	}
	if err := dec.notAfter("timestamp", t); err != nil {
		return nil, err
	}
	switch s.WattsSource {
	case "", WattsMeasured:
	case WattsModel:
		s.Watts = nil // an estimate, not a measurement: the view's model stands in
	default:
		return nil, malformed("watts_source %s: want measured or model", quote.Value(s.WattsSource))
	}
	if s.Watts == nil && s.CPUUtilization == nil {
		return nil, malformed("neither measured watts nor cpu_utilization")
	}
	p := hostview.PowerSample{Host: host, At: t, Source: s.Source}
	if s.Watts != nil {
		if w := *s.Watts; math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, malformed("watts %v: want a finite number", w)
		} else if w < 0 {
			return nil, reject(ReasonSampleRange, "watts %v: want >= 0", w)
		}
		p.Watts, p.HasWatts = *s.Watts, true
	}
	if s.CPUUtilization != nil {
		if u := *s.CPUUtilization; math.IsNaN(u) {
			return nil, malformed("cpu_utilization %v: want a number", u)
		} else if !(u >= 0 && u <= 1) {
			return nil, reject(ReasonSampleRange, "cpu_utilization %v: want a share in [0, 1]", u)
		}
		p.Utilization, p.HasUtil = *s.CPUUtilization, true
	}
	if s.CPUDemand != nil {
		if d := *s.CPUDemand; math.IsNaN(d) {
			return nil, malformed("cpu_demand %v: want a number", d)
		} else if !(d >= 0 && d <= MaxCPUDemand) {
			return nil, reject(ReasonSampleRange, "cpu_demand %v: want a share in [0, %d]", d, MaxCPUDemand)
		}
		p.Demand, p.HasDemand = *s.CPUDemand, true
	}
	return &hostview.Event{Kind: hostview.KindPower, Type: TypeSample, Timestamp: t, Power: p}, nil
}

// parseTime reads oslo's envelope timestamp ("2024-05-01 10:00:00.123456",
// UTC) or an ISO 8601 / RFC 3339 time (payload fields).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("missing")
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%s is not a time", quote.Value(s))
}
