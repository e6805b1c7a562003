package testnet

import (
	"net"
	"testing"
)

// TestFreePortBelowEphemeralRange: the port is outside the range outgoing
// connections take their source ports from, and free to listen on.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	below := ephemeralStart()
	if below-lowest < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it on this machine", below)
	}
	for range 50 {
		p := FreePort(t)
		if p < lowest || p >= below {
			t.Fatalf("port %d, want in [%d, %d)", p, lowest, below)
		}
		l, err := net.Listen("tcp", FreeAddr(t))
		if err != nil {
			t.Fatalf("listen on a free address: %v", err)
		}
		_ = l.Close()
	}
}
