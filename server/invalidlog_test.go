package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// One line a minute per reason: 3 refusals of one reason within the
// minute log once; another reason logs at once; after the minute the
// first logs again, saying 2 were held back.
func TestInvalidLogOncePerReason(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_000_000, 0)
	l := NewInvalidLog(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute, func() time.Time { return now })
	icpt := l.Unary()
	call := func(method, msg string) {
		h := func(context.Context, any) (any, error) { return nil, status.Error(codes.InvalidArgument, msg) }
		icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: method}, h)
	}
	tag := `instance.tag: unknown tag "webb" (from flavor extra spec ecrae:tag)`
	for range 3 {
		call("/ecrae.v1.PlacementService/FilterHosts", tag)
	}
	call("/ecrae.v1.PlacementService/WeighHosts", "instance.flavor.vcpus: must be positive, got 0")
	call("/ecrae.v1.KnowledgeBaseService/CreateHost", tag) // an operator's call: not Nova's
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines, want 2:\n%s", n, buf.String())
	}
	now = now.Add(time.Minute)
	call("/ecrae.v1.PlacementService/FilterHosts", tag)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "held_back=2") || !strings.Contains(lines[2], "method=FilterHosts") {
		t.Errorf("after a minute:\n%s", buf.String())
	}
}
