package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSFiles are the service's certificate, key and (for mutual TLS) the CA
// its clients' certificates must be signed by. Reload reads them again; a
// handshake always uses the last set that loaded whole, so a SIGHUP with a
// half-written file keeps serving with the previous one.
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes every client present a certificate
	// signed by it.
	ClientCAFile string

	loaded atomic.Pointer[tlsMaterial]
}

type tlsMaterial struct {
	cert     tls.Certificate
	clientCA *x509.CertPool
}

// Reload reads the files; on error the previous material stays in use.
func (f *TLSFiles) Reload() error {
	if f.CertFile == "" || f.KeyFile == "" {
		return errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", f.CertFile, f.KeyFile, err)
	}
	m := &tlsMaterial{cert: cert}
	if f.ClientCAFile != "" {
		pool, err := certPool(f.ClientCAFile)
		if err != nil {
			return fmt.Errorf("--tls-client-ca: %w", err)
		}
		m.clientCA = pool
	}
	f.loaded.Store(m)
	return nil
}

// MutualTLS reports whether clients must present a certificate.
func (f *TLSFiles) MutualTLS() bool { return f.ClientCAFile != "" }

// Config is the server's tls.Config: every handshake takes the material
// loaded last, so certificates rotate without a restart or a dropped call.
// requireClient says whether a client certificate is required (gRPC with a
// client CA) or only verified when given (HTTP, where a scraper may have none).
func (f *TLSFiles) Config(requireClient bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := f.loaded.Load()
			if m == nil {
				return nil, errors.New("no TLS certificate loaded")
			}
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.cert}, NextProtos: []string{"h2", "http/1.1"}}
			if m.clientCA != nil {
				c.ClientCAs = m.clientCA
				c.ClientAuth = tls.VerifyClientCertIfGiven
				if requireClient {
					c.ClientAuth = tls.RequireAndVerifyClientCert
				}
			}
			return c, nil
		},
	}
}

// ClientConfig is a replica's TLS towards another replica (a call it
// forwards to the leader): its own certificate, the one loaded last, for
// mutual TLS; the other's verified against the client CA (one CA signs the
// replicas), or the system roots without one. The roots are those loaded
// when ClientConfig was called: a new CA needs a restart.
func (f *TLSFiles) ClientConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			m := f.loaded.Load()
			if m == nil {
				return nil, errors.New("no TLS certificate loaded")
			}
			return &m.cert, nil
		}}
	if m := f.loaded.Load(); m != nil && m.clientCA != nil {
		c.RootCAs = m.clientCA
	}
	return c
}

// ClientTLS is a client's TLS configuration: caFile verifies the server
// (the system roots when ""), certFile and keyFile are its own certificate
// for mutual TLS (both or neither).
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := certPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		c.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", file)
	}
	return pool, nil
}
