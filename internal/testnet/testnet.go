// Package testnet gives tests loopback addresses for processes they start
// later: a server's own port, or a cluster route every member must know
// before any starts.
package testnet

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// lowest is the lowest port handed out: above the well-known and most
// registered service ports.
const lowest = 10000

// FreeAddr returns 127.0.0.1:PORT with a port nothing listens on now, taken
// below the kernel's ephemeral range. A port from that range (what a
// listen on port 0 gives) can be taken, before the process meant to
// listen on it starts, as the source port of any outgoing connection: a
// NATS route dialling a member not yet up took one in TestThreeReplicas
// ("address already in use"). Below the range only an explicit bind
// competes, and the random pick makes two tests' picks rarely meet.
//
// Addresses picked before anything listens on them must come from one
// FreeAddrs call: two FreeAddr calls can return the same free port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrs(t, 1)[0]
}

// FreeAddrs is n distinct FreeAddr addresses, for processes that must all
// know each other's addresses before any of them listens (a cluster's
// routes, a service's gRPC, HTTP and NATS ports).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i, p := range FreePorts(t, n) {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	return addrs
}

// FreePort is FreeAddr's port.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts is FreeAddrs' ports. Each pick is free to listen on, and
// differs from the others: a port is only checked free, not held, so
// without the check twelve picks for three replicas met about once in
// 350 runs (12·11/2 pairs over some 22,000 ports).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for len(ports) < n {
		if p := freePort(t); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// FreeUDPPort is FreePort for a UDP peer started later (a BMC on RMCP+):
// an ephemeral UDP port can be taken meanwhile as the source port of any
// datagram socket, the test's own IPMI client's included, and the peer
// then never binds.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	return pick(t, "udp")
}

func freePort(t testing.TB) int {
	t.Helper()
	return pick(t, "tcp")
}

// bind listens on addr over network ("tcp" or "udp").
func bind(network, addr string) (net.Addr, io.Closer, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		return c.LocalAddr(), c, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	return l.Addr(), l, nil
}

// pick is a random port below the ephemeral range that network can bind
// now, else the kernel's choice.
func pick(t testing.TB, network string) int {
	t.Helper()
	below := ephemeralStart()
	for range 200 {
		if below-lowest < 1000 {
			break // no room below the range on this machine
		}
		p := lowest + rand.IntN(below-lowest)
		if _, c, err := bind(network, fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			_ = c.Close()
			return p
		}
	}
	a, c, err := bind(network, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(a.String())
	n, _ := strconv.Atoi(port)
	return n
}

// ephemeralStart is the first port of the kernel's ephemeral range
// (Linux's default when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
