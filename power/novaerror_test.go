package power

import (
	"bytes"
	"encoding/json"
	"testing"
)

// noValidHostJSON is Nova 26's compute_task.build_instances.error
// notification (doc/notification_samples/compute_task-build_instances-error.json,
// trimmed to the fields read and a few around them).
const noValidHostJSON = `{"priority": "ERROR", "event_type": "compute_task.build_instances.error",
 "publisher_id": "nova-conductor:conductor", "message_id": "m-1", "timestamp": "2026-05-01 10:00:00.000000",
 "payload": {"nova_object.name": "ComputeTaskPayload", "nova_object.namespace": "nova", "nova_object.version": "1.0",
  "nova_object.data": {"instance_uuid": "d5e6a7b7-80e5-4166-85a3-cd6115201082", "state": "error",
   "reason": {"nova_object.name": "ExceptionPayload", "nova_object.namespace": "nova", "nova_object.version": "1.1",
    "nova_object.data": {"exception": "NoValidHost", "exception_message": "No valid host was found. ",
     "function_name": "_schedule_instances", "module_name": "nova.conductor.manager", "traceback": "..."}},
   "request_spec": null}}}`

func TestNoValidHost(t *testing.T) {
	if id, ok := NoValidHost([]byte(noValidHostJSON)); !ok || id != "d5e6a7b7-80e5-4166-85a3-cd6115201082" {
		t.Errorf("plain: %q %v", id, ok)
	}
	env, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": noValidHostJSON})
	if _, ok := NoValidHost(env); !ok {
		t.Error("oslo envelope not read")
	}
	for _, s := range []string{
		`{"event_type": "compute_task.build_instances.error", "payload": {"nova_object.data": {"reason": {"nova_object.data": {"exception": "RescheduledException"}}}}}`,
		`{"event_type": "instance.create.end", "payload": {}}`,
		`not json`,
		`{"oslo.message": "{"}`,
	} {
		if _, ok := NoValidHost([]byte(s)); ok {
			t.Errorf("NoValidHost(%s) = true", s)
		}
	}
}

func FuzzNoValidHost(f *testing.F) {
	f.Add([]byte(noValidHostJSON))
	f.Add([]byte(`{"oslo.message": "{\"event_type\": \"x\"}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, ok := NoValidHost(b); ok && !bytes.Contains(b, []byte("NoValidHost")) {
			t.Errorf("NoValidHost(%q) = true without the exception's name", b)
		}
	})
}
