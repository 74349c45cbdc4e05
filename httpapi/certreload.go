package httpapi

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckInterval is how often, at most, a certReloader looks at its files: a stat of two
// files once a second costs nothing, and a rotated certificate is in service within a second
// of the first handshake after the rotation.
const certCheckInterval = time.Second

// certReloader serves a certificate from a PEM pair of files and loads it again when either
// file changes, so that a rotated certificate (cert-manager, an ACME client, a cron job) is
// served without a restart. Changes are noticed by modification time and size, checked on a
// handshake at most once per certCheckInterval. A new pair that does not load (half written,
// key and certificate not matching) leaves the old certificate in service and is logged; it
// is tried again when the files change again. Safe for concurrent use: handshakes read the
// certificate without a lock.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // UnixNano before which the files are not looked at

	mu   sync.Mutex // one check at a time; handshakes that find it held go on with cert
	seen filesStamp // the files as last loaded, or as last found broken
}

// filesStamp identifies a version of the pair of files.
type filesStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// newCertReloader loads the pair once: a node must not start without a certificate.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	stamp, err := r.stamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	r.cert.Store(&cert)
	r.seen = stamp
	r.nextCheck.Store(r.now().Add(certCheckInterval).UnixNano())
	return r, nil
}

func (r *certReloader) stamp() (filesStamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return filesStamp{}, fmt.Errorf("TLS certificate: %w", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return filesStamp{}, fmt.Errorf("TLS key: %w", err)
	}
	return filesStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// current returns the certificate to serve, first loading the files again if they changed.
func (r *certReloader) current() *tls.Certificate {
	now := r.now()
	if now.UnixNano() < r.nextCheck.Load() || !r.mu.TryLock() {
		return r.cert.Load()
	}
	defer r.mu.Unlock()
	r.nextCheck.Store(now.Add(certCheckInterval).UnixNano())
	stamp, err := r.stamp()
	if err != nil {
		if stamp != r.seen {
			r.log.Warn("TLS certificate files unreadable; serving the previous certificate", "err", err)
			r.seen = stamp
		}
		return r.cert.Load()
	}
	if stamp == r.seen {
		return r.cert.Load()
	}
	r.seen = stamp
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Warn("TLS certificate changed but does not load; serving the previous one",
			"cert_file", r.certFile, "key_file", r.keyFile, "err", err)
		return r.cert.Load()
	}
	r.cert.Store(&cert)
	attrs := []any{"cert_file", r.certFile}
	if cert.Leaf != nil {
		attrs = append(attrs, "serial", cert.Leaf.SerialNumber.String(), "not_after", cert.Leaf.NotAfter)
	}
	r.log.Info("TLS certificate reloaded", attrs...)
	return &cert
}

// GetCertificate is tls.Config.GetCertificate for the node's listeners.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.current(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate for the node's own connections
// to peers: the same certificate proves this node to them (mutual TLS).
func (r *certReloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.current(), nil
}
