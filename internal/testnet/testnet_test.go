package testnet

import (
	"net"
	"strconv"
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

// TestFreeUDPPortBelowEphemeralRange: a UDP port outside the range
// datagram sockets take their source ports from, and free to bind.
func TestFreeUDPPortBelowEphemeralRange(t *testing.T) {
	below := ephemeralStart()
	if below-lowest < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it on this machine", below)
	}
	for range 50 {
		p := FreeUDPPort(t)
		if p < lowest || p >= below {
			t.Fatalf("port %d, want in [%d, %d)", p, lowest, below)
		}
		c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("bind the free UDP port: %v", err)
		}
		_ = c.Close()
	}
}
