package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves the peer wire on connections upgraded from the node's HTTP server: mount it
// (it is an http.Handler) at DefaultPath behind the node's middleware chain, so that the
// upgrade passes authentication, limits and metrics like every other request. After the
// upgrade the connection is the Server's: http.Server.Shutdown no longer tracks it, Close and
// Shutdown here end it.
type Server struct {
	cfg    ServerConfig
	h      Handler
	key    []byte // authKey(Secret), nil without a secret
	nonces *nonceCache
	life   context.Context // ends at Close: every served connection's requests end
	stop   context.CancelFunc

	mu      sync.Mutex
	conns   map[*serverConn]struct{}
	closed  bool
	janitor bool // the janitor goroutine runs

	requests atomic.Int64  // Handler calls in flight, for Shutdown
	batches  atomic.Uint64 // batch requests served
	batchKey atomic.Uint64 // keys of those batches
}

// BatchesServed returns how many batch requests this Server has served, and how many keys they
// held in all, so that a node can show how its peers batch their fetches.
func (s *Server) BatchesServed() (batches, keys uint64) {
	return s.batches.Load(), s.batchKey.Load()
}

// NewServer returns a Server that answers requests with h.
func NewServer(cfg ServerConfig, h Handler) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("wire: NewServer needs a Handler")
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, h: h, conns: make(map[*serverConn]struct{})}
	if cfg.Secret != nil {
		s.key = authKey(cfg.Secret)
		s.nonces = newNonceCache(cfg.MaxNonces)
	}
	s.life, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// ServeHTTP is Accept for use as an http.Handler; the error is logged at Debug.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := s.Accept(w, r); err != nil {
		s.cfg.Logger.Debug("peer wire connection ended", "remote", r.RemoteAddr, "peer", r.Header.Get(hdrPeer), "err", err)
	}
}

// Accept checks an upgrade request; refuses it with an HTTP error, or hijacks the connection
// through http.NewResponseController (so ResponseWriters that wrap with Unwrap work) and
// serves frames on it until it closes or the Server stops. It returns nil when the connection
// ended normally (the client closed it, or Close, Shutdown or the idle timeout did).
// Middleware sees the upgrade as one request lasting as long as the connection; a
// ResponseWriter that cannot be hijacked (HTTP/2, http.TimeoutHandler) gets a 500.
func (s *Server) Accept(w http.ResponseWriter, r *http.Request) error {
	claim, version, ref := s.checkUpgrade(r, time.Now())
	if ref == nil {
		ref = s.full()
	}
	if ref != nil {
		writeRefusal(w, ref)
		return ref
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeRefusal(w, refuse(http.StatusInternalServerError, CodeBadRequest, "%v", errHijack))
		return fmt.Errorf("%w: %w", errHijack, err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Time{}) // the http.Server's timeouts end with the upgrade
	var in io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 { // bytes the client sent after the upgrade
		early, _ := brw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc)
	}
	resp, send, rcv := s.acceptResponse(claim, version)
	sc := &serverConn{s: s, nc: nc, peer: claim.sender, version: version, slots: make(chan struct{}, s.cfg.MaxStreams),
		r: newReader(in, rcv, s.cfg.ReadBufferBytes)}
	sc.ctx, sc.cancel = context.WithCancel(s.life)
	defer sc.cancel()
	sc.w = newWriter(nc, send, s.cfg.WriteQueueBytes, func(error) { nc.Close() })
	if !s.register(sc) {
		_, _ = io.WriteString(nc, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		return errors.New("server closed during the upgrade")
	}
	defer s.unregister(sc)
	if _, err := nc.Write(resp); err != nil {
		return err
	}
	return sc.serve()
}

// full refuses an upgrade when the Server is closed or serves MaxConns connections.
func (s *Server) full() *Refusal {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return refuse(http.StatusServiceUnavailable, CodeShuttingDown, "node is shutting down")
	case len(s.conns) >= s.cfg.MaxConns:
		return refuse(http.StatusServiceUnavailable, CodeOverloaded, "too many peer connections")
	}
	return nil
}

func (s *Server) register(sc *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns) >= s.cfg.MaxConns {
		return false
	}
	s.conns[sc] = struct{}{}
	if !s.janitor {
		s.janitor = true
		go s.sweep()
	}
	return true
}

func (s *Server) unregister(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// Close refuses further upgrades, sends GoAway on every served connection and closes it; the
// requests being served see their context end, and their callers ErrUnavailable.
func (s *Server) Close() error {
	for _, sc := range s.drain() {
		sc.close()
	}
	s.stop()
	return nil
}

// Shutdown refuses further upgrades, sends GoAway on every served connection (requests that
// still arrive are answered shutting_down), waits until the requests being served are answered
// or ctx ends, then closes as Close does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.drain()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var err error
	for err == nil && s.requests.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.Close()
	return err
}

// drain marks the Server closed and sends GoAway on every connection, once.
func (s *Server) drain() []*serverConn {
	s.mu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	if first {
		for _, sc := range conns {
			sc.goAway(CodeShuttingDown, "node is shutting down")
		}
	}
	return conns
}

// sweep is the Server's one janitor: every second (or sooner, for short timeouts) it closes
// connections idle for IdleTimeout and those whose writes have not progressed for
// WriteTimeout. It stops at Close.
func (s *Server) sweep() {
	every := max(time.Millisecond, min(time.Second, s.cfg.IdleTimeout/4, s.cfg.WriteTimeout/4))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.life.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for sc := range s.conns {
				sc.check(now)
			}
			s.mu.Unlock()
		}
	}
}

var _ http.Handler = (*Server)(nil)
