package main

import (
	"flag"
	"fmt"
	"math"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc"
)

// serveLimits are the size limits of `ecrae serve`'s gRPC server.
type serveLimits struct {
	maxMessage string
	max        int // parsed; 0 = server.DefaultMaxMessage
}

func (l *serveLimits) register(fs *flag.FlagSet) {
	fs.StringVar(&l.maxMessage, "grpc-max-message", defaultMaxMessage(),
		`largest gRPC message received or sent, e.g. "64MiB" (Nova sends all candidate hosts in one call; the shim's [ecrae] max_message_mb and the CLI's --max-message should match)`)
}

// parse checks the flags, before anything is opened.
func (l *serveLimits) parse() error {
	n, err := parseMessageSize(l.maxMessage)
	if err != nil {
		return fmt.Errorf("%w: --grpc-max-message: %v", errUsage, err)
	}
	l.max = n
	return nil
}

// options are the gRPC server options of the limits.
func (l *serveLimits) options() []grpc.ServerOption {
	if l.max == 0 {
		return server.MessageLimitOptions(server.DefaultMaxMessage)
	}
	return server.MessageLimitOptions(l.max)
}

func defaultMaxMessage() string { return fmt.Sprintf("%dMiB", server.DefaultMaxMessage>>20) }

// parseMessageSize reads a message limit: a size of at least 1 KiB (below
// that not even one host's state fits) that gRPC can hold in an int32.
func parseMessageSize(s string) (int, error) {
	n, err := parseBytes(s)
	if err != nil {
		return 0, err
	}
	if n < 1<<10 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%s is out of range (1KiB to 2047MiB)", quote.Value(s))
	}
	return int(n), nil
}
