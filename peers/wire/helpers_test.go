package wire

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// typedModified is the Last-Modified of fakeHandler's key "typed".
var typedModified = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// fakeHandler answers "value of <key>" (for a key starting with "typed", {"key":"<key>"} with
// a Content-Type and typedModified) with a TTL of one hour, ErrNotFound for "missing",
// and counts its calls; each method may be replaced.
type fakeHandler struct {
	fetch   func(ctx context.Context, group, key string) (Value, error)
	remove  func(ctx context.Context, group, key string) error
	purge   func(ctx context.Context, group string) error
	fetches atomic.Int64
	mu      sync.Mutex
	log     []string // "remove g/k", "purge g"
}

func (h *fakeHandler) Fetch(ctx context.Context, group, key string) (Value, error) {
	h.fetches.Add(1)
	if h.fetch != nil {
		return h.fetch(ctx, group, key)
	}
	switch {
	case key == "missing":
		return Value{}, &Error{Code: CodeNotFound, Message: "no such key"}
	case strings.HasPrefix(key, "typed"):
		return Value{Bytes: []byte(`{"key":"` + key + `"}`), TTL: time.Hour, ContentType: "application/json", LastModified: typedModified}, nil
	}
	return Value{Bytes: []byte("value of " + key), TTL: time.Hour}, nil
}

func (h *fakeHandler) Remove(ctx context.Context, group, key string) error {
	h.record("remove " + group + "/" + key)
	if h.remove != nil {
		return h.remove(ctx, group, key)
	}
	return nil
}

func (h *fakeHandler) Purge(ctx context.Context, group string) error {
	h.record("purge " + group)
	if h.purge != nil {
		return h.purge(ctx, group)
	}
	return nil
}

func (h *fakeHandler) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log = append(h.log, s)
}

func (h *fakeHandler) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

// testServer is a wire Server mounted at DefaultPath of a real HTTP server on 127.0.0.1.
type testServer struct {
	http     *httptest.Server
	wire     *Server
	addr     string
	conns    atomic.Int64 // TCP connections the HTTP server accepted
	requests atomic.Int64 // requests that went through the middleware
	certs    *x509.CertPool
}

type serverOptions struct {
	tls  bool
	wrap func(http.Handler) http.Handler // a middleware between the counter and the Server
}

func testServerConfig() ServerConfig {
	cfg := DefaultServerConfig()
	cfg.Name = "owner"
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

func startServer(t testing.TB, cfg ServerConfig, h Handler, opt serverOptions) *testServer {
	t.Helper()
	ws, err := NewServer(cfg, h)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := &testServer{wire: ws}
	var inner http.Handler = ws
	if opt.wrap != nil {
		inner = opt.wrap(inner)
	}
	mux := http.NewServeMux()
	mux.Handle(DefaultPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		inner.ServeHTTP(w, r)
	}))
	ts.http = httptest.NewUnstartedServer(mux)
	ts.http.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			ts.conns.Add(1)
		}
	}
	ts.http.Config.ErrorLog = log.New(io.Discard, "", 0)
	if opt.tls {
		ts.http.StartTLS()
		ts.certs = x509.NewCertPool()
		ts.certs.AddCert(ts.http.Certificate())
	} else {
		ts.http.Start()
	}
	ts.addr = ts.http.Listener.Addr().String()
	t.Cleanup(func() {
		ws.Close()
		ts.http.Close()
	})
	return ts
}

func testClientConfig(addr string) ClientConfig {
	cfg := DefaultClientConfig()
	cfg.Addr = addr
	cfg.Self = "asker"
	cfg.Peer = "owner"
	cfg.DialTimeout = time.Second
	cfg.RequestTimeout = 5 * time.Second
	cfg.PingAfter = 100 * time.Millisecond
	cfg.PingTimeout = 200 * time.Millisecond
	cfg.SweepInterval = 5 * time.Millisecond
	return cfg
}

func newClient(t testing.TB, cfg ClientConfig) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mustUnavailable fails unless err wraps ErrUnavailable and each of causes.
func mustUnavailable(t testing.TB, err error, causes ...error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	for _, c := range causes {
		if !errors.Is(err, c) {
			t.Fatalf("err = %v, want it to wrap %v", err, c)
		}
	}
}

// rawUpgrade dials addr and sends the upgrade for claim (signed with key when set); it
// returns the connection, a reader positioned after the answer's header, and the answer.
func rawUpgrade(t testing.TB, cfg ClientConfig, key []byte, claim upgradeClaim) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	cfg = cfg.withDefaults()
	nc, err := net.Dial("tcp", cfg.Addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, upgradeRequest(&cfg, key, claim)); err != nil {
		t.Fatalf("writing the upgrade: %v", err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return nc, br, resp
}

// rawFrame is a frame without a tag, as an unauthenticated connection carries it.
func rawFrame(typ msgType, flags uint8, id uint32, payload []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(payload))
	header{length: uint32(len(payload)), typ: typ, flags: flags, id: id}.put(b)
	return append(b, payload...)
}

// frameProxy forwards TCP between a client and upstream: the HTTP upgrade verbatim, then
// frame by frame (tags included, when tagged), so that a test can drop, alter, duplicate or
// inject frames in either direction, or freeze the connection as a stopped process would.
type frameProxy struct {
	ln       net.Listener
	upstream string
	tagged   bool
	// edit returns what to forward instead of frame, the n-th (from 0) of its direction
	// (toClient: server to client); nil keeps the proxy transparent.
	edit   func(toClient bool, n int, frame []byte) [][]byte
	frozen atomic.Bool
	stop   chan struct{}
}

func startProxy(t testing.TB, upstream string, tagged bool) *frameProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frameProxy{ln: ln, upstream: upstream, tagged: tagged, stop: make(chan struct{})}
	t.Cleanup(func() { close(p.stop); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *frameProxy) addr() string { return p.ln.Addr().String() }

func (p *frameProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client, false); done <- struct{}{} }()
	go func() { p.pipe(client, server, true); done <- struct{}{} }()
	select {
	case <-done:
	case <-p.stop:
	}
}

// pipe copies src to dst: the HTTP header, then frames.
func (p *frameProxy) pipe(dst, src net.Conn, toClient bool) {
	br := bufio.NewReader(src)
	var head bytes.Buffer
	for !bytes.HasSuffix(head.Bytes(), []byte("\r\n\r\n")) {
		b, err := br.ReadByte()
		if err != nil {
			return
		}
		head.WriteByte(b)
	}
	if _, err := dst.Write(head.Bytes()); err != nil {
		return
	}
	for n := 0; ; n++ {
		hdr := make([]byte, headerLen)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return
		}
		rest := int(parseHeader(hdr).length)
		if p.tagged {
			rest += tagLen
		}
		frame := append(hdr, make([]byte, rest)...)
		if _, err := io.ReadFull(br, frame[headerLen:]); err != nil {
			return
		}
		for p.frozen.Load() {
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		out := [][]byte{frame}
		if p.edit != nil {
			out = p.edit(toClient, n, frame)
		}
		for _, f := range out {
			if _, err := dst.Write(f); err != nil {
				return
			}
		}
	}
}

// tlsConfig trusts the test server's certificate.
func (ts *testServer) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: ts.certs}
}
