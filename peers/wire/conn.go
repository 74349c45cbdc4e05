package wire

import (
	"bufio"
	"crypto/hmac"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
)

// writer is the sending half of a connection, shared by every goroutine that sends on it.
//
// It coalesces without delaying: a sender appends its frame to the queue under the lock and,
// if no write is in progress, becomes the flusher and writes the queue at once (a lone request
// costs one syscall, no Nagle-like wait); frames that other senders append while that write is
// in the kernel go out together in the flusher's next write. Values above bigBody bytes are not
// copied: they join the queue as their own segment of one writev.
//
// The queue is bounded: a sender waits while more than maxQueued bytes are queued, so a peer
// that stops reading holds its senders (and, on the server, their stream slots) instead of
// growing memory. A stuck write ends when the connection is closed by its owner's monitor.
type writer struct {
	nc        net.Conn
	maxQueued int
	onError   func(error) // called once, outside the lock, when a write fails

	mu       sync.Mutex
	space    sync.Cond // signalled when the flusher has drained the queue
	q, spare writeQueue
	flushing bool
	waiting  int // senders waiting in space.Wait
	err      error
	mac      *frameMAC // nil without authentication
	start    int       // offset of the frame being built in q.arena

	busy    atomic.Bool   // a write is in the kernel
	flushes atomic.Uint64 // writes completed, for the monitor's stall check
}

// bigBody is the size above which a value is written from its own memory instead of copied.
const bigBody = 4 << 10

// writeQueue is the bytes waiting to be written: small frames in arena, big values as their
// own segments, in order.
type writeQueue struct {
	arena []byte
	cut   int // arena[:cut] is already in segs
	segs  net.Buffers
	size  int
}

func (q *writeQueue) big(b []byte) {
	if len(q.arena) > q.cut {
		q.segs = append(q.segs, q.arena[q.cut:])
		q.cut = len(q.arena)
	}
	q.segs = append(q.segs, b)
}

func (q *writeQueue) take() net.Buffers {
	if len(q.arena) > q.cut {
		q.segs = append(q.segs, q.arena[q.cut:])
		q.cut = len(q.arena)
	}
	return q.segs
}

func (q *writeQueue) reset() {
	clear(q.segs) // drop references to values
	q.segs = q.segs[:0]
	if cap(q.arena) > 1<<20 {
		q.arena = nil // a burst of big frames is not kept for ever
	}
	q.arena, q.cut, q.size = q.arena[:0], 0, 0
}

func newWriter(nc net.Conn, mac *frameMAC, maxQueued int, onError func(error)) *writer {
	w := &writer{nc: nc, mac: mac, maxQueued: maxQueued, onError: onError}
	w.space.L = &w.mu
	return w
}

// begin locks the writer and returns the queue's arena with a header placeholder appended;
// the caller appends the payload's small part and passes the slice to finish.
func (w *writer) begin() []byte {
	w.mu.Lock()
	for w.q.size > w.maxQueued && w.flushing && w.err == nil {
		w.waiting++
		w.space.Wait()
		w.waiting--
	}
	w.start = len(w.q.arena)
	return append(w.q.arena, make([]byte, headerLen)...)
}

// finish completes the frame begun with begin: b is the arena with the small part of the
// payload appended, body (possibly nil) the rest. It writes the queue unless a write is in
// progress, and unlocks. It returns the connection's write error, if any: the frame is then
// dropped.
func (w *writer) finish(b []byte, typ msgType, flags uint8, id uint32, body []byte) error {
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	hdr := b[w.start : w.start+headerLen]
	header{length: uint32(len(b) - w.start - headerLen + len(body)), typ: typ, flags: flags, id: id}.put(hdr)
	small := len(body) <= bigBody
	if small {
		b = append(b, body...)
	}
	var tag []byte
	if w.mac != nil && small {
		tag = w.mac.tag(b[w.start:], nil, nil)
	} else if w.mac != nil {
		tag = w.mac.tag(b[w.start:], body, nil)
	}
	w.q.arena = b
	w.q.size += len(b) - w.start
	if !small {
		w.q.big(body)
		w.q.size += len(body)
	}
	if tag != nil {
		w.q.arena = append(w.q.arena, tag...)
		w.q.size += len(tag)
	}
	if w.flushing {
		w.mu.Unlock()
		return nil
	}
	return w.flush()
}

// flush writes the queue until it is empty, with the lock held on entry and released on
// return. Others append to the other queue while a write is in the kernel.
func (w *writer) flush() error {
	w.flushing = true
	// Yield once before writing: senders that are runnable on this P (the callers the reader
	// just completed, the server's request goroutines) append their frames first and go out
	// in the same write. It is not a timed delay: with nothing else runnable it returns at once.
	w.mu.Unlock()
	runtime.Gosched()
	w.mu.Lock()
	var err error
	for w.q.size > 0 && err == nil {
		w.q, w.spare = w.spare, w.q
		bufs := w.spare.take()
		w.mu.Unlock()
		w.busy.Store(true)
		if len(bufs) == 1 {
			_, err = w.nc.Write(bufs[0])
		} else {
			_, err = bufs.WriteTo(w.nc)
		}
		w.busy.Store(false)
		w.flushes.Add(1)
		w.mu.Lock()
		w.spare.reset()
		if w.waiting > 0 {
			w.space.Broadcast()
		}
	}
	w.flushing = false
	if err != nil && w.err == nil {
		w.err = err
		w.q.reset()
		w.space.Broadcast()
		w.mu.Unlock()
		w.onError(err)
		return err
	}
	err = w.err
	w.mu.Unlock()
	return err
}

// send writes a frame whose payload parts are all small: requests, acks, control frames.
func (w *writer) send(typ msgType, flags uint8, id uint32, payload ...[]byte) error {
	b := w.begin()
	for _, p := range payload {
		b = append(b, p...)
	}
	return w.finish(b, typ, flags, id, nil)
}

// reader is the receiving half of a connection, used by one goroutine. It checks each header
// against the limits before allocating for its payload, and the tag before the payload is
// used.
type reader struct {
	br      *bufio.Reader
	mac     *frameMAC // nil without authentication
	hdr     [headerLen]byte
	tag     [tagLen]byte
	scratch []byte
}

func newReader(r io.Reader, mac *frameMAC, size int) *reader {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < size {
		br = bufio.NewReaderSize(r, size)
	}
	return &reader{br: br, mac: mac}
}

// next reads one frame. check validates the header; the payload is read into a reused
// buffer (valid until the next call) unless own says the caller keeps it, in which case it is
// a new allocation of exactly the declared length.
func (r *reader) next(check func(header) error, own func(header) bool) (header, []byte, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return header{}, nil, err
	}
	h := parseHeader(r.hdr[:])
	if err := check(h); err != nil {
		return h, nil, err
	}
	var p []byte
	if own(h) {
		p = make([]byte, h.length)
	} else {
		if cap(r.scratch) < int(h.length) {
			r.scratch = make([]byte, h.length)
		}
		p = r.scratch[:h.length]
	}
	if _, err := io.ReadFull(r.br, p); err != nil {
		return h, nil, noEOF(err)
	}
	if r.mac != nil {
		if _, err := io.ReadFull(r.br, r.tag[:]); err != nil {
			return h, nil, noEOF(err)
		}
		if !hmac.Equal(r.mac.tag(r.hdr[:], p, nil), r.tag[:]) {
			return h, nil, protocolError("frame tag does not verify (tampered, injected, replayed or reordered)")
		}
	}
	return h, p, nil
}

// noEOF turns an EOF inside a frame into ErrUnexpectedEOF: the peer broke off mid-frame.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
