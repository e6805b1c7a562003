package kbstore

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseYAML: ParseYAML never panics, fails only with a
// *ValidationError, and whatever it accepts survives EncodeYAML→ParseYAML.
func FuzzParseYAML(f *testing.F) {
	f.Add(DefaultYAML())
	for _, tc := range parseCases() {
		f.Add([]byte(tc.yaml))
	}
	// The Validate table, as YAML: each seed is one mutation away from valid.
	if good, err := EncodeYAML(testKB()); err == nil {
		f.Add(good)
	}
	for _, tc := range validateCases() {
		kb := testKB()
		tc.mutate(kb)
		if data, err := EncodeYAML(kb); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kb, err := ParseYAML("fuzz.yaml", data)
		// CheckYAML (kb validate) agrees with ParseYAML (kb import
		// --replace): no error exactly when it accepts.
		all := CheckYAML("fuzz.yaml", data, nil)
		if (err == nil) != (len(all) == 0) {
			t.Fatalf("ParseYAML: %v; CheckYAML: %v", err, all)
		}
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("ParseYAML error %T (%v), want *ValidationError", err, err)
			}
			return
		}
		if err := Validate(kb); err != nil {
			t.Fatalf("ParseYAML accepted a KB that Validate rejects: %v", err)
		}
		out, err := EncodeYAML(kb)
		if err != nil {
			t.Fatalf("EncodeYAML: %v", err)
		}
		back, err := ParseYAML("round.yaml", out)
		if err != nil {
			t.Fatalf("re-parse of EncodeYAML output: %v\n%s", err, out)
		}
		if diff := cmp.Diff(sortedCopy(kb), back); diff != "" {
			t.Fatalf("round trip changed the KB (-parsed +reparsed):\n%s\n%s", diff, out)
		}
	})
}
