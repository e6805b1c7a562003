package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecrae/ecrae/server"
	"github.com/nats-io/nats.go"
)

// TestEmbeddedNATSUsersAndTLS: with --nats-auth and --nats-tls-*, the real
// embedded server refuses clients without credentials, lets an agent
// publish only its own host's samples and Nova's notifier only
// notifications, and the service's own connection still reads everything.
func TestEmbeddedNATSUsersAndTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "nats")
	cert, key, _ := ca.issue("nats", "nats", []string{"localhost"})
	auth := filepath.Join(dir, "nats-auth.yaml")
	writeFile(t, auth, `users:
  - {user: nova, password: nova-secret, role: notifier}
  - {user: agent-c1, password: c1-secret, role: agent, host: compute1}
`)
	c := serveConfig{natsURL: "embedded", natsAddr: "127.0.0.1:0", dbPath: filepath.Join(dir, "ecrae.db"), subjectPrefix: "nova",
		natsSec: natsSecurity{tlsCert: cert, tlsKey: key, authFile: auth}}
	self, url, stop, err := startNATS(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer self.Close()
	sub, err := self.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Flush(); err != nil {
		t.Fatal(err)
	}
	tc, err := server.ClientTLS(ca.File, "", "")
	if err != nil {
		t.Fatal(err)
	}
	connect := func(opts ...nats.Option) (*nats.Conn, chan error, error) {
		errs := make(chan error, 10)
		opts = append(opts, nats.Secure(tc), nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		nc, err := nats.Connect(url, opts...)
		return nc, errs, err
	}

	// No credentials, wrong password: refused at connect.
	if _, _, err := connect(); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("no credentials: want an authorization error, got %v", err)
	}
	if _, _, err := connect(nats.UserInfo("nova", "guess")); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("wrong password: want an authorization error, got %v", err)
	}
	// Plaintext to a TLS server: refused.
	if nc, err := nats.Connect(url, nats.UserInfo("nova", "nova-secret"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Error("a plaintext client connected to the TLS server")
	}

	// publish sends one message; refused says whether the server should
	// refuse it. A refusal comes back as an -ERR that nats.go hands to the
	// error handler asynchronously: wait for it (generously) when one is
	// expected; an allowed message is checked by the service receiving it.
	publish := func(nc *nats.Conn, errs chan error, subject string, refused bool) error {
		if err := nc.Publish(subject, []byte(`{}`)); err != nil {
			return err
		}
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			return err
		}
		if !refused {
			select {
			case err := <-errs:
				return err
			default:
				return nil
			}
		}
		select {
		case err := <-errs:
			return err
		case <-time.After(20 * time.Second):
			return nil
		}
	}
	agent, agentErrs, err := connect(nats.UserInfo("agent-c1", "c1-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	for _, subj := range []string{"ecrae.metrics.compute1", "ecrae.containers.compute1", "ecrae.agent.compute2.receive"} {
		if err := publish(agent, agentErrs, subj, false); err != nil {
			t.Errorf("agent, %s: %v", subj, err)
		}
	}
	for _, subj := range []string{"ecrae.metrics.compute2", "ecrae.containers.compute2", "ecrae.agent.compute2.migrate", "nova.versioned_notifications.info.instance.create.end"} {
		if err := publish(agent, agentErrs, subj, true); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("agent of compute1 publishing %s: want a permissions violation, got %v", subj, err)
		}
	}
	nova, novaErrs, err := connect(nats.UserInfo("nova", "nova-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nova.Close()
	if err := publish(nova, novaErrs, "nova.versioned_notifications.info.instance.create.end", false); err != nil {
		t.Errorf("notifier: %v", err)
	}
	if err := publish(nova, novaErrs, "ecrae.metrics.compute1", true); err == nil {
		t.Error("the notifier published a host's samples")
	}

	// The service saw exactly the allowed messages.
	var got []string
	for {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			break
		}
		if !strings.HasPrefix(m.Subject, "$") && !strings.HasPrefix(m.Subject, "_INBOX") {
			got = append(got, m.Subject)
		}
	}
	if strings.Join(got, ",") != "ecrae.metrics.compute1,ecrae.containers.compute1,ecrae.agent.compute2.receive,nova.versioned_notifications.info.instance.create.end" {
		t.Errorf("the service received %v", got)
	}
}

func TestParseNATSAuth(t *testing.T) {
	for _, tc := range []struct{ yaml, wantErr string }{
		{"users:\n  - {user: a, password: p, role: agent, host: c1}\n", ""},
		{"", ""},
		{"users:\n  - {user: a, password: p, role: agent, host: '*'}\n", `host "*" is not one host name`},
		{"users:\n  - {user: a, password: p, role: agent, host: a.b}\n", `host "a.b" is not one host name`},
		{"users:\n  - {user: a, password: p, role: agent}\n", `host "" is not one host name`},
		{"users:\n  - {user: a, password: p, role: root}\n", `role "root": want notifier, agent or service`},
		{"users:\n  - {user: a, role: notifier}\n", "password is empty"},
		{"users:\n  - {user: a, password: p, role: notifier, host: x}\n", "host is only for role agent"},
		{"users:\n  - {user: a, password: p, role: notifier}\n  - {user: a, password: q, role: service}\n", `user "a" is listed twice`},
		{"users:\n  - {user: a, password: p, role: notifier, pasword: x}\n", "field pasword not found"},
	} {
		_, err := parseNATSAuth("f.yaml", []byte(tc.yaml))
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.wantErr)
		}
	}
}

func FuzzParseNATSAuth(f *testing.F) {
	f.Add([]byte("users:\n  - {user: a, password: p, role: agent, host: c1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := parseNATSAuth("f.yaml", b)
		if err != nil {
			return
		}
		for _, u := range users {
			if u.Role == "agent" && strings.ContainsAny(u.Host, "*>. ") {
				t.Fatalf("agent host %q accepted: it would widen the subject", u.Host)
			}
		}
	})
}

func TestRedactURLs(t *testing.T) {
	got := redactURLs("nats://nova:s3cret@h1:4222, nats://tok3n@h2:4222,tls://h3:4443")
	want := "nats://nova:REDACTED@h1:4222,nats://REDACTED@h2:4222,tls://h3:4443"
	if got != want || strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestAgentWithNATSCredentials: `ecrae agent` reaches an embedded NATS that
// requires TLS and users, with its own user's password and the CA, and its
// samples arrive on its host's subject.
func TestAgentWithNATSCredentials(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "nats")
	cert, key, _ := ca.issue("nats", "nats", []string{"localhost"})
	auth := filepath.Join(dir, "nats-auth.yaml")
	writeFile(t, auth, "users:\n  - {user: agent-c1, password: c1-secret, role: agent, host: compute1}\n")
	pw := filepath.Join(dir, "pw")
	writeFile(t, pw, "c1-secret\n")
	c := serveConfig{natsURL: "embedded", natsAddr: "127.0.0.1:0", dbPath: filepath.Join(dir, "ecrae.db"), subjectPrefix: "nova",
		natsSec: natsSecurity{tlsCert: cert, tlsKey: key, authFile: auth}}
	self, url, stop, err := startNATS(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	defer self.Close()
	sub, err := self.SubscribeSync("ecrae.metrics.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := self.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent", "--host", "compute1", "--sources", "proc", "--proc-stat", "/proc/stat", "--interval", "50ms",
			"--nats", url, "--nats-user", "agent-c1", "--nats-password-file", pw, "--nats-ca", ca.File, "--log-level", "error"},
			nil, io.Discard, io.Discard)
	}()
	m, err := sub.NextMsg(20 * time.Second)
	cancel()
	if err != nil {
		t.Fatalf("no sample from the agent: %v", err)
	}
	if m.Subject != "ecrae.metrics.compute1" {
		t.Errorf("sample on %s", m.Subject)
	}
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("agent: %v", err)
	}
}
