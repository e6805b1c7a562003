package events

import (
	"encoding/json"
	"math"
	"time"

	"github.com/ecrae/ecrae/hostview"
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
}

// DecodeContainers decodes a container report; subjectHost is the last
// token of its subject, used when the body names no host.
func DecodeContainers(subjectHost string, data []byte) (*hostview.Event, error) {
	var r ContainerReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, malformed("not a JSON object: %v", err)
	}
	host := r.Host
	if host == "" {
		host = subjectHost
	}
	if host == "" || len(host) > 255 {
		return nil, malformed("host %.100q: want 1 to 255 bytes", host)
	}
	t, err := time.Parse(time.RFC3339Nano, r.Timestamp)
	if err != nil {
		return nil, malformed("timestamp %.100q is not RFC 3339", r.Timestamp)
	}
	if len(r.Containers) > maxContainers {
		return nil, malformed("%d containers: at most %d", len(r.Containers), maxContainers)
	}
	rep := hostview.ContainerReport{Host: host, At: t, Arch: r.Arch}
	seen := map[string]bool{}
	for i, c := range r.Containers {
		switch {
		case c.ID == "" || len(c.ID) > 64:
			return nil, malformed("containers[%d].id %.100q: want 1 to 64 bytes", i, c.ID)
		case seen[c.ID]:
			return nil, malformed("containers[%d].id %.100q: twice in one report", i, c.ID)
		case c.Name == "" || len(c.Name) > 255:
			return nil, malformed("containers[%d].name %.100q: want 1 to 255 bytes", i, c.Name)
		case !(c.CPULimit >= 0 && c.CPULimit <= 4096):
			return nil, malformed("containers[%d].cpu_limit %v: want 0 (none) to 4096 cores", i, c.CPULimit)
		case c.MemoryLimitMB < 0 || c.MemoryUsedMB < 0 || c.MemoryLimitMB > 1<<30 || c.MemoryUsedMB > 1<<30:
			return nil, malformed("containers[%d]: memory_limit_mb %d / memory_used_mb %d: want 0 to 2^30", i, c.MemoryLimitMB, c.MemoryUsedMB)
		case len(c.Tag) > 255:
			return nil, malformed("containers[%d].tag: %d bytes, at most 255", i, len(c.Tag))
		}
		seen[c.ID] = true
		// A container without a CPU quota may use every core; one vCPU
		// stands for it, as for the smallest flavor.
		vcpus := max(1, int(math.Ceil(c.CPULimit)))
		mem := c.MemoryLimitMB
		if mem == 0 {
			mem = max(1, c.MemoryUsedMB)
		}
		power := "running"
		if c.State == "FROZEN" {
			power = "paused"
		}
		rep.Instances = append(rep.Instances, hostview.Instance{
			UUID: c.ID, Name: c.Name, Host: host, Kind: hostview.KindContainer,
			Flavor: hostview.Flavor{Name: "container", VCPUs: vcpus, MemoryMB: mem},
			Tag:    c.Tag, State: "active", PowerState: power,
		})
	}
	return &hostview.Event{Kind: hostview.KindContainers, Type: TypeContainers, Timestamp: t, Containers: rep}, nil
}
