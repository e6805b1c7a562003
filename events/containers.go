package events

import (
	"encoding/json"
	"math"
	"time"

	"github.com/ecrae/ecrae/hostview"
	"github.com/ecrae/ecrae/internal/quote"
)

// TypeContainers is the type under which container reports are counted.
const TypeContainers = "ecrae.containers"

// maxContainers bounds one report: more is a broken agent, not a node.
const maxContainers = 10000

// ContainerReport is what `ecrae agent --containers` publishes on
// ecrae.containers.<host> (events/README.md).
type ContainerReport struct {
	Host       string              `json:"host"`
	Timestamp  string              `json:"timestamp"`
	Arch       string              `json:"arch"`
	Runtime    string              `json:"runtime"`
	Containers []ReportedContainer `json:"containers"`
}

// ReportedContainer is one container of a report.
type ReportedContainer struct {
	Name          string  `json:"name"`
	ID            string  `json:"id"`
	State         string  `json:"state"`
	CPULimit      float64 `json:"cpu_limit"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	MemoryLimitMB int64   `json:"memory_limit_mb"`
	MemoryUsedMB  int64   `json:"memory_used_mb"`
	Arch          string  `json:"arch"`
	Tag           string  `json:"tag"`
	Migrating     bool    `json:"migrating"`
}

// DecodeContainers is Decoder{}.Containers: now is time.Now.
func DecodeContainers(subjectHost string, data []byte) (*hostview.Event, error) {
	return Decoder{}.Containers(subjectHost, data)
}

// Containers decodes a container report; subjectHost is the last token of
// its subject, used when the body names no host.
func (dec Decoder) Containers(subjectHost string, data []byte) (*hostview.Event, error) {
	if err := tooLarge(data); err != nil {
		return nil, err
	}
	var r ContainerReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, malformed("not a JSON object: %v", err)
	}
	host := r.Host
	if host == "" {
		host = subjectHost
	}
	// An agent may publish on its own host's subject only (NATS
	// permissions): the body cannot speak for another host.
	if subjectHost != "" && host != subjectHost {
		return nil, malformed("host %s in a report on the subject of %s", quote.Value(host), quote.Value(subjectHost))
	}
	if host == "" {
		return nil, malformed("no host")
	}
	if err := field("host", host, MaxNameBytes); err != nil {
		return nil, err
	}
	t, err := time.Parse(time.RFC3339Nano, r.Timestamp)
	if err != nil {
		return nil, malformed("timestamp %s is not RFC 3339", quote.Value(r.Timestamp))
	}
	if err := dec.notAfter("timestamp", t); err != nil {
		return nil, err
	}
	if len(r.Containers) > maxContainers {
		return nil, malformed("%d containers: at most %d", len(r.Containers), maxContainers)
	}
	rep := hostview.ContainerReport{Host: host, At: t, Arch: r.Arch}
	seen := map[string]bool{}
	for i, c := range r.Containers {
		switch {
		case c.ID == "" || len(c.ID) > 64:
			return nil, malformed("containers[%d].id %s: want 1 to 64 bytes", i, quote.Value(c.ID))
		case seen[c.ID]:
			return nil, malformed("containers[%d].id %s: twice in one report", i, quote.Value(c.ID))
		case c.Name == "" || len(c.Name) > MaxNameBytes:
			return nil, malformed("containers[%d].name %s: want 1 to %d bytes", i, quote.Value(c.Name), MaxNameBytes)
		case !(c.CPULimit >= 0 && c.CPULimit <= 4096):
			return nil, malformed("containers[%d].cpu_limit %v: want 0 (none) to 4096 cores", i, c.CPULimit)
		case c.MemoryLimitMB < 0 || c.MemoryUsedMB < 0 || c.MemoryLimitMB > 1<<30 || c.MemoryUsedMB > 1<<30:
			return nil, malformed("containers[%d]: memory_limit_mb %d / memory_used_mb %d: want 0 to 2^30", i, c.MemoryLimitMB, c.MemoryUsedMB)
		case len(c.Tag) > MaxNameBytes:
			return nil, malformed("containers[%d].tag: %d bytes, at most %d", i, len(c.Tag), MaxNameBytes)
		}
		seen[c.ID] = true
		// A container without a CPU quota may use every core; one vCPU
		// stands for it, as for the smallest flavor.
		vcpus := max(1, int(math.Ceil(c.CPULimit)))
		mem := c.MemoryLimitMB
		if mem == 0 {
			mem = max(1, c.MemoryUsedMB)
		}
		task := ""
		if c.Migrating {
			// Nova's word for a VM moving: the power manager and a plan's
			// takeover wait for it.
			task = "migrating"
		}
		power := "running"
		if c.State == "FROZEN" {
			power = "paused"
		}
		rep.Instances = append(rep.Instances, hostview.Instance{
			UUID: c.ID, Name: c.Name, Host: host, Kind: hostview.KindContainer,
			Flavor: hostview.Flavor{Name: "container", VCPUs: vcpus, MemoryMB: mem},
			Tag:    c.Tag, State: "active", PowerState: power, TaskState: task,
		})
	}
	return &hostview.Event{Kind: hostview.KindContainers, Type: TypeContainers, Timestamp: t, Containers: rep}, nil
}
