package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ecrae/ecrae/audit"
	ecraev1 "github.com/ecrae/ecrae/proto/ecrae/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// pemPair writes a certificate for cn signed by parent (self-signed CA when
// parent is nil) and returns it with its key.
func pemPair(t *testing.T, dir, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	cf, kf := filepath.Join(dir, cn+".pem"), filepath.Join(dir, cn+"-key.pem")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, cf, kf
}

// TestHTTPGateRoles: over the HTTP listener's real TLS config, a console
// action stands for its gRPC method: an operator's certificate may execute
// a plan, a scheduler's may only read, no certificate may do nothing; each
// operator-level attempt is audited with who made it.
func TestHTTPGateRoles(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile, _ := pemPair(t, dir, "ca", nil, nil)
	_, _, srvCert, srvKey := pemPair(t, dir, "server", ca, caKey)
	files := &TLSFiles{CertFile: srvCert, KeyFile: srvKey, ClientCAFile: caFile}
	if err := files.Reload(); err != nil {
		t.Fatal(err)
	}
	store, err := audit.Open(filepath.Join(dir, "audit.db"), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	gate := HTTPGate{
		Authz: NewAuthorizer(RoleNames{"ops": RoleOperator, "nova": RoleScheduler}, nil, nil, nil),
		Audit: NewAuditor(store, nil),
	}
	var ran []string
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := r.URL.Query().Get("m")
		_, err := gate.Call(r, method, nil, func(ctx context.Context, _ any) (any, error) {
			ran = append(ran, Caller(ctx)+" "+method)
			return nil, nil
		})
		if err != nil {
			http.Error(w, status.Code(err).String(), http.StatusForbidden)
			return
		}
		w.Write([]byte("OK"))
	}))
	ts.TLS = files.Config(false)
	ts.StartTLS()
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	clientFor := func(cn string) *http.Client {
		cfg := &tls.Config{RootCAs: pool}
		if cn != "" {
			_, _, cf, kf := pemPair(t, dir, cn, ca, caKey)
			pair, err := tls.LoadX509KeyPair(cf, kf)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	const execute, read = "/ecrae.v1.RebalanceService/ExecutePlan", "/ecrae.v1.HostViewService/ListLiveHosts"
	for _, tc := range []struct {
		cn, method, want string
	}{
		{"ops", execute, "OK"},
		{"ops", read, "OK"},
		{"nova", read, "OK"},
		{"nova", execute, "PermissionDenied\n"},
		{"stranger", read, "PermissionDenied\n"}, // a valid certificate with no role: health only
		{"", read, "Unauthenticated\n"},
		{"", execute, "Unauthenticated\n"},
	} {
		resp, err := clientFor(tc.cn).Get(ts.URL + "/?m=" + tc.method)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 100)
		n, _ := resp.Body.Read(b)
		resp.Body.Close()
		if got := string(b[:n]); got != tc.want {
			t.Errorf("%q calling %s: %q, want %q", tc.cn, tc.method, got, tc.want)
		}
	}
	if len(ran) != 3 || ran[0] != "cert:ops "+execute {
		t.Errorf("ran %q", ran)
	}
	// ExecutePlan is operator-level: three attempts audited (ops allowed,
	// nova refused, the anonymous one refused); reads are not.
	recs, err := store.List(context.Background(), time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, r := range recs {
		codes[r.Who] = r.Code
	}
	if len(recs) != 3 || codes["cert:ops"] != "OK" || codes["cert:nova"] != "PermissionDenied" {
		t.Errorf("audit: %+v", recs)
	}
}

// TestHTTPGateOff: with authorization off, every call runs, named by the
// remote address.
func TestHTTPGateOff(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/plans/x/execute", nil)
	r.RemoteAddr = "127.0.0.1:4000"
	var who string
	if _, err := (HTTPGate{}).Call(r, "/ecrae.v1.RebalanceService/ExecutePlan", nil, func(ctx context.Context, _ any) (any, error) {
		who = Caller(ctx)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if who != "unauthenticated@127.0.0.1:4000" {
		t.Errorf("caller %q", who)
	}
}

// TestHTTPGateForwardsProtobufCalls: with Forward set (cluster mode), a
// console call whose request is a protobuf message goes through it (the
// forwarder then sends a leader-only one to the leader); a call with any
// other request (the power panel's in-process reads) runs here.
func TestHTTPGateForwardsProtobufCalls(t *testing.T) {
	var forwarded []string
	g := HTTPGate{Forward: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		forwarded = append(forwarded, info.FullMethod)
		return "from the leader", nil
	}}
	local := func(context.Context, any) (any, error) { return "here", nil }
	r := httptest.NewRequest(http.MethodPost, "/plans/x/cancel", nil)
	for _, c := range []struct {
		method string
		req    any
		want   string
	}{
		{"/ecrae.v1.RebalanceService/CancelPlan", &ecraev1.CancelPlanRequest{PlanId: "x"}, "from the leader"},
		{"/ecrae.v1.PowerService/PowerOff", &ecraev1.PowerOffRequest{Host: "c1"}, "from the leader"},
		{"/ecrae.v1.PowerService/ListPowerEvents", 100, "here"},
		{"/ecrae.v1.PowerService/GetPowerStatus", []string{"c1"}, "here"},
	} {
		out, err := g.Call(r, c.method, c.req, local)
		if err != nil || out != c.want {
			t.Errorf("%s with %T: %v, %v; want %q", c.method, c.req, out, err, c.want)
		}
	}
	if len(forwarded) != 2 {
		t.Errorf("forwarded %v, want the two protobuf calls", forwarded)
	}
}
