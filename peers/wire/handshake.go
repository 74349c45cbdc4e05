package wire

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The upgrade. The client sends
//
//	GET /_peer/v2/conn HTTP/1.1
//	Connection: Upgrade
//	Upgrade: groupcached-peer/2
//	Groupcached-Wire: 2                    the highest version it speaks
//	Groupcached-Peer: <sender name>
//	Groupcached-Peer-To: <receiver name>   ┐
//	Groupcached-Peer-Time: <unix seconds>  │ with a secret only (see auth.go)
//	Groupcached-Peer-Nonce: <16 bytes>     │ base64url, no padding
//	Groupcached-Peer-Auth: <HMAC-SHA256>   ┘
//
// and the server answers 101 with Upgrade, Connection, Groupcached-Wire (the version both
// speak), Groupcached-Wire-Streams (its MaxStreams), Groupcached-Peer (its name) and, with a
// secret, its own nonce and MAC; or an HTTP error with a Groupcached-Error code: 400
// bad_request, 401 or 403 unauthorized, 503 shutting_down or overloaded.
const (
	hdrWire    = "Groupcached-Wire"
	hdrStreams = "Groupcached-Wire-Streams"
	hdrPeer    = "Groupcached-Peer"
	hdrTo      = "Groupcached-Peer-To"
	hdrTime    = "Groupcached-Peer-Time"
	hdrNonce   = "Groupcached-Peer-Nonce"
	hdrAuth    = "Groupcached-Peer-Auth"
	hdrError   = "Groupcached-Error"

	// maxHandshakeBytes bounds what a client reads of the server's answer to the upgrade.
	maxHandshakeBytes = 16 << 10
)

var b64 = base64.RawURLEncoding

// handshakeReader bounds the reads of the upgrade's answer; once the upgrade is done the
// bound is lifted (n < 0) and the same buffered reader carries the frames.
type handshakeReader struct {
	r io.Reader
	n int64
}

func (h *handshakeReader) Read(p []byte) (int, error) {
	if h.n < 0 {
		return h.r.Read(p)
	}
	if h.n == 0 {
		return 0, fmt.Errorf("%w: upgrade answer longer than %d bytes", ErrProtocol, maxHandshakeBytes)
	}
	if int64(len(p)) > h.n {
		p = p[:h.n]
	}
	n, err := h.r.Read(p)
	h.n -= int64(n)
	return n, err
}

// session is what a completed upgrade leaves: the connection, its buffered reader, and the
// frame MACs of both directions (nil without a secret).
type session struct {
	nc        net.Conn
	br        *bufio.Reader
	send, rcv *frameMAC
	streams   int
}

// dial connects to cfg.Addr and upgrades the connection, all within ctx.
func dial(ctx context.Context, cfg *ClientConfig, key []byte) (*session, error) {
	d := net.Dialer{KeepAlive: 15 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	nc := raw
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		tc.NextProtos = []string{"http/1.1"}
		if tc.ServerName == "" {
			tc.ServerName, _, _ = net.SplitHostPort(cfg.Addr)
		}
		tlsConn := tls.Client(raw, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		nc = tlsConn
	}
	s, err := upgrade(nc, cfg, key, time.Now())
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	if !stop() {
		nc.Close() // ctx ended just now and may have set a past deadline
		return nil, ctx.Err()
	}
	_ = raw.SetDeadline(time.Time{})
	return s, nil
}

// upgrade sends the upgrade request on nc and checks the answer.
func upgrade(nc net.Conn, cfg *ClientConfig, key []byte, now time.Time) (*session, error) {
	claim := newClaim(cfg, now)
	if key != nil {
		claim.nonce = newNonce()
	}
	if _, err := io.WriteString(nc, upgradeRequest(cfg, key, claim)); err != nil {
		return nil, err
	}
	hr := &handshakeReader{r: nc, n: maxHandshakeBytes}
	br := bufio.NewReaderSize(hr, cfg.ReadBufferBytes)
	s, err := readAccept(br, cfg, key, claim)
	if err != nil {
		return nil, err
	}
	hr.n = -1
	s.nc = nc
	return s, nil
}

func newClaim(cfg *ClientConfig, now time.Time) upgradeClaim {
	return upgradeClaim{method: http.MethodGet, target: cfg.Path, sender: cfg.Self,
		receiver: cfg.Peer, unix: now.Unix(), version: Version}
}

// upgradeRequest is the text of the upgrade request; signed when key is set.
func upgradeRequest(cfg *ClientConfig, key []byte, claim upgradeClaim) string {
	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %d\r\n",
		cfg.Path, cfg.Addr, UpgradeToken, hdrWire, claim.version)
	if cfg.Self != "" {
		fmt.Fprintf(&req, "%s: %s\r\n", hdrPeer, cfg.Self)
	}
	if key != nil {
		fmt.Fprintf(&req, "%s: %s\r\n%s: %d\r\n%s: %s\r\n%s: %s\r\n",
			hdrTo, cfg.Peer, hdrTime, claim.unix, hdrNonce, b64.EncodeToString(claim.nonce),
			hdrAuth, b64.EncodeToString(claim.mac(key)))
	}
	req.WriteString("\r\n")
	return req.String()
}

// readAccept reads and checks the server's answer to the upgrade.
func readAccept(br *bufio.Reader, cfg *ClientConfig, key []byte, claim upgradeClaim) (*session, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the upgrade's answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, MaxMessageBytes))
		err := fmt.Errorf("upgrade refused: HTTP %d %s: %s", resp.StatusCode, resp.Header.Get(hdrError), strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return nil, err
	}
	h := resp.Header
	if !headerHasToken(h, "Upgrade", UpgradeToken) {
		return nil, protocolError("101 answer upgrades to %q", h.Get("Upgrade"))
	}
	version, err := strconv.Atoi(h.Get(hdrWire))
	if err != nil || version < 1 || version > Version {
		return nil, protocolError("101 answer speaks version %q", h.Get(hdrWire))
	}
	streams, err := strconv.Atoi(h.Get(hdrStreams))
	if err != nil || streams < 1 || streams > 1<<16 {
		return nil, protocolError("101 answer allows %q streams", h.Get(hdrStreams))
	}
	if cfg.Peer != "" && h.Get(hdrPeer) != cfg.Peer {
		return nil, fmt.Errorf("%w: expected node %q, answered by %q", ErrAuth, cfg.Peer, h.Get(hdrPeer))
	}
	s := &session{br: br, streams: streams}
	if key == nil {
		return s, nil
	}
	serverNonce, err := b64.DecodeString(h.Get(hdrNonce))
	mac, err2 := b64.DecodeString(h.Get(hdrAuth))
	if err != nil || err2 != nil || len(serverNonce) != nonceLen ||
		!hmac.Equal(mac, acceptMAC(key, claim, serverNonce, version, streams)) {
		return nil, fmt.Errorf("%w: the server did not prove it holds the cluster secret", ErrAuth)
	}
	c2s, s2c := sessionKeys(key, claim, serverNonce)
	s.send, s.rcv = newFrameMAC(c2s), newFrameMAC(s2c)
	return s, nil
}

// Refusal is an upgrade a Server did not accept, as Accept returns it: the HTTP status and
// wire code it was answered with, and the reason told to the asker (which names no secret).
// Refusals by the authentication checks (401, 403) match ErrAuth and their cause
// (ErrUnauthenticated, ErrBadMAC, ErrOtherReceiver, ErrClockSkew, ErrNotMember, ErrReplay),
// so that the node can count and log them by kind.
type Refusal struct {
	Status int
	Code   Code
	Msg    string
	// Skew is, for ErrClockSkew, the asker's clock minus this node's, to the second.
	Skew  time.Duration
	cause error
}

func (r *Refusal) Error() string { return fmt.Sprintf("HTTP %d %s: %s", r.Status, r.Code, r.Msg) }

// Unwrap returns ErrAuth and the cause for an authentication refusal, nothing otherwise.
func (r *Refusal) Unwrap() []error {
	if r.cause == nil {
		return nil
	}
	return []error{ErrAuth, r.cause}
}

// Causes of authentication refusals, which a Refusal matches with errors.Is.
var (
	ErrUnauthenticated = errors.New("upgrade without authentication")
	ErrBadMAC          = errors.New("upgrade MAC does not verify")
	ErrOtherReceiver   = errors.New("upgrade addressed to another node")
	ErrClockSkew       = errors.New("upgrade timestamp outside the window")
	ErrNotMember       = errors.New("sender is not a member")
	ErrReplay          = errors.New("replayed upgrade")
)

func refuse(status int, code Code, format string, args ...any) *Refusal {
	return &Refusal{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// refuseAuth is a refusal by the authentication checks: 401 without authentication, 403
// otherwise.
func refuseAuth(cause error, format string, args ...any) *Refusal {
	status := http.StatusForbidden
	if cause == ErrUnauthenticated {
		status = http.StatusUnauthorized
	}
	r := refuse(status, CodeUnauthorized, format, args...)
	r.cause = cause
	return r
}

// checkUpgrade validates an upgrade request and, with a secret, its authentication. It
// returns the claim (for the answer's MAC and the session keys) and the version to speak.
// Replays are checked last, once the MAC has shown the request comes from a holder of the
// secret, so that nobody else can fill the nonce cache.
func (s *Server) checkUpgrade(r *http.Request, now time.Time) (upgradeClaim, int, *Refusal) {
	var claim upgradeClaim
	if r.Method != http.MethodGet {
		return claim, 0, refuse(http.StatusMethodNotAllowed, CodeBadRequest, "the peer upgrade is a GET")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", UpgradeToken) {
		return claim, 0, refuse(http.StatusUpgradeRequired, CodeBadRequest, "expected Upgrade: %s", UpgradeToken)
	}
	version, err := strconv.Atoi(r.Header.Get(hdrWire))
	if err != nil || version < 1 || version > 255 {
		return claim, 0, refuse(http.StatusBadRequest, CodeBadRequest, "bad %s header", hdrWire)
	}
	version = min(version, Version)
	claim = upgradeClaim{method: r.Method, target: r.RequestURI, sender: r.Header.Get(hdrPeer),
		receiver: r.Header.Get(hdrTo), version: version}
	if checkName(hdrPeer, claim.sender, true) != nil {
		return claim, 0, refuse(http.StatusBadRequest, CodeBadRequest, "missing or bad %s header", hdrPeer)
	}
	if s.key == nil {
		return claim, version, nil
	}
	ts, nonce, mac := r.Header.Get(hdrTime), r.Header.Get(hdrNonce), r.Header.Get(hdrAuth)
	if claim.receiver == "" || ts == "" || nonce == "" || mac == "" {
		return claim, 0, refuseAuth(ErrUnauthenticated, "peer authentication required")
	}
	var err1, err2, err3 error
	claim.unix, err1 = strconv.ParseInt(ts, 10, 64)
	claim.nonce, err2 = b64.DecodeString(nonce)
	sum, err3 := b64.DecodeString(mac)
	if err1 != nil || err2 != nil || err3 != nil || len(claim.nonce) != nonceLen ||
		!hmac.Equal(sum, claim.mac(s.key)) {
		return claim, 0, refuseAuth(ErrBadMAC, "bad peer authentication")
	}
	if claim.receiver != s.cfg.Name {
		return claim, 0, refuseAuth(ErrOtherReceiver, "upgrade addressed to another node")
	}
	window := int64(s.cfg.AuthWindow / time.Second)
	if d := now.Unix() - claim.unix; d > window || d < -window {
		ref := refuseAuth(ErrClockSkew, "timestamp outside the window of ±%v", s.cfg.AuthWindow)
		ref.Skew = time.Duration(-d) * time.Second
		return claim, 0, ref
	}
	if s.cfg.IsMember != nil && !s.cfg.IsMember(claim.sender, r.RemoteAddr) {
		return claim, 0, refuseAuth(ErrNotMember, "not a member of the cluster")
	}
	fresh, full := s.nonces.add(claim.nonce, claim.unix+window, now)
	if full {
		return claim, 0, refuse(http.StatusServiceUnavailable, CodeOverloaded, "too many upgrades inside the window")
	}
	if !fresh {
		return claim, 0, refuseAuth(ErrReplay, "replayed upgrade")
	}
	return claim, version, nil
}

// acceptResponse is the 101 answer, with the server's proof when authenticated, and the
// frame MACs of the connection from the server's side.
func (s *Server) acceptResponse(claim upgradeClaim, version int) (resp []byte, send, rcv *frameMAC) {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %d\r\n%s: %d\r\n",
		UpgradeToken, hdrWire, version, hdrStreams, s.cfg.MaxStreams)
	if s.cfg.Name != "" {
		fmt.Fprintf(&b, "%s: %s\r\n", hdrPeer, s.cfg.Name)
	}
	if s.key != nil {
		serverNonce := newNonce()
		fmt.Fprintf(&b, "%s: %s\r\n%s: %s\r\n", hdrNonce, b64.EncodeToString(serverNonce),
			hdrAuth, b64.EncodeToString(acceptMAC(s.key, claim, serverNonce, version, s.cfg.MaxStreams)))
		c2s, s2c := sessionKeys(s.key, claim, serverNonce)
		send, rcv = newFrameMAC(s2c), newFrameMAC(c2s)
	}
	b.WriteString("\r\n")
	return []byte(b.String()), send, rcv
}

// writeRefusal answers a refused upgrade before anything was hijacked.
func writeRefusal(w http.ResponseWriter, r *Refusal) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set(hdrError, r.Code.String())
	if r.Status == http.StatusUpgradeRequired {
		h.Set("Upgrade", UpgradeToken)
		h.Set("Connection", "Upgrade")
	}
	if r.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", "Groupcached-Peer")
	}
	w.WriteHeader(r.Status)
	_, _ = io.WriteString(w, r.Msg+"\n")
}

// headerHasToken reports whether a comma-separated header contains token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

var errHijack = errors.New("the connection cannot be hijacked (HTTP/2, or a ResponseWriter without Unwrap)")
