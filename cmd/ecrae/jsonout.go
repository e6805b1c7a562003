package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The one JSON style of every --json (docs/json.md): one document per
// invocation; proto field names; every field present, zeros included;
// numbers as numbers (protojson writes int64 as strings); enums as the word
// the tables print (PLAN_STATUS_PLANNED → "planned"); timestamps RFC 3339;
// durations in seconds; an unset message, timestamp or optional number is
// null. Keys are sorted (encoding/json sorts maps), so the output is stable
// for goldens.

// printJSON writes one value as the one JSON document of the invocation.
// Proto messages anywhere in v (directly, in maps or slices) are converted.
func printJSON(w io.Writer, v any) error {
	// Buffered, so a value that cannot be encoded writes nothing; no HTML
	// escaping: "nova.versioned_notifications.>" stays readable.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(jsonValue(v)); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// jsonValue converts proto messages inside v; other values pass unchanged.
func jsonValue(v any) any {
	switch t := v.(type) {
	case proto.Message:
		return messageJSON(t.ProtoReflect())
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = jsonValue(x)
		}
		return out
	}
	// A slice of messages ([]*ecraev1.Host): convert each.
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Type().Elem().Implements(reflect.TypeFor[proto.Message]()) {
		out := make([]any, rv.Len())
		for i := range rv.Len() {
			out[i] = jsonValue(rv.Index(i).Interface())
		}
		return out
	}
	return v
}

func messageJSON(m protoreflect.Message) any {
	if !m.IsValid() {
		return nil
	}
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp":
		s, n := m.Get(m.Descriptor().Fields().ByName("seconds")).Int(), m.Get(m.Descriptor().Fields().ByName("nanos")).Int()
		return time.Unix(s, n).UTC().Format(time.RFC3339Nano)
	case "google.protobuf.Duration":
		s, n := m.Get(m.Descriptor().Fields().ByName("seconds")).Int(), m.Get(m.Descriptor().Fields().ByName("nanos")).Int()
		return float64(s) + float64(n)/1e9
	}
	out := map[string]any{}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() && !m.Has(fd) {
			continue // one of a oneof: only the set member is the message's
		}
		name := string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			arr := make([]any, l.Len())
			for j := range l.Len() {
				arr[j] = scalarJSON(fd, l.Get(j))
			}
			out[name] = arr
		case fd.IsMap():
			mp := map[string]any{}
			v.Map().Range(func(k protoreflect.MapKey, x protoreflect.Value) bool {
				mp[k.String()] = scalarJSON(fd.MapValue(), x)
				return true
			})
			out[name] = mp
		case (fd.Message() != nil || fd.HasOptionalKeyword()) && !m.Has(fd):
			out[name] = nil // unset message, or an optional number not measured
		default:
			out[name] = scalarJSON(fd, v)
		}
	}
	return out
}

func scalarJSON(fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageJSON(v.Message())
	case protoreflect.EnumKind:
		return enumWord(fd.Enum(), v.Enum())
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint()
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil // JSON has no NaN or infinity
		}
		return f
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BytesKind:
		return v.Bytes() // base64, as encoding/json writes []byte
	}
	return v.Interface()
}

// enumWord is an enum value as the tables print it: the value's name
// without the type's prefix, lower case (PLAN_STATUS_PLANNED → planned).
func enumWord(ed protoreflect.EnumDescriptor, n protoreflect.EnumNumber) any {
	vd := ed.Values().ByNumber(n)
	if vd == nil {
		return int64(n)
	}
	return strings.ToLower(strings.TrimPrefix(string(vd.Name()), enumPrefix(ed)))
}

// enumPrefix is the type's name in upper snake case plus "_" (PlanStatus →
// PLAN_STATUS_), the buf STANDARD lint convention for value names.
func enumPrefix(ed protoreflect.EnumDescriptor) string {
	var b strings.Builder
	for i, r := range string(ed.Name()) {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String()) + "_"
}
