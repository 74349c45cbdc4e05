package httpapi

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// newConnGrace is how long a new connection that has not sent a request yet (or is still in
// its TLS handshake) is safe from eviction: long enough for any client to send its first
// request, short enough that a flood of silent sockets only delays the accept queue.
const newConnGrace = 250 * time.Millisecond

// connLimiter is a net.Listener that caps the connections open on it, so that a flood of
// sockets cannot take the process's file descriptors or lock normal clients out.
//
// At the cap, a new connection makes room by closing the connection that has waited longest
// without a request in progress: an idle keep-alive connection, or a new one silent for more
// than newConnGrace. Only when every connection is busy (serving a request, or too new to
// judge) does Accept wait, holding the newcomer, until one finishes its request or closes. A
// flood of idle or silent sockets thus only evicts its own kind, while a client that sends
// its request at once is served. Beyond the cap, idle keep-alive connections are bounded by
// maxIdle (when positive): the oldest idle is closed when one more goes idle.
//
// The server that serves it must report to ConnState (http.Server.ConnState). Connections
// hijacked from the server (an Upgrade, such as the peer wire's) still count until closed
// but are never evicted.
type connLimiter struct {
	net.Listener
	max, maxIdle int

	mu      sync.Mutex
	conns   map[*limitedConn]struct{}
	idle    atomic.Int64  // connections in StateIdle
	waiting atomic.Bool   // Accept waits for a connection to finish or close
	changed chan struct{} // a connection went idle or closed (capacity 1)
	done    chan struct{} // closed by Close
	once    sync.Once

	evicted atomic.Int64 // connections closed to make room or to bound the idle ones
}

func newConnLimiter(l net.Listener, maxConns, maxIdle int) *connLimiter {
	return &connLimiter{
		Listener: l, max: maxConns, maxIdle: maxIdle,
		conns:   make(map[*limitedConn]struct{}),
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// limitedConn is a connection of a connLimiter. Its state is what the server last reported.
type limitedConn struct {
	net.Conn
	l      *connLimiter
	state  atomic.Int32 // an http.ConnState
	since  atomic.Int64 // UnixNano of the accept, then of the last time it went idle
	closed sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.l.forget(c) })
	return err
}

// Accept accepts a connection, then makes room for it (see connLimiter).
func (l *connLimiter) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if err := l.makeRoom(); err != nil {
		raw.Close()
		return nil, err
	}
	c := &limitedConn{Conn: raw, l: l}
	c.since.Store(time.Now().UnixNano())
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	return c, nil
}

// makeRoom returns once fewer than max connections are open, evicting or waiting.
func (l *connLimiter) makeRoom() error {
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			return nil
		}
		victim, retry := l.oldest(true, time.Now())
		if victim == nil {
			l.waiting.Store(true)
		} else if !l.claim(victim) {
			victim = nil // it changed state since oldest read it: look again
			retry = time.Nanosecond
		}
		l.mu.Unlock()
		if victim != nil {
			l.evict(victim)
			continue
		}
		if retry == time.Nanosecond {
			continue
		}
		if err := l.wait(retry); err != nil {
			return err
		}
	}
}

// wait waits until a connection goes idle or closes, or for retry when positive.
func (l *connLimiter) wait(retry time.Duration) error {
	defer l.waiting.Store(false)
	var timeout <-chan time.Time
	if retry > 0 {
		t := time.NewTimer(retry)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-l.changed:
	case <-timeout:
	case <-l.done:
		return net.ErrClosed
	}
	return nil
}

// oldest returns the idle connection that has waited longest, or with withNew a new one
// silent for more than newConnGrace if it waited longer. When it finds none but a new
// connection will pass its grace, retry says in how long. l.mu must be held.
func (l *connLimiter) oldest(withNew bool, now time.Time) (victim *limitedConn, retry time.Duration) {
	var victimSince int64
	graceEnd := now.Add(-newConnGrace).UnixNano()
	for c := range l.conns {
		since := c.since.Load()
		switch http.ConnState(c.state.Load()) {
		case http.StateIdle:
		case http.StateNew:
			if !withNew {
				continue
			}
			if since > graceEnd {
				if wait := time.Duration(since - graceEnd); retry == 0 || wait < retry {
					retry = wait
				}
				continue
			}
		default:
			continue
		}
		if victim == nil || since < victimSince {
			victim, victimSince = c, since
		}
	}
	return victim, retry
}

// claim marks c, idle or new, as closed before it is evicted, so that two goroutines that
// both picked it as the oldest do not evict it twice and count one eviction for two: the
// second finds it claimed and picks another. l.mu must be held, so that the count of idle
// connections the bound is checked against is current.
func (l *connLimiter) claim(c *limitedConn) bool {
	s := c.state.Load()
	if http.ConnState(s) != http.StateIdle && http.ConnState(s) != http.StateNew {
		return false
	}
	if !c.state.CompareAndSwap(s, int32(http.StateClosed)) {
		return false
	}
	if http.ConnState(s) == http.StateIdle {
		l.idle.Add(-1)
	}
	return true
}

func (l *connLimiter) evict(c *limitedConn) {
	l.evicted.Add(1)
	_ = c.Close()
}

// forget drops a closed connection and wakes an Accept waiting for room.
func (l *connLimiter) forget(c *limitedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	if http.ConnState(c.state.Swap(int32(http.StateClosed))) == http.StateIdle {
		l.idle.Add(-1)
	}
	l.wake()
}

func (l *connLimiter) wake() {
	if l.waiting.Load() {
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// connState is the server's http.Server.ConnState: it records each connection's state, wakes
// an Accept waiting for room when one goes idle, and bounds the idle ones.
func (l *connLimiter) connState(nc net.Conn, state http.ConnState) {
	c := l.unwrap(nc)
	if c == nil || state == http.StateClosed {
		return // Close has forgotten it
	}
	prev := http.ConnState(c.state.Swap(int32(state)))
	if prev == http.StateClosed {
		c.state.Store(int32(http.StateClosed)) // closed meanwhile: keep it so
		return
	}
	switch {
	case prev == http.StateIdle && state != http.StateIdle:
		l.idle.Add(-1)
	case prev != http.StateIdle && state == http.StateIdle:
		c.since.Store(time.Now().UnixNano()) // only the idle and the new are ranked by age
		if l.idle.Add(1) > int64(l.maxIdle) && l.maxIdle > 0 {
			// Connections going idle at once each come here: the check and the claim are
			// made under l.mu, so that together they close exactly the excess.
			for {
				l.mu.Lock()
				var victim *limitedConn
				claimed := false
				if l.idle.Load() > int64(l.maxIdle) {
					if victim, _ = l.oldest(false, time.Now()); victim != nil {
						claimed = l.claim(victim) // else it left the idle state: look again
					}
				}
				l.mu.Unlock()
				if victim == nil {
					break
				}
				if claimed {
					l.evict(victim)
				}
			}
		}
		l.wake()
	}
}

// unwrap finds the limitedConn under the connection the server reports: itself, or the
// connection under a *tls.Conn.
func (l *connLimiter) unwrap(nc net.Conn) *limitedConn {
	for range 2 {
		if c, ok := nc.(*limitedConn); ok && c.l == l {
			return c
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// open returns how many connections are open.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Close stops accepting, and releases an Accept waiting for room. Open connections are the
// server's to close.
func (l *connLimiter) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}
