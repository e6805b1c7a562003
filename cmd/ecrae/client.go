package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ecrae/ecrae/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server  string
	timeout time.Duration
	json    bool
	// The gRPC message limit, both ways (as `ecrae serve --grpc-max-message`).
	maxMessage string
	// TLS to the service (ECRAE_TLS_* variables when the flags are not
	// given), and an OpenStack token sent as x-auth-token.
	tlsCA, tlsCert, tlsKey string
	tokenEnv               string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.registerConn(fs)
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
}

// registerConn registers how to reach the service: address, deadline, TLS
// and token.
func (c *clientFlags) registerConn(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", cmp.Or(os.Getenv("ECRAE_SERVER"), "127.0.0.1:50051"), "address of ecrae serve ($ECRAE_SERVER)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "deadline of each call")
	fs.StringVar(&c.maxMessage, "max-message", defaultMaxMessage(), `largest gRPC message sent or received, e.g. "64MiB" (as ecrae serve --grpc-max-message)`)
	fs.StringVar(&c.tlsCA, "tls-ca", os.Getenv("ECRAE_TLS_CA"), "CA (PEM) that signed the service's certificate; setting it turns TLS on ($ECRAE_TLS_CA)")
	fs.StringVar(&c.tlsCert, "tls-cert", os.Getenv("ECRAE_TLS_CERT"), "client certificate (PEM) for mutual TLS ($ECRAE_TLS_CERT)")
	fs.StringVar(&c.tlsKey, "tls-key", os.Getenv("ECRAE_TLS_KEY"), "private key (PEM) of --tls-cert ($ECRAE_TLS_KEY)")
	fs.StringVar(&c.tokenEnv, "token-env", "OS_TOKEN", "environment variable holding a Keystone token to send as x-auth-token (never a flag: the process list is public)")
}

func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	if c.timeout <= 0 {
		// 0 would fail every call with DeadlineExceeded, past the service.
		return nil, fmt.Errorf("%w: --timeout %s: want a positive duration", errUsage, c.timeout)
	}
	creds := insecure.NewCredentials()
	if c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != "" {
		tc, err := server.ClientTLS(c.tlsCA, c.tlsCert, c.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		creds = credentials.NewTLS(tc)
	}
	limit := c.maxMessage
	if limit == "" { // built without its flags (tests, tosca's service calls)
		limit = defaultMaxMessage()
	}
	max, err := parseMessageSize(limit)
	if err != nil {
		return nil, fmt.Errorf("%w: --max-message: %v", errUsage, err)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(append(server.MessageLimitCallOptions(max), grpc.ForceCodecV2(server.Codec{}))...)}
	if tok := os.Getenv(c.tokenEnv); c.tokenEnv != "" && tok != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "x-auth-token", tok), method, req, reply, cc, o...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, "x-auth-token", tok), desc, cc, method, o...)
		}))
	}
	conn, err := grpc.NewClient(c.server, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.server, err)
	}
	return conn, nil
}

func (c *clientFlags) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// connect dials the service and derives the calls' context with the
// --timeout deadline; done closes both.
func (c *clientFlags) connect(ctx context.Context) (*grpc.ClientConn, context.Context, func(), error) {
	conn, err := c.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	cctx, cancel := c.call(ctx)
	return conn, cctx, func() { cancel(); conn.Close() }, nil
}

// rpcError names the server in a failed call, so "connection refused" says
// which address was tried.
func (c *clientFlags) rpcError(what string, err error) error {
	return fmt.Errorf("%s (server %s): %w", what, c.server, err)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags allows flags after positional arguments ("place FILE --json").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// readInput reads a file, or stdin for "-".
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// yamlToProto decodes YAML written with the proto's field names into m.
func yamlToProto(file string, data []byte, m proto.Message) error {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	j, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := protojson.Unmarshal(j, m); err != nil {
		// protojson's offsets refer to the JSON we made, not the file: keep
		// only its message, which names the field.
		msg := err.Error()
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+3:]
		}
		return fmt.Errorf("%s: %s", file, strings.TrimPrefix(msg, "proto: "))
	}
	return nil
}

// jsonable turns yaml.v3's map[string]any trees into what encoding/json takes.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[fmt.Sprint(k)] = jsonable(x)
		}
		return out
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	}
	return v
}

func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
