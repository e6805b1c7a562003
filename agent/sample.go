package agent

import "time"

// Values of Sample.WattsSource.
const (
	WattsMeasured = "measured" // watts read from the node (RAPL, BMC)
	WattsModel    = "model"    // no measurement: the service's KB model stands in
)

// Sample is what the agent publishes on ecrae.metrics.<host>; the schema
// is events.Sample (events/README.md).
type Sample struct {
	Host           string   `json:"host"`
	Timestamp      string   `json:"timestamp"`
	Watts          *float64 `json:"watts"`
	CPUUtilization *float64 `json:"cpu_utilization"`
	// Source names the source of the watts (rapl, ipmi, redfish), or proc
	// when only the utilisation was measured.
	Source string `json:"source"`
	// WattsSource is "measured" with watts, "model" without.
	WattsSource string `json:"watts_source"`
}

func newSample(host string, at time.Time) Sample {
	return Sample{Host: host, Timestamp: at.UTC().Format(time.RFC3339Nano)}
}
