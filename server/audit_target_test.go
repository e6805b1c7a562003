package server

import (
	"strings"
	"testing"

	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/protobuf/proto"
)

// TestAuditTargetOneLine: an audit record's target is one line without
// tabs, whatever the request's strings hold, since `ecrae audit` prints it
// as a table cell; a long string gives only its size.
func TestAuditTargetOneLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  proto.Message
		want string
	}{
		{"short KB document", &ecraev1.ImportKnowledgeBaseRequest{Yaml: "hosts: []\n", Replace: true, Name: "e.yaml"},
			`yaml="hosts: []\n" replace=true name=e.yaml`},
		{"tab in a name", &ecraev1.ImportKnowledgeBaseRequest{Yaml: "x", Name: "a\tb"}, `yaml=x name="a\tb"`},
		// 65 bytes: past the 64 shown, so only the size.
		{"long document", &ecraev1.ImportKnowledgeBaseRequest{Yaml: strings.Repeat("h\n", 32) + "x"}, "yaml=(65 bytes)"},
		{"plain", &ecraev1.ImportKnowledgeBaseRequest{Yaml: "hosts: []", Name: "e.yaml"}, "yaml=hosts: [] name=e.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := target(tc.req)
			if got != tc.want {
				t.Errorf("target = %q, want %q", got, tc.want)
			}
			if strings.ContainsAny(got, "\n\t\r") {
				t.Errorf("target %q has a line break or tab", got)
			}
		})
	}
}
