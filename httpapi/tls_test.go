package httpapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA issues certificates for 127.0.0.1 in a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// issue returns the PEM certificate and key of a leaf for 127.0.0.1 with serial, good for
// serving and for client authentication.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func (ca *testCA) clientCert(t *testing.T, serial int64) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, serial)
	cert, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// writeFileAtomic replaces path with data in one rename, as certificate rotators do.
func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsFiles writes a leaf of ca with serial and ca's certificate into dir.
func tlsFiles(t *testing.T, dir string, ca *testCA, serial int64) TLSConfig {
	t.Helper()
	c := TLSConfig{
		CertFile:     filepath.Join(dir, "cert.pem"),
		KeyFile:      filepath.Join(dir, "key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"),
	}
	certPEM, keyPEM := ca.issue(t, serial)
	writeFileAtomic(t, c.KeyFile, keyPEM)
	writeFileAtomic(t, c.CertFile, certPEM)
	writeFileAtomic(t, c.ClientCAFile, ca.pem)
	return c
}

// servedSerial makes a new TLS connection to addr and returns the serial of the certificate
// the node served, and what GET /readyz answered on it.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) (int64, int, error) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.StatusCode, nil
}

// TestNodeServesTLSAndReloadsItsCertificate serves a node over TLS with a certificate made by
// the test, rotates the certificate on disk and polls new connections until they see the new
// serial; then a broken file on disk keeps the last good certificate in service.
func TestNodeServesTLSAndReloadsItsCertificate(t *testing.T) {
	ca := newTestCA(t, "test CA")
	dir := t.TempDir()
	files := tlsFiles(t, dir, ca, 100)
	files.ClientCAFile = ""
	logs := &syncBuffer{}
	cfg := aloneConfig()
	cfg.TLS = &files
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	n := startNodeValue(t, cfg, &origin{})
	trust := &tls.Config{RootCAs: ca.pool()}

	serial, status, err := servedSerial(t, n.Addr(), trust)
	if err != nil || serial != 100 || status != http.StatusOK {
		t.Fatalf("first connection: serial %d, status %d, %v; want 100, 200", serial, status, err)
	}
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + n.Addr() + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the TLS port answered plain HTTP")
		}
	}

	certPEM, keyPEM := ca.issue(t, 200)
	writeFileAtomic(t, files.KeyFile, keyPEM)
	writeFileAtomic(t, files.CertFile, certPEM)
	poll(t, 10*time.Second, "a new connection sees the rotated certificate", func() bool {
		serial, _, err := servedSerial(t, n.Addr(), trust)
		if err != nil {
			t.Fatalf("during the rotation: %v", err)
		}
		return serial == 200
	})

	writeFileAtomic(t, files.CertFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	poll(t, 10*time.Second, "the broken certificate is noticed and logged", func() bool {
		if _, _, err := servedSerial(t, n.Addr(), trust); err != nil {
			t.Fatalf("after a broken certificate was written: %v", err)
		}
		return strings.Contains(logs.String(), "does not load")
	})
	if serial, _, err := servedSerial(t, n.Addr(), trust); err != nil || serial != 200 {
		t.Errorf("with a broken file on disk: serial %d, %v; want the last good one, 200", serial, err)
	}
}

// TestNodeTLSClientCertificates: with a client CA, a client certificate of that CA is
// accepted, a client without one is served, and one of another CA fails the handshake. The
// node's ClientTLS trusts the CA and presents the node's certificate.
func TestNodeTLSClientCertificates(t *testing.T) {
	ca, other := newTestCA(t, "cluster CA"), newTestCA(t, "other CA")
	files := tlsFiles(t, t.TempDir(), ca, 7)
	var (
		mu   sync.Mutex
		seen []int64 // serials of the client certificates the handler saw
	)
	cfg := aloneConfig()
	cfg.TLS = &files
	cfg.API.Middleware = []Middleware{func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				mu.Lock()
				seen = append(seen, r.TLS.PeerCertificates[0].SerialNumber.Int64())
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		})
	}}
	n := startNodeValue(t, cfg, &origin{})

	good := ca.clientCert(t, 31)
	foreign := other.clientCert(t, 32)
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"certificate of the client CA", []tls.Certificate{good}, true},
		{"no certificate", nil, true},
		{"certificate of another CA", []tls.Certificate{foreign}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// GetClientCertificate sends the certificate whatever CAs the server names
			// (Certificates would quietly send none that does not match).
			cc := &tls.Config{RootCAs: ca.pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if len(tc.certs) == 0 {
					return &tls.Certificate{}, nil
				}
				return &tc.certs[0], nil
			}}
			_, status, err := servedSerial(t, n.Addr(), cc)
			if tc.wantOK && (err != nil || status != http.StatusOK) {
				t.Errorf("status %d, %v; want 200", status, err)
			}
			if !tc.wantOK && err == nil {
				t.Errorf("served (status %d); want the handshake refused", status)
			}
		})
	}

	ct := n.ClientTLS()
	if ct == nil {
		t.Fatal("ClientTLS is nil on a TLS node")
	}
	if _, status, err := servedSerial(t, n.Addr(), ct); err != nil || status != http.StatusOK {
		t.Fatalf("dialling with ClientTLS: %d, %v", status, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != 31 || seen[1] != 7 {
		t.Errorf("client certificates seen by the handler: %v, want [31 7] (the good client's, then the node's own)", seen)
	}
	if n.ClientTLS() == ct {
		t.Error("ClientTLS returns the same value twice; callers may modify their copy")
	}
}

func TestNodeTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "CA")
	files := tlsFiles(t, dir, ca, 1)
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"no files", TLSConfig{}, "CertFile"},
		{"missing key", TLSConfig{CertFile: files.CertFile, KeyFile: filepath.Join(dir, "none.pem")}, "TLS key"},
		{"key of another certificate", TLSConfig{CertFile: files.CertFile, KeyFile: files.ClientCAFile}, "loading the TLS certificate"},
		{"client CA without certificates", TLSConfig{CertFile: files.CertFile, KeyFile: files.KeyFile, ClientCAFile: files.KeyFile}, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aloneConfig()
			cfg.TLS = &tc.tls
			_, err := NewNode(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewNode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if n := mustNode(t, aloneConfig(), &origin{}); n.ClientTLS() != nil {
		t.Error("ClientTLS is not nil on a node without TLS")
	}
}
