package testnet

import (
	"io"
	"net"
	"strconv"
	"testing"
)

// TestFreePortBelowEphemeralRange: TCP and UDP ports outside the range
// outgoing sockets take their source ports from, and free to listen on or
// bind.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	below := ephemeralStart()
	if below-lowest < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it on this machine", below)
	}
	for _, c := range []struct {
		network string
		free    func(testing.TB) int
		bind    func(addr string) (io.Closer, error)
	}{
		{"tcp", FreePort, func(a string) (io.Closer, error) { return net.Listen("tcp", a) }},
		{"udp", FreeUDPPort, func(a string) (io.Closer, error) { return net.ListenPacket("udp", a) }},
	} {
		for range 50 {
			p := c.free(t)
			if p < lowest || p >= below {
				t.Fatalf("%s port %d, want in [%d, %d)", c.network, p, lowest, below)
			}
			l, err := c.bind(net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("bind the free %s port %d: %v", c.network, p, err)
			}
			_ = l.Close()
		}
	}
	for range 50 {
		l, err := net.Listen("tcp", FreeAddr(t))
		if err != nil {
			t.Fatalf("listen on a free address: %v", err)
		}
		_ = l.Close()
	}
}

// TestFreePortsDistinct: ports picked together never repeat, though none is
// held. Without the check, 500 random picks below the range would repeat
// one almost surely: 1 − e^(−500·499/2/22768) ≈ 0.996 on Linux's default
// range (ports 10000–32767).
func TestFreePortsDistinct(t *testing.T) {
	ports := FreePorts(t, 500)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	if addrs := FreeAddrs(t, 2); addrs[0] == addrs[1] {
		t.Fatalf("FreeAddrs gave %s twice", addrs[0])
	}
}
