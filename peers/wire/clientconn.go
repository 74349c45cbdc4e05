package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// call is one request in flight. Whoever removes it from its connection's pending map (the
// reader with the answer, the monitor at the deadline, the failure of the connection)
// completes it, once.
type call struct {
	typ      msgType
	id       uint32
	deadline int64 // unix nanoseconds

	// how the caller learns the answer: exactly one is set
	done chan struct{}         // closed: blocking calls
	fn   func(Value, error)    // FetchFunc
	bfn  func([]Result, error) // FetchBatchFunc

	val      Value // a set's value, sent; a fetch's, received
	err      error
	results  []Result // batch: Err is errPending until the key is answered
	answered int
}

var errPending = errors.New("not answered yet")

// finish completes the call with a failure: every key of a batch not answered yet gets it.
func (cl *call) finish(err error) {
	cl.err = err
	for i := range cl.results {
		if cl.results[i].Err == errPending {
			cl.results[i] = Result{Err: err}
		}
	}
	cl.complete()
}

func (cl *call) complete() {
	switch {
	case cl.done != nil:
		close(cl.done)
	case cl.fn != nil:
		cl.fn(cl.val, cl.err)
	case cl.bfn != nil:
		cl.bfn(cl.results, cl.err)
	}
}

// clientConn is one connection of a Client.
type clientConn struct {
	c       *Client
	nc      net.Conn
	w       *writer
	r       *reader
	streams int // requests in flight allowed: min(MaxStreams, the server's)

	mu      sync.Mutex
	pending map[uint32]*call
	nextID  uint32
	err     error // set once the connection failed; every call fails with it

	inflight atomic.Int32 // slots taken: pending calls and calls about to be sent
	draining atomic.Bool  // GoAway received: no new requests
	readSeen atomic.Bool  // a frame arrived since the monitor last looked

	// the monitor's state
	lastRead, pingSent, idleSince time.Time
}

func newClientConn(c *Client, s *session) *clientConn {
	cc := &clientConn{c: c, nc: s.nc, streams: min(c.cfg.MaxStreams, s.streams), pending: make(map[uint32]*call)}
	cc.r = newReader(s.br, s.rcv, c.cfg.ReadBufferBytes)
	cc.w = newWriter(s.nc, s.send, 1<<20, func(err error) { cc.fail(unavailable(c.cfg.Addr, err)) })
	cc.lastRead = time.Now()
	return cc
}

// start registers cl and sends its request; it holds one of the connection's slots. A failure
// to write completes cl (and every other call of the connection) with ErrUnavailable.
func (cc *clientConn) start(cl *call, group, key string, keys []string) {
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		cc.release()
		cl.finish(err)
		return
	}
	id := cc.nextID + 1
	for id == 0 || cc.pending[id] != nil {
		id++
	}
	cc.nextID = id
	cl.id = id
	cc.pending[id] = cl
	cc.mu.Unlock()
	if cc.c.slow.Load() && cc.c.slow.CompareAndSwap(true, false) {
		select {
		case cc.c.kick <- struct{}{}:
		default:
		}
	}
	b := cc.w.begin()
	switch cl.typ {
	case typeFetch, typeRemove, typePurge, typePeek: // a peek is laid out as a fetch (warm.go)
		b = appendKeyRequest(b, group, key)
	case typeBatch:
		b = appendBatchRequest(b, group, keys)
	case typeSet, typePush: // a push is laid out as a set (warm.go)
		b = appendSetRequest(b, group, key, cl.val)
		_ = cc.w.finish(b, cl.typ, 0, id, cl.val.Bytes)
		return
	}
	_ = cc.w.finish(b, cl.typ, 0, id, nil)
}

// release frees the slot of a completed call.
func (cc *clientConn) release() {
	cc.inflight.Add(-1)
	cc.c.slotFreed()
}

// take removes the call of id from pending; nil if it is gone (answered after its deadline).
// A draining connection closes once its last call is answered.
func (cc *clientConn) take(id uint32) *call {
	cc.mu.Lock()
	cl := cc.pending[id]
	delete(cc.pending, id)
	last := len(cc.pending) == 0 && cc.draining.Load()
	cc.mu.Unlock()
	if last {
		cc.nc.Close()
	}
	return cl
}

// fail closes the connection and completes every pending call with err.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = err
	calls := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	cc.nc.Close()
	cc.c.removeConn(cc)
	for _, cl := range calls {
		cl.finish(err)
		cc.release()
	}
}

// readLoop reads answers until the connection fails.
func (cc *clientConn) readLoop() {
	maxValue := cc.c.cfg.MaxValueBytes
	check := func(h header) error { return h.checkReply(maxValue) }
	// A success (with or without metadata) is a value the caller keeps; an error is not.
	own := func(h header) bool {
		return h.flags&flagError == 0 && (h.typ == typeFetchReply || h.typ == typeBatchItem || h.typ == typePeekReply)
	}
	for {
		h, p, err := cc.r.next(check, own)
		if err == nil {
			cc.readSeen.Store(true)
			err = cc.handle(h, p)
		}
		if err != nil {
			if cc.draining.Load() && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)) {
				err = fmt.Errorf("%w: %w", ErrGoAway, err)
			}
			cc.fail(unavailable(cc.c.cfg.Addr, err))
			return
		}
	}
}

// handle dispatches one frame; an error breaks the connection.
func (cc *clientConn) handle(h header, p []byte) error {
	switch h.typ {
	case typeGoAway:
		cc.mu.Lock()
		cc.draining.Store(true)
		idle := len(cc.pending) == 0
		cc.mu.Unlock()
		cc.c.slotFreed() // waiters pick another connection or dial
		if idle {
			cc.nc.Close()
		}
		return nil
	case typePong:
		if h.id == 0 {
			return nil // the monitor's liveness ping: readSeen said it all
		}
	case typeBatchItem:
		return cc.batchItem(h, p)
	}
	cl := cc.take(h.id)
	if cl == nil {
		return nil
	}
	var err error
	switch {
	case cl.typ|replyBit != h.typ:
		err = protocolError("reply type %#x to request type %#x", h.typ, cl.typ)
	case h.typ == typeFetchReply || h.typ == typePeekReply:
		cl.val, cl.err = parseResult(h.flags, p, true)
	case h.typ == typeRemoveAck || h.typ == typePurgeAck || h.typ == typeSetAck || h.typ == typePushAck:
		_, cl.err = parseResult(h.flags, p, false)
	}
	if err == nil && errors.Is(cl.err, ErrProtocol) {
		err = cl.err
	}
	if err != nil {
		cl.finish(unavailable(cc.c.cfg.Addr, err))
	} else {
		cl.err = cc.verdict(cl.err)
		cl.complete()
	}
	cc.release()
	return err
}

// verdict turns the codes that mean "ask someone else" into ErrUnavailable.
func (cc *clientConn) verdict(err error) error {
	if CodeOf(err).unavailable() {
		return unavailable(cc.c.cfg.Addr, err)
	}
	return err
}

// batchItem records one key's answer; the batch completes with its last key.
func (cc *clientConn) batchItem(h header, p []byte) error {
	if len(p) < indexLen {
		return protocolError("batch item without an index")
	}
	index := binary.BigEndian.Uint32(p)
	v, err := parseResult(h.flags, p[indexLen:], true)
	if errors.Is(err, ErrProtocol) {
		return err
	}
	err = cc.verdict(err)
	cc.mu.Lock()
	cl := cc.pending[h.id]
	switch {
	case cl == nil:
		cc.mu.Unlock()
		return nil
	case cl.typ != typeBatch:
		cc.mu.Unlock()
		return protocolError("batch item for request type %#x", cl.typ)
	case index == allItems && err != nil:
		cl.err = err
		for i := range cl.results {
			if cl.results[i].Err == errPending {
				cl.results[i] = Result{Err: err}
			}
		}
		cl.answered = len(cl.results)
	case int64(index) >= int64(len(cl.results)) || cl.results[index].Err != errPending:
		cc.mu.Unlock()
		return protocolError("batch item %d of %d answered twice or out of range", index, len(cl.results))
	default:
		cl.results[index] = Result{Value: v, Err: err}
		cl.answered++
	}
	done := cl.answered == len(cl.results)
	last := false
	if done {
		delete(cc.pending, h.id) // in the same critical section: the monitor cannot expire it now
		last = len(cc.pending) == 0 && cc.draining.Load()
	}
	cc.mu.Unlock()
	if last {
		cc.nc.Close()
	}
	if done {
		cl.complete()
		cc.release()
	}
	return nil
}

// tick is the monitor's look at the connection: liveness, deadlines, idleness. It reports
// whether calls are in flight.
func (cc *clientConn) tick(now time.Time) (busy bool) {
	cfg := &cc.c.cfg
	if cc.readSeen.Swap(false) {
		cc.lastRead, cc.pingSent = now, time.Time{}
	}
	if cc.inflight.Load() == 0 {
		cc.lastRead = now
		if cc.idleSince.IsZero() {
			cc.idleSince = now
		} else if now.Sub(cc.idleSince) >= cfg.IdleTimeout {
			cc.closeIdle()
		}
		return false
	}
	cc.idleSince = time.Time{}
	switch {
	case cc.pingSent.IsZero() && now.Sub(cc.lastRead) >= cfg.PingAfter:
		cc.pingSent = now
		go func() { _ = cc.w.send(typePing, 0, 0) }() // the writer may be stuck: never here
	case !cc.pingSent.IsZero() && now.Sub(cc.pingSent) >= cfg.PingTimeout:
		cc.fail(unavailable(cfg.Addr, fmt.Errorf("%w within %v after %v of silence", ErrNoPong, cfg.PingTimeout, cfg.PingAfter)))
		return false
	}
	var expired []*call
	nowNano := now.UnixNano()
	cc.mu.Lock()
	for id, cl := range cc.pending {
		if cl.deadline <= nowNano {
			delete(cc.pending, id)
			expired = append(expired, cl)
		}
	}
	cc.mu.Unlock()
	for _, cl := range expired {
		cl.finish(unavailable(cfg.Addr, ErrTimeout))
		cc.release()
	}
	return true
}

// closeIdle closes the connection if it is still idle; under the Client's lock, so that no
// caller takes a slot on it meanwhile.
func (cc *clientConn) closeIdle() {
	c := cc.c
	c.mu.Lock()
	if cc.inflight.Load() != 0 {
		c.mu.Unlock()
		return
	}
	for i, x := range c.conns {
		if x == cc {
			c.conns = append(c.conns[:i], c.conns[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	cc.fail(unavailable(c.cfg.Addr, fmt.Errorf("%w: idle for %v", ErrClosed, c.cfg.IdleTimeout)))
}

// monitor runs every SweepInterval while calls are in flight, and at an idle pace while
// connections are open and idle; with no connection it sleeps until kicked.
func (c *Client) monitor() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	idlePace := min(time.Second, c.cfg.IdleTimeout/4)
	var conns []*clientConn
	for {
		c.mu.Lock()
		conns = append(conns[:0], c.conns...)
		c.mu.Unlock()
		now, busy := time.Now(), false
		for _, cc := range conns {
			busy = cc.tick(now) || busy
		}
		clear(conns)
		if !busy {
			c.slow.Store(true)
			if c.anyInFlight() { // a call started after its connection's tick: no kick was sent
				c.slow.Store(false)
				busy = true
			}
		}
		switch {
		case busy:
			timer.Reset(c.cfg.SweepInterval)
		case len(conns) > 0:
			timer.Reset(idlePace)
		default:
			timer.Stop()
		}
		select {
		case <-c.life.Done():
			return
		case <-c.kick:
		case <-timer.C:
		}
	}
}

func (c *Client) anyInFlight() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		if cc.inflight.Load() > 0 {
			return true
		}
	}
	return false
}
