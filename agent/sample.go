package agent

import (
	"time"

	"github.com/ecrae/ecrae/events"
)

// newSample starts the sample the agent publishes on ecrae.metrics.<host>:
// events.Sample, the schema the service decodes (events/README.md).
func newSample(host string, at time.Time) events.Sample {
	return events.Sample{Host: host, Timestamp: at.UTC().Format(time.RFC3339Nano)}
}
