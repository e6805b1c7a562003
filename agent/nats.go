package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSPublisher publishes on a NATS connection and waits for the server's
// acknowledgement of each message (a PING/PONG round trip), so that a
// sample leaves the agent's buffer only once the server has it.
type NATSPublisher struct {
	NC      *nats.Conn
	Timeout time.Duration // per publish; 0 = 5 s
}

// Connected implements Publisher.
func (p *NATSPublisher) Connected() bool { return p.NC.IsConnected() }

// Publish implements Publisher.
func (p *NATSPublisher) Publish(ctx context.Context, subject string, data []byte) error {
	if err := p.NC.Publish(subject, data); err != nil {
		return fmt.Errorf("nats publish: %w", err)
	}
	to := p.Timeout
	if to <= 0 {
		to = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	if err := p.NC.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("nats flush: %w", err)
	}
	return nil
}

// Connect dials url and keeps reconnecting for ever, also when the server
// is not up yet at start. The returned channel receives a value at every
// (re)connection, for Run's wake. nats.go's own reconnect buffer is off:
// the agent's bounded queue is the only buffer, so drops are counted.
// extra options come last (tests set a dialer).
func Connect(url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, <-chan struct{}, error) {
	wake := make(chan struct{}, 1)
	signal := func(*nats.Conn) {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(signal),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("NATS connected", "url", nc.ConnectedUrlRedacted())
			signal(nc)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("--nats %q: %w", truncate(url), err)
	}
	return nc, wake, nil
}
