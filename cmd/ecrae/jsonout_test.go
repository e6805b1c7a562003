package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// unmarshalCLIJSON reads the CLI's JSON style back into a message: the
// inverse of printJSON, so tests can read --json output with proto types.
func unmarshalCLIJSON(data []byte, m proto.Message) error {
	var v any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return err
	}
	pj, err := json.Marshal(toProtoJSON(m.ProtoReflect().Descriptor(), v))
	if err != nil {
		return err
	}
	return protojson.Unmarshal(pj, m)
}

func toProtoJSON(md protoreflect.MessageDescriptor, v any) any {
	switch md.FullName() {
	case "google.protobuf.Duration":
		if n, ok := v.(json.Number); ok {
			return n.String() + "s"
		}
		return v
	case "google.protobuf.Timestamp":
		return v
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range obj {
		fd := md.Fields().ByName(protoreflect.Name(k))
		if fd == nil || x == nil {
			continue // unknown keys make protojson fail below, as they should
		}
		conv := func(x any) any { return toProtoJSONField(fd, x) }
		switch {
		case fd.IsMap():
			mp := map[string]any{}
			for mk, mv := range x.(map[string]any) {
				mp[mk] = toProtoJSONField(fd.MapValue(), mv)
			}
			out[k] = mp
		case fd.IsList():
			var arr []any
			for _, e := range x.([]any) {
				arr = append(arr, conv(e))
			}
			out[k] = arr
		default:
			out[k] = conv(x)
		}
	}
	return out
}

func toProtoJSONField(fd protoreflect.FieldDescriptor, x any) any {
	switch {
	case fd.Message() != nil:
		return toProtoJSON(fd.Message(), x)
	case fd.Enum() != nil:
		if s, ok := x.(string); ok {
			return enumPrefix(fd.Enum()) + strings.ToUpper(s)
		}
	}
	return x
}

// The style: numbers as numbers (int64 too), every field present, enums
// as words, timestamps RFC 3339, durations in seconds, and back again.
func TestJSONStyle(t *testing.T) {
	at := time.Date(2026, 12, 4, 21, 0, 0, 500_000_000, time.UTC)
	p := &ecraev1.Plan{Id: "p1", Status: ecraev1.PlanStatus_PLAN_STATUS_PLANNED, MigrationMb: 8192,
		ExpiresAt: timestamppb.New(at), Steps: []*ecraev1.PlanStep{{Index: 0, InstanceId: "vm1", MemoryMb: 4096}}}
	var b bytes.Buffer
	if err := printJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	step := doc["steps"].([]any)[0].(map[string]any)
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"migration_mb", doc["migration_mb"], 8192.0}, // int64: a number, not "8192"
		{"status", doc["status"], "planned"},
		{"expires_at", doc["expires_at"], "2026-12-04T21:00:00.5Z"},
		{"started_at", doc["started_at"], nil}, // unset: present, null
		{"note", doc["note"], ""},
		{"steps[0].index", step["index"], 0.0}, // zero: present
		{"steps[0].status", step["status"], "unspecified"},
		{"unreachable", fmt.Sprint(doc["unreachable"]), "[]"},
	} {
		if _, ok := doc[strings.Split(c.key, "[")[0]]; !ok || c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
	if strings.Count(b.String(), "\n{") != 0 || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("not one document:\n%s", b.String())
	}
	var back ecraev1.Plan
	if err := unmarshalCLIJSON(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&back, p) {
		t.Errorf("round trip: got %v, want %v", &back, p)
	}

	// A duration is seconds (90 s + 250 ms = 90.25).
	var d bytes.Buffer
	if err := printJSON(&d, map[string]any{"d": durationpb.New(90*time.Second + 250*time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.String(), `"d": 90.25`) {
		t.Errorf("duration: %s", d.String())
	}
}

func TestEnumPrefix(t *testing.T) {
	for _, c := range []struct {
		ed   protoreflect.EnumDescriptor
		want string
	}{
		{ecraev1.PlanStatus(0).Descriptor(), "PLAN_STATUS_"},
		{ecraev1.StepStatus(0).Descriptor(), "STEP_STATUS_"},
		{ecraev1.SnapshotHostState(0).Descriptor(), "SNAPSHOT_HOST_STATE_"},
		{ecraev1.ServerGroupPolicy(0).Descriptor(), "SERVER_GROUP_POLICY_"},
		{ecraev1.TagMode(0).Descriptor(), "TAG_MODE_"},
	} {
		if got := enumPrefix(c.ed); got != c.want {
			t.Errorf("%s: %q, want %q", c.ed.Name(), got, c.want)
		}
		// Every value carries the prefix, so every word is the value's own.
		for i := range c.ed.Values().Len() {
			if n := string(c.ed.Values().Get(i).Name()); !strings.HasPrefix(n, c.want) {
				t.Errorf("%s lacks the prefix %s", n, c.want)
			}
		}
	}
}
