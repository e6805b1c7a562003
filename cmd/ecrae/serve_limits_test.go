package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ecrae/ecrae/server"
)

// TestMessageLimitDefaultsAgree: serve, the CLI and the shim share one
// default message limit, so a pass the shim sends is one the service takes.
func TestMessageLimitDefaultsAgree(t *testing.T) {
	var c serveConfig
	fs := newFlagSet("serve", os.Stderr)
	c.limits.register(fs)
	var cf clientFlags
	cfs := newFlagSet("hosts", os.Stderr)
	cf.register(cfs)
	for _, v := range []string{fs.Lookup("grpc-max-message").DefValue, cfs.Lookup("max-message").DefValue} {
		if n, err := parseMessageSize(v); err != nil || n != server.DefaultMaxMessage {
			t.Errorf("default %q = %d (%v), want %d", v, n, err, server.DefaultMaxMessage)
		}
	}
	opts, err := os.ReadFile(filepath.Join("..", "..", "nova-shim", "ecrae_nova", "opts.py"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`'max_message_mb', default=(\d+)`).FindSubmatch(opts)
	if m == nil {
		t.Fatal("nova-shim/ecrae_nova/opts.py has no max_message_mb default")
	}
	if mb, _ := strconv.Atoi(string(m[1])); mb<<20 != server.DefaultMaxMessage {
		t.Errorf("shim's max_message_mb default is %d MiB, the service's %d MiB", mb, server.DefaultMaxMessage>>20)
	}
}

func TestParseMessageSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		err  string
	}{
		{"64MiB", 64 << 20, ""},
		{"1KiB", 1 << 10, ""},
		{"2047MiB", 2047 << 20, ""},
		{"1023", 0, "out of range"}, // below one host's state
		{"2GiB", 0, "out of range"}, // past gRPC's int32
		{"lots", 0, "is not a size"},
		{strings.Repeat("9", 1000), 0, "…(1000 bytes)"}, // quoted short
	} {
		got, err := parseMessageSize(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMessageSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || len(err.Error()) > 200):
			t.Errorf("parseMessageSize(%.20q…) error %v, want a short one with %q", tc.in, err, tc.err)
		}
	}
}
