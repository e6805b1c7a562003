package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// preflight checks, before serve opens or creates anything (the KB file,
// the NATS store), that the addresses it will listen on are free: a taken
// port fails at once, naming its flag, and leaves no fresh .db behind.
// (Another process may still take a port in between; the real listen then
// fails as before.)
func preflight(c serveConfig) error {
	addrs := []struct{ flag, addr string }{{"--grpc-addr", c.grpcAddr}, {"--http-addr", c.httpAddr}}
	if c.natsURL == "embedded" {
		addrs = append(addrs, struct{ flag, addr string }{"--nats-addr", c.natsAddr})
	}
	var errs []error
	for _, a := range addrs {
		if a.addr == "" || strings.HasSuffix(a.addr, ":0") {
			continue // any free port
		}
		l, err := net.Listen("tcp", a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", a.flag, a.addr, err))
			continue
		}
		l.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot listen (nothing was started or created): %w", errors.Join(errs...))
	}
	return nil
}
