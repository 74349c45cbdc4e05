package wire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// serverConn is one upgraded connection.
type serverConn struct {
	s    *Server
	nc   net.Conn
	peer string // the client's node name, for logs
	// version is the frame set both sides speak: results say a value is stale from 2 on.
	version int
	r       *reader
	w       *writer
	ctx     context.Context
	cancel  context.CancelFunc
	slots   chan struct{} // one per request being served: MaxStreams

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
	maxSet := sc.s.cfg.maxSet()
	check := func(h header) error {
		if (h.typ == typeSet || h.typ == typePush) && h.flags == 0 { // a push is laid out as a set
			if int64(h.length) > maxSet {
				return fmt.Errorf("%w: set of %d bytes, limit %d", ErrTooLarge, h.length, maxSet)
			}
			return nil
		}
		return h.checkRequest(maxKey, maxBatch)
	}
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
	var val Value
	switch h.typ {
	case typeSet, typePush: // a push is laid out as a set (warm.go)
		g, k, v, err := parseSetRequest(p)
		if err != nil {
			return err
		}
		// p is the reader's buffer, reused for the next frame: the value is copied once,
		// and the group keeps that copy.
		v.Bytes = append([]byte(nil), v.Bytes...)
		group, key, val = sc.intern(g), string(k), v
	case typeFetch, typeRemove, typePurge, typePeek:
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
	go sc.run(h.typ, h.id, group, key, keys, val)
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
func (sc *serverConn) run(typ msgType, id uint32, group, key string, keys []string, val Value) {
	defer func() {
		if p := recover(); p != nil { // Remove or Purge; Fetch recovers in callFetch
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
		b, flags := appendResult(sc.w.begin(), v, sc.version >= 2)
		_ = sc.w.finish(b, typeFetchReply, flags, id, v.Bytes)
	case typeBatch:
		sc.s.batches.Add(1)
		sc.s.batchKey.Add(uint64(len(keys)))
		sc.batch(id, group, keys)
	case typeRemove:
		err := sc.checkKey(key)
		if err == nil {
			err = sc.s.h.Remove(sc.ctx, group, key)
		}
		_ = sc.ack(typeRemoveAck, id, err)
	case typePurge:
		_ = sc.ack(typePurgeAck, id, sc.s.h.Purge(sc.ctx, group))
	case typeSet:
		err := sc.checkKey(key)
		if err == nil {
			if sh, ok := sc.s.h.(SetHandler); ok {
				err = sh.Set(sc.ctx, group, key, val)
			} else {
				err = &Error{Code: CodeBadRequest, Message: "this node does not store values"}
			}
		}
		_ = sc.ack(typeSetAck, id, err)
	case typePeek, typePush: // the warm hand-off's messages (warm.go)
		sc.runWarm(typ, id, group, key, val)
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
	v, err := sc.callFetch(group, key)
	if err == nil && len(v.Bytes) > sc.s.cfg.MaxValueBytes {
		return Value{}, &Error{Code: CodeLoadFailed, Message: fmt.Sprintf("value of %d bytes exceeds the wire's limit of %d", len(v.Bytes), sc.s.cfg.MaxValueBytes)}
	}
	return v, err
}

// callFetch calls the Handler, turning a panic into a load_failed answer for this key (a
// batch's other keys, and the connection, go on).
func (sc *serverConn) callFetch(group, key string) (v Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			sc.s.cfg.Logger.Error("peer wire: handler panicked", "peer", sc.peer, "group", group, "panic", p)
			v, err = Value{}, &Error{Code: CodeLoadFailed, Message: "handler panicked"}
		}
	}()
	return sc.s.h.Fetch(sc.ctx, group, key)
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
	b, flags := appendResult(b, v, sc.version >= 2)
	return sc.w.finish(b, typeBatchItem, flags, id, v.Bytes)
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
// into codes. Once the connection's context has ended (Close, a stalled or idle connection)
// every failure is shutting_down, whatever it says: it is not a verdict on the key.
func (sc *serverConn) verdict(err error) (Code, string) {
	if sc.ctx.Err() != nil {
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
	if tc, ok := sc.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite() // the GoAway, then FIN, before the socket goes
	}
	sc.nc.Close()
	sc.cancel() // after the close: a handler that ends now has nobody to answer
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
