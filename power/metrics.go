package power

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the power manager.
type Metrics struct {
	hostsOff    prometheus.Gauge
	paused      prometheus.Gauge
	wakeups     *prometheus.CounterVec
	wakeLatency prometheus.Histogram
	savedJoules prometheus.Counter
	actions     *prometheus.CounterVec
	errors      prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		hostsOff: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ecrae_power_hosts_off", Help: "Hosts ECRAE powered off and has not woken."}),
		paused:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "ecrae_power_paused", Help: "1 while the power policy stopped acting because the live view is stale."}),
		wakeups:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrae_power_wakeups_total", Help: "Hosts powered on again, by cause (cli, policy, no-room)."}, []string{"by"}),
		wakeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ecrae_power_wake_latency_seconds", Help: "Power on to the host reporting again (its nova-compute then enabled).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		savedJoules: prometheus.NewCounter(prometheus.CounterOpts{Name: "ecrae_power_energy_saved_joules_total", Help: "Energy not drawn by hosts while off, at their last measured power (hosts without samples count nothing)."}),
		actions:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecrae_power_actions_total", Help: "Recorded power events by action."}, []string{"action"}),
		errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "ecrae_power_errors_total", Help: "BMC, Ironic or Nova errors, and events the history could not record."}),
	}
	if reg != nil {
		reg.MustRegister(m.hostsOff, m.paused, m.wakeups, m.wakeLatency, m.savedJoules, m.actions, m.errors)
	}
	return m
}
