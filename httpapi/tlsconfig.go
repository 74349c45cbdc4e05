package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/groupcached/groupcached/group"
)

// TLSConfig serves a node's HTTP port (and its PeerAddr) over TLS, from PEM files.
type TLSConfig struct {
	// CertFile and KeyFile hold the certificate chain the node serves and its private key.
	// Both required. They are read again when either changes (modification time or size,
	// looked at most once a second, on a handshake), so a rotated certificate is served
	// without a restart; a new pair that does not load (half written, key and certificate
	// not matching) leaves the old one in service, is logged at WARN, and is tried again
	// when the files next change. The same certificate is this node's client certificate
	// when it dials peers (see Node.ClientTLS): give it both the serverAuth and the
	// clientAuth extended key usages when ClientCAFile is set on the cluster.
	CertFile string
	KeyFile  string

	// ClientCAFile is a PEM bundle of the CAs whose client certificates the node accepts.
	// Set: a client that presents a certificate must present one of theirs, or the handshake
	// fails; a client without one is served, and the admin token decides what it may do.
	// Peers present the node's certificate and are verified the same way; what admits them
	// to the peer wire is the cluster secret (peers.Config.SecretKey). Read once, by
	// NewNode. Zero: clients are not asked for certificates.
	ClientCAFile string

	// CAFile is a PEM bundle of the CAs this node trusts when it dials peers over TLS
	// (Node.ClientTLS). Read once, by NewNode. Zero: ClientCAFile, or the system's roots
	// when that is empty too.
	CAFile string
}

// Validate reports the missing files, each as a *group.FieldError. Whether they load is
// NewNode's business.
func (c TLSConfig) Validate() error {
	var errs []error
	if c.CertFile == "" {
		errs = append(errs, group.FieldErrorf("CertFile", "required with TLS: the PEM certificate chain to serve"))
	}
	if c.KeyFile == "" {
		errs = append(errs, group.FieldErrorf("KeyFile", "required with TLS: the PEM private key of CertFile"))
	}
	return errors.Join(errs...)
}

// nodeTLS is what a node builds from its TLSConfig: the listeners' configuration and the
// one for dialling peers, sharing the reloaded certificate.
type nodeTLS struct {
	server *tls.Config
	client *tls.Config
}

func newNodeTLS(c TLSConfig, log *slog.Logger) (*nodeTLS, error) {
	certs, err := newCertReloader(c.CertFile, c.KeyFile, log)
	if err != nil {
		return nil, err
	}
	server := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.GetCertificate,
	}
	var clientCAs *x509.CertPool
	if c.ClientCAFile != "" {
		if clientCAs, err = loadCertPool(c.ClientCAFile); err != nil {
			return nil, fmt.Errorf("client CA: %w", err)
		}
		server.ClientCAs = clientCAs
		server.ClientAuth = tls.VerifyClientCertIfGiven
	}
	roots := clientCAs
	if c.CAFile != "" {
		if roots, err = loadCertPool(c.CAFile); err != nil {
			return nil, fmt.Errorf("CA: %w", err)
		}
	}
	client := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		RootCAs:              roots,
		GetClientCertificate: certs.GetClientCertificate,
	}
	return &nodeTLS{server: server, client: client}, nil
}

// loadCertPool reads a PEM bundle of CA certificates.
func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
