package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/ecrae/ecrae/internal/quote"
	"github.com/ecrae/ecrae/server"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"gopkg.in/yaml.v3"
)

// natsSecurity are serve's NATS TLS and authentication flags: for the
// embedded server (its TLS and its users) and for the service's own
// connection to an external server.
type natsSecurity struct {
	// Embedded server.
	tlsCert, tlsKey, tlsClientCA string
	authFile                     string
	// The service's connection to an external server (--nats nats://…).
	user, passwordFile, token string
	ca, cert, key             string
}

func (n *natsSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "embedded NATS: certificate (PEM) clients must verify")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "embedded NATS: private key (PEM) of --nats-tls-cert")
	fs.StringVar(&n.tlsClientCA, "nats-tls-client-ca", "", "embedded NATS: CA that must sign every client's certificate")
	fs.StringVar(&n.authFile, "nats-auth", "", "embedded NATS: users and what each may publish (YAML, see docs/security.md)")
	n.registerClient(fs, "external NATS: ")
}

// registerClient registers a NATS client's credentials and TLS flags (the
// service's connection to an external server, an agent's connection).
func (n *natsSecurity) registerClient(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&n.user, "nats-user", "", prefix+"user of the connection")
	fs.StringVar(&n.passwordFile, "nats-password-file", "", prefix+"file holding the password of --nats-user")
	fs.StringVar(&n.token, "nats-token-file", "", prefix+"file holding an authentication token")
	fs.StringVar(&n.ca, "nats-ca", "", prefix+"CA (PEM) to verify the server")
	fs.StringVar(&n.cert, "nats-cert", "", prefix+"client certificate (PEM) for mutual TLS")
	fs.StringVar(&n.key, "nats-key", "", prefix+"private key (PEM) of --nats-cert")
}

// natsSecured reports whether the embedded server authenticates and
// encrypts its clients, so listening beyond loopback is acceptable.
func (c serveConfig) natsSecured() bool {
	return c.natsSec.tlsCert != "" && c.natsSec.authFile != ""
}

// NATSUser is one user of the embedded server (the --nats-auth file).
type NATSUser struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"` // plain, or a bcrypt hash ("$2a$…") as nats-server takes it
	// Role decides what the user may publish: notifier (Nova: the
	// versioned notifications under the prefix), agent (its own host's
	// samples), service (ECRAE itself: everything).
	Role string `yaml:"role"`
	// Host is the agent's host: it may publish ecrae.metrics.<Host> and
	// ecrae.containers.<Host>, and take migrations for <Host>.
	Host string `yaml:"host"`
}

type natsAuthFile struct {
	Users []NATSUser `yaml:"users"`
}

// hostSubjectToken is what a host name may be to stand in a subject token.
var hostSubjectToken = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}$`)

// parseNATSAuth reads the --nats-auth YAML, refusing unknown fields.
func parseNATSAuth(file string, b []byte) ([]NATSUser, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f natsAuthFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--nats-auth %s: %w", file, err)
	}
	seen := map[string]bool{}
	for i, u := range f.Users {
		at := fmt.Sprintf("--nats-auth %s: users[%d]", file, i)
		switch {
		case u.User == "":
			return nil, fmt.Errorf("%s: user is empty", at)
		case seen[u.User]:
			return nil, fmt.Errorf("%s: user %s is listed twice", at, quote.Value(u.User))
		case u.Password == "":
			return nil, fmt.Errorf("%s (%s): password is empty", at, quote.Value(u.User))
		}
		seen[u.User] = true
		switch u.Role {
		case "notifier", "service":
			if u.Host != "" {
				return nil, fmt.Errorf("%s (%s): host is only for role agent", at, quote.Value(u.User))
			}
		case "agent":
			// A host with a wildcard or a dot would let the agent publish
			// for other hosts ("*", ">", "a.b" are subject syntax).
			if !hostSubjectToken.MatchString(u.Host) || strings.ContainsAny(u.Host, "*>.") {
				return nil, fmt.Errorf("%s (%s): host %s is not one host name (letters, digits, - and _)", at, quote.Value(u.User), quote.Value(u.Host))
			}
		default:
			return nil, fmt.Errorf("%s (%s): role %s: want notifier, agent or service", at, quote.Value(u.User), quote.Value(u.Role))
		}
	}
	return f.Users, nil
}

// natsPermissions is what a role may do on the embedded server.
func natsPermissions(u NATSUser, prefix string) *natsserver.Permissions {
	// Replies (request/reply, JetStream publish acks) come on inboxes.
	inbox := &natsserver.SubjectPermission{Allow: []string{"_INBOX.>"}}
	switch u.Role {
	case "notifier":
		return &natsserver.Permissions{Publish: &natsserver.SubjectPermission{Allow: []string{prefix + ".versioned_notifications.>"}}, Subscribe: inbox}
	case "agent":
		// Its samples and containers; container migration (agent/container):
		// it takes requests for its own host, answers them, and asks other
		// agents to receive a container.
		return &natsserver.Permissions{
			Publish:   &natsserver.SubjectPermission{Allow: []string{"ecrae.metrics." + u.Host, "ecrae.containers." + u.Host, "ecrae.agent.*.receive"}},
			Subscribe: &natsserver.SubjectPermission{Allow: []string{"_INBOX.>", "ecrae.agent." + u.Host + ".migrate", "ecrae.agent." + u.Host + ".receive"}},
			Response:  &natsserver.ResponsePermission{MaxMsgs: 1},
		}
	}
	return nil // service: everything
}

// embeddedOptions adds TLS and users to the embedded server's options and
// returns the credentials of the service's own in-process connection.
func (n *natsSecurity) embeddedOptions(o *natsserver.Options, prefix string) ([]nats.Option, error) {
	if (n.tlsCert == "") != (n.tlsKey == "") {
		return nil, fmt.Errorf("%w: --nats-tls-cert and --nats-tls-key go together", errUsage)
	}
	if n.tlsCert != "" {
		tc, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: n.tlsCert, KeyFile: n.tlsKey, CaFile: n.tlsClientCA, Verify: n.tlsClientCA != ""})
		if err != nil {
			return nil, fmt.Errorf("%w: --nats-tls-cert: %v", errUsage, err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify = tc, true, n.tlsClientCA != ""
	} else if n.tlsClientCA != "" {
		return nil, fmt.Errorf("%w: --nats-tls-client-ca needs --nats-tls-cert and --nats-tls-key", errUsage)
	}
	if n.authFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(n.authFile)
	if err != nil {
		return nil, fmt.Errorf("%w: --nats-auth: %v", errUsage, err)
	}
	users, err := parseNATSAuth(n.authFile, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	// The service's own connection is in-process: a user of its own with
	// a password that never leaves the process.
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	self := NATSUser{User: "ecrae-internal-" + hex.EncodeToString(secret[:4]), Password: hex.EncodeToString(secret), Role: "service"}
	for _, u := range append(users, self) {
		o.Users = append(o.Users, &natsserver.User{Username: u.User, Password: u.Password, Permissions: natsPermissions(u, prefix)})
	}
	return []nats.Option{nats.UserInfo(self.User, self.Password)}, nil
}

// externalOptions are the service's credentials and TLS for an external
// server.
func (n *natsSecurity) externalOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if n.passwordFile != "" && n.user == "" {
		return nil, fmt.Errorf("%w: --nats-password-file needs --nats-user", errUsage)
	}
	if n.user != "" {
		pw, err := readSecret("--nats-password-file", n.passwordFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserInfo(n.user, pw))
	}
	if n.token != "" {
		tok, err := readSecret("--nats-token-file", n.token)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(tok))
	}
	if n.ca != "" || n.cert != "" || n.key != "" {
		tc, err := server.ClientTLS(n.ca, n.cert, n.key)
		if err != nil {
			return nil, fmt.Errorf("%w: --nats-ca/--nats-cert/--nats-key: %v", errUsage, err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// readSecret reads a one-line secret from a file (never from a flag, which
// any local user can read in the process list).
func readSecret(flagName, file string) (string, error) {
	if file == "" {
		return "", fmt.Errorf("%w: %s is required", errUsage, flagName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", errUsage, flagName, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%w: %s %s is empty", errUsage, flagName, file)
	}
	return s, nil
}

// redactURLs hides the password (or token) of each URL in a comma-separated
// list of NATS URLs.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, hasPW := u.User.Password(); hasPW {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		} else {
			u.User = url.User("REDACTED") // a bare token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
