package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/ecrae/ecrae/power"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// forwarding, in cluster mode, advertises this replica's gRPC address in
// the lease and returns the interceptor that forwards leader-only calls
// (rebalance writes, power) from a follower to the leader, over TLS with
// this replica's certificate when the service uses TLS. Outside cluster
// mode it returns nothing. Call it after start, before the lease runs.
func (c *clusterServe) forwarding(grpcAddr string, tlsFiles *server.TLSFiles, maxMessage int, log *slog.Logger) ([]grpc.UnaryServerInterceptor, error) {
	if !c.on() || c.st.lease == nil {
		return nil, nil
	}
	addr, err := advertised(c.advertise, grpcAddr)
	if err != nil {
		return nil, err
	}
	c.st.lease.Advertise(addr)
	creds := insecure.NewCredentials()
	if tlsFiles != nil {
		creds = credentials.NewTLS(tlsFiles.ClientConfig())
	}
	if maxMessage <= 0 {
		maxMessage = server.DefaultMaxMessage
	}
	// A forwarded call carries what the caller sent and the leader's answer.
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage))}
	c.st.forwarder = server.NewForwarder(c.st.lease, creds, log.With("part", "forward"), opts...)
	log.Info("cluster mode: leader-only calls are forwarded to the leader", "advertised_grpc", addr, "tls", tlsFiles != nil)
	return []grpc.UnaryServerInterceptor{c.st.forwarder.Unary()}, nil
}

// consoleForward is the forwarder's interceptor for the web console's
// calls (nil outside cluster mode).
func (c *clusterServe) consoleForward() grpc.UnaryServerInterceptor {
	if !c.on() || c.st.forwarder == nil {
		return nil
	}
	return c.st.forwarder.Unary()
}

// advertised is --grpc-advertise, else --grpc-addr with this machine's
// name when it listens on every address.
func advertised(flagValue, grpcAddr string) (string, error) {
	if flagValue != "" {
		if host, port, err := net.SplitHostPort(flagValue); err != nil || host == "" || port == "" {
			return "", fmt.Errorf("%w: --grpc-advertise %q: want HOST:PORT", errUsage, truncateArg(flagValue))
		}
		return flagValue, nil
	}
	host, port, err := net.SplitHostPort(grpcAddr)
	if err != nil {
		return "", fmt.Errorf("%w: --grpc-addr %q: %v", errUsage, truncateArg(grpcAddr), err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		name, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--grpc-addr %s listens everywhere and the hostname is unknown (%v): give --grpc-advertise", grpcAddr, err)
		}
		host = name
	}
	return net.JoinHostPort(host, port), nil
}

// powerFence is the power manager's fence: the leader lease in cluster
// mode, none otherwise.
func (c *clusterServe) powerFence() power.Fence {
	if !c.on() || c.st.lease == nil {
		return nil
	}
	return c.st.lease
}
