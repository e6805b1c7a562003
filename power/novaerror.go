package power

import "encoding/json"

// NoValidHost reads one of Nova's versioned notifications (as the nats
// driver publishes it, plain or in oslo's envelope) and reports whether it
// is a compute task that failed for want of a host: Placement found no
// room, so the scheduler's filters (and ECRAE's FilterHosts) never ran.
// It returns the instance's uuid.
func NoValidHost(data []byte) (string, bool) {
	var m struct {
		EventType   string          `json:"event_type"`
		Payload     json.RawMessage `json:"payload"`
		OsloMessage *string         `json:"oslo.message"`
	}
	if json.Unmarshal(data, &m) != nil {
		return "", false
	}
	if m.OsloMessage != nil {
		if json.Unmarshal([]byte(*m.OsloMessage), &m) != nil {
			return "", false
		}
	}
	switch m.EventType {
	case "compute_task.build_instances.error", "compute_task.migrate_server.error", "compute_task.rebuild_server.error":
	default:
		return "", false
	}
	var p struct {
		Data struct {
			InstanceUUID string `json:"instance_uuid"`
			Reason       struct {
				Data struct {
					Exception string `json:"exception"`
				} `json:"nova_object.data"`
			} `json:"reason"`
		} `json:"nova_object.data"`
	}
	if json.Unmarshal(m.Payload, &p) != nil || p.Data.Reason.Data.Exception != "NoValidHost" {
		return "", false
	}
	return p.Data.InstanceUUID, true
}
