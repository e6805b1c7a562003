package events

import (
	"github.com/ecrae/ecrae/hostview"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcome labels besides hostview's (applied, duplicate, stale, ignored).
const (
	outcomeMalformed = "malformed"
	outcomeReplayed  = "already_applied" // delivered again after a consumer reset
	outcomeRejected  = "rejected"        // refused by a limit: ecrae_events_rejected_total says which
)

// Metrics are the ingestion's Prometheus collectors.
type Metrics struct {
	events   *prometheus.CounterVec
	lag      prometheus.Histogram
	lost     prometheus.Counter
	rejected *prometheus.CounterVec
}

// NewMetrics registers the collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_events_total",
			Help: "NATS messages taken by the host view, by event type and outcome (applied, duplicate, stale, ignored, malformed, rejected, already_applied).",
		}, []string{"type", "outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ecrae_event_lag_seconds",
			Help:    "Time from a notification's or sample's timestamp to its application to the host view.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 600, 3600},
		}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ecrae_events_lost_total",
			Help: "Messages the stream no longer held when the view reached them (dropped by age or size, or deleted): never applied; the next resync repairs the view.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ecrae_events_rejected_total",
			Help: "Messages refused by a limit, by reason (too_large, field_too_long, future_timestamp, sample_out_of_range, unknown_host).",
		}, []string{"reason"}),
	}
	for _, r := range []string{ReasonTooLarge, ReasonFieldTooLong, ReasonFutureTimestamp, ReasonSampleRange, ReasonUnknownHost} {
		m.rejected.WithLabelValues(r) // every reason shows, at 0
	}
	if reg != nil {
		reg.MustRegister(m.events, m.lag, m.lost, m.rejected)
	}
	return m
}

// count records one message. Event types come from Nova's closed list, or
// are folded into "other" (a publisher could send anything).
func (m *Metrics) count(eventType, outcome string) {
	if eventType != TypeSample && !Handled(eventType) {
		if eventType == "" {
			eventType = "unknown"
		} else if len(eventType) > 64 || !plainType(eventType) {
			eventType = "other"
		}
	}
	m.events.WithLabelValues(eventType, outcome).Inc()
}

func plainType(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// ViewReader is what the view gauges read.
type ViewReader interface {
	StaleHosts() int
	Counts() (map[hostview.ServiceState]int, int)
}

// RegisterViewMetrics adds gauges read from the view at scrape time: hosts
// by service state, stale hosts, instances.
func RegisterViewMetrics(reg prometheus.Registerer, v ViewReader) {
	reg.MustRegister(&viewCollector{
		v:     v,
		hosts: prometheus.NewDesc("ecrae_hostview_hosts", "Compute hosts in the live view, by service state.", []string{"state"}, nil),
		stale: prometheus.NewDesc("ecrae_hostview_hosts_stale", "Compute hosts not heard from within --stale-after: their metrics fall back to the model's estimate.", nil, nil),
		insts: prometheus.NewDesc("ecrae_hostview_instances", "Instances in the live view.", nil, nil),
	})
}

type viewCollector struct {
	v                   ViewReader
	hosts, stale, insts *prometheus.Desc
}

func (c *viewCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hosts
	ch <- c.stale
	ch <- c.insts
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	hosts, insts := c.v.Counts()
	for _, s := range []hostview.ServiceState{hostview.StateUp, hostview.StateDown, hostview.StateDisabled, hostview.StateUnknown} {
		label := string(s)
		if s == hostview.StateUnknown {
			label = "unknown"
		}
		ch <- prometheus.MustNewConstMetric(c.hosts, prometheus.GaugeValue, float64(hosts[s]), label)
	}
	ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, float64(c.v.StaleHosts()))
	ch <- prometheus.MustNewConstMetric(c.insts, prometheus.GaugeValue, float64(insts))
}
