package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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

	requests atomic.Int64 // Handler calls in flight, for Shutdown
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
	sc := &serverConn{s: s, nc: nc, peer: claim.sender, slots: make(chan struct{}, s.cfg.MaxStreams),
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
func (s *Server) full() *refusal {
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

// serverConn is one upgraded connection.
type serverConn struct {
	s      *Server
	nc     net.Conn
	peer   string // the client's node name, for logs
	r      *reader
	w      *writer
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // one per request being served: MaxStreams

	draining atomic.Bool // GoAway sent: requests are answered shutting_down
	readSeen atomic.Bool // a frame arrived since the janitor last looked
	group    string      // the last group name, reused while requests name it

	// janitor's state, under s.mu
	lastRead    time.Time
	lastFlushes uint64
	stallSince  time.Time
}

// serve reads requests until the connection ends. It acquires a slot before starting each
// request, so when MaxStreams are being served it stops reading: backpressure.
func (sc *serverConn) serve() error {
	maxKey, maxBatch := sc.s.cfg.MaxKeyBytes, sc.s.cfg.maxRequest()
	check := func(h header) error { return h.checkRequest(maxKey, maxBatch) }
	never := func(header) bool { return false }
	for {
		h, p, err := sc.r.next(check, never)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || sc.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrProtocol) || errors.Is(err, ErrTooLarge) {
				sc.s.cfg.Logger.Warn("peer wire: closing the connection", "peer", sc.peer, "err", err)
			}
			return err
		}
		sc.readSeen.Store(true)
		if h.typ == typePing {
			if err := sc.w.send(typePong, 0, h.id); err != nil {
				return err
			}
			continue
		}
		if err := sc.start(h, p); err != nil {
			return err
		}
	}
}

// start parses a request and serves it on its own goroutine once a slot is free. Errors
// returned break the connection; verdicts on the request are answered.
func (sc *serverConn) start(h header, p []byte) error {
	reply := h.typ | replyBit
	if sc.draining.Load() {
		return sc.replyError(reply, h.id, errShuttingDown)
	}
	var group, key string
	var keys []string
	switch h.typ {
	case typeFetch, typeRemove, typePurge:
		g, k, err := parseKeyRequest(p)
		if err != nil {
			return err
		}
		if h.typ == typePurge && len(k) > 0 {
			return protocolError("purge with %d bytes after the group", len(k))
		}
		group, key = sc.intern(g), string(k)
	case typeBatch:
		g, ks, err := parseBatchRequest(p, sc.s.cfg.MaxBatchKeys)
		if e := (*Error)(nil); errors.As(err, &e) {
			return sc.replyItem(h.id, allItems, Value{}, e)
		}
		if err != nil {
			return err
		}
		group, keys = g, ks
	default:
		return sc.replyError(reply, h.id, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("request type %#x not served by this version", h.typ)})
	}
	select {
	case sc.slots <- struct{}{}:
	case <-sc.ctx.Done():
		return sc.ctx.Err()
	}
	sc.s.requests.Add(1)
	go sc.run(h.typ, h.id, group, key, keys)
	return nil
}

var errShuttingDown = &Error{Code: CodeShuttingDown, Message: "node is shutting down"}

// intern returns the group name as a string, allocating only when it changes.
func (sc *serverConn) intern(g []byte) string {
	if string(g) != sc.group {
		sc.group = string(g)
	}
	return sc.group
}

// run serves one request and answers it; the slot frees once the answer is queued.
func (sc *serverConn) run(typ msgType, id uint32, group, key string, keys []string) {
	defer func() {
		if p := recover(); p != nil {
			sc.s.cfg.Logger.Error("peer wire: handler panicked", "peer", sc.peer, "group", group, "panic", p)
			_ = sc.replyError(typ|replyBit, id, &Error{Code: CodeLoadFailed, Message: "handler panicked"})
		}
		<-sc.slots
		sc.s.requests.Add(-1)
	}()
	switch typ {
	case typeFetch:
		v, err := sc.fetch(group, key)
		if err != nil {
			_ = sc.replyError(typeFetchReply, id, err)
			return
		}
		b := sc.w.begin()
		b = appendTTL(b, v.TTL)
		_ = sc.w.finish(b, typeFetchReply, 0, id, v.Bytes)
	case typeBatch:
		sc.batch(id, group, keys)
	case typeRemove:
		err := sc.checkKey(key)
		if err == nil {
			err = sc.s.h.Remove(sc.ctx, group, key)
		}
		_ = sc.ack(typeRemoveAck, id, err)
	case typePurge:
		_ = sc.ack(typePurgeAck, id, sc.s.h.Purge(sc.ctx, group))
	}
}

func (sc *serverConn) checkKey(key string) error {
	if key == "" || len(key) > sc.s.cfg.MaxKeyBytes {
		return &Error{Code: CodeInvalidKey, Message: fmt.Sprintf("key of %d bytes: must be 1 to %d", len(key), sc.s.cfg.MaxKeyBytes)}
	}
	return nil
}

// fetch asks the Handler, bounding the key and the value.
func (sc *serverConn) fetch(group, key string) (Value, error) {
	if err := sc.checkKey(key); err != nil {
		return Value{}, err
	}
	v, err := sc.s.h.Fetch(sc.ctx, group, key)
	if err == nil && len(v.Bytes) > sc.s.cfg.MaxValueBytes {
		return Value{}, &Error{Code: CodeLoadFailed, Message: fmt.Sprintf("value of %d bytes exceeds the wire's limit of %d", len(v.Bytes), sc.s.cfg.MaxValueBytes)}
	}
	return v, err
}

// batchWorkers bounds the goroutines serving one batch: a slow key holds one of them, and a
// batch of cached keys costs a few goroutines, not one per key.
const batchWorkers = 8

// batch serves the keys of one batch, answering each as soon as it is known.
func (sc *serverConn) batch(id uint32, group string, keys []string) {
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1) - 1); i < len(keys); i = int(next.Add(1) - 1) {
			v, err := sc.fetch(group, keys[i])
			_ = sc.replyItem(id, uint32(i), v, err)
		}
	}
	var wg sync.WaitGroup
	for range min(len(keys), batchWorkers) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}

func (sc *serverConn) replyItem(id, index uint32, v Value, err error) error {
	b := sc.w.begin()
	b = binary.BigEndian.AppendUint32(b, index)
	if err != nil {
		code, msg := sc.verdict(err)
		return sc.w.finish(appendErrorResult(b, code, msg), typeBatchItem, flagError, id, nil)
	}
	return sc.w.finish(appendTTL(b, v.TTL), typeBatchItem, 0, id, v.Bytes)
}

func (sc *serverConn) ack(typ msgType, id uint32, err error) error {
	if err != nil {
		return sc.replyError(typ, id, err)
	}
	return sc.w.send(typ, 0, id)
}

func (sc *serverConn) replyError(typ msgType, id uint32, err error) error {
	code, msg := sc.verdict(err)
	b := sc.w.begin()
	return sc.w.finish(appendErrorResult(b, code, msg), typ, flagError, id, nil)
}

// verdict maps a Handler's error to its code: the one place where this wire turns errors
// into codes. A failure because the node is closing is shutting_down, whatever it says.
func (sc *serverConn) verdict(err error) (Code, string) {
	if sc.ctx.Err() != nil && sc.s.life.Err() != nil {
		return CodeShuttingDown, "node is shutting down"
	}
	var e *Error
	if errors.As(err, &e) && e.Code != 0 {
		return e.Code, e.Message
	}
	return CodeLoadFailed, err.Error()
}

// goAway tells the client to send nothing more here; requests being served still complete.
func (sc *serverConn) goAway(code Code, msg string) {
	sc.draining.Store(true)
	_ = sc.nc.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
	b := sc.w.begin()
	_ = sc.w.finish(appendErrorResult(b, code, msg), typeGoAway, 0, 0, nil)
	_ = sc.nc.SetWriteDeadline(time.Time{})
}

// close ends the connection: the serve loop returns and the requests' context ends.
func (sc *serverConn) close() {
	sc.cancel()
	if tc, ok := sc.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite() // the GoAway, then FIN, before the socket goes
	}
	sc.nc.Close()
}

// check is the janitor's look at one connection, under s.mu.
func (sc *serverConn) check(now time.Time) {
	if sc.readSeen.Swap(false) || sc.lastRead.IsZero() {
		sc.lastRead = now
	}
	if len(sc.slots) == 0 && now.Sub(sc.lastRead) >= sc.s.cfg.IdleTimeout {
		go func() { sc.goAway(0, "idle"); sc.close() }()
		return
	}
	if f := sc.w.flushes.Load(); !sc.w.busy.Load() || f != sc.lastFlushes {
		sc.lastFlushes, sc.stallSince = f, now
	} else if now.Sub(sc.stallSince) >= sc.s.cfg.WriteTimeout {
		sc.s.cfg.Logger.Debug("peer wire: closing a connection that does not read its answers", "peer", sc.peer)
		go sc.close()
	}
}

var _ http.Handler = (*Server)(nil)
