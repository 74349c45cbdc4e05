package wire

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the peer wire to one peer address. It dials lazily, up to MaxConns connections,
// and multiplexes every request over them; it is safe for concurrent use. A Client holds one
// monitor goroutine (deadlines, liveness pings, idle connections) and one reader goroutine per
// connection, and never a goroutine per request.
type Client struct {
	cfg  ClientConfig
	key  []byte // authKey(Secret), nil without a secret
	life context.Context
	stop context.CancelFunc

	mu       sync.Mutex
	conns    []*clientConn // open connections, draining ones included (they count to MaxConns)
	dialing  int
	changed  chan struct{} // closed and replaced when a connection, a dial or a slot changes
	dialErr  error         // the last failed dial, reported during its backoff
	retryAt  time.Time     // no dial before then
	failures int           // consecutive failed dials
	closed   bool

	waiters      atomic.Int32  // callers waiting on changed: releasing a slot wakes them
	slow         atomic.Bool   // the monitor sleeps at its idle pace: kick it
	kick         chan struct{} // wakes the monitor
	dials        atomic.Uint64
	dialFailures atomic.Uint64
}

// NewClient returns a Client of the peer at cfg.Addr. It does not dial: the first request
// does.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	if cfg.Secret != nil {
		c.key = authKey(cfg.Secret)
	}
	c.life, c.stop = context.WithCancel(context.Background())
	go c.monitor()
	return c, nil
}

// Fetch asks the peer for key in group and waits for the answer, ctx's end, or the request's
// deadline (ctx's, or RequestTimeout). The error is an *Error (the peer's verdict), an error
// wrapping ErrUnavailable, or ctx's error when the caller left first.
func (c *Client) Fetch(ctx context.Context, group, key string) (Value, error) {
	if err := c.checkRequest(group, key, true); err != nil {
		return Value{}, err
	}
	cl := &call{typ: typeFetch, done: make(chan struct{})}
	if err := c.do(ctx, cl, group, key, nil); err != nil {
		return Value{}, err
	}
	return cl.val, cl.err
}

// FetchFunc sends a fetch and returns at once; done receives the answer (as Fetch returns it)
// exactly once, before the deadline or shortly after it (SweepInterval); a zero deadline is
// RequestTimeout from now. done runs on the
// connection's reader goroutine (or the caller's, when the request cannot be sent): it must
// not block. This lets a singleflight be completed by the transport, with no goroutine
// waiting per fetch.
func (c *Client) FetchFunc(group, key string, deadline time.Time, done func(Value, error)) {
	if err := c.checkRequest(group, key, true); err != nil {
		done(Value{}, err)
		return
	}
	c.doAsync(&call{typ: typeFetch, fn: done}, group, key, nil, deadline)
}

// FetchBatch asks the peer for many keys of one group in one message. It returns one Result
// per key, in order, and a nil error when the peer answered every key (each Result then holds
// a value or the peer's verdict on that key). When the connection failed part-way, the
// answered keys keep their results, the others carry the failure, and so does the error.
// When ctx ends first it returns nil and ctx's error. At most MaxBatchKeys keys.
func (c *Client) FetchBatch(ctx context.Context, group string, keys []string) ([]Result, error) {
	cl, err := c.newBatch(group, keys)
	if err != nil || len(keys) == 0 {
		return cl.results, err
	}
	cl.done = make(chan struct{})
	if err := c.do(ctx, cl, group, "", keys); err != nil {
		return nil, err
	}
	return cl.results, cl.err
}

// FetchBatchFunc is FetchBatch's asynchronous form, as FetchFunc is Fetch's.
func (c *Client) FetchBatchFunc(group string, keys []string, deadline time.Time, done func([]Result, error)) {
	cl, err := c.newBatch(group, keys)
	if err != nil || len(keys) == 0 {
		done(cl.results, err)
		return
	}
	cl.bfn = done
	c.doAsync(cl, group, "", keys, deadline)
}

func (c *Client) newBatch(group string, keys []string) (*call, error) {
	cl := &call{typ: typeBatch, results: make([]Result, len(keys))}
	if len(keys) > c.cfg.MaxBatchKeys {
		return cl, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("batch of %d keys, limit %d", len(keys), c.cfg.MaxBatchKeys)}
	}
	for i, k := range keys {
		if err := c.checkRequest(group, k, true); err != nil {
			return cl, err
		}
		cl.results[i].Err = errPending
	}
	return cl, nil
}

// Remove asks the peer to drop key from its caches and waits for its acknowledgement.
func (c *Client) Remove(ctx context.Context, group, key string) error {
	if err := c.checkRequest(group, key, true); err != nil {
		return err
	}
	cl := &call{typ: typeRemove, done: make(chan struct{})}
	if err := c.do(ctx, cl, group, key, nil); err != nil {
		return err
	}
	return cl.err
}

// Set asks the peer to store v as key's value (the set message) and waits for its
// acknowledgement. v.Bytes is only read, and must not change until Set returns.
func (c *Client) Set(ctx context.Context, group, key string, v Value) error {
	if err := c.checkRequest(group, key, true); err != nil {
		return err
	}
	if len(v.Bytes) > c.cfg.MaxValueBytes {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("value of %d bytes, limit %d, refused before sending", len(v.Bytes), c.cfg.MaxValueBytes)}
	}
	cl := &call{typ: typeSet, done: make(chan struct{}), val: v}
	if err := c.do(ctx, cl, group, key, nil); err != nil {
		return err
	}
	return cl.err
}

// Purge asks the peer to drop every key of group and waits for its acknowledgement.
func (c *Client) Purge(ctx context.Context, group string) error {
	if err := c.checkRequest(group, "", false); err != nil {
		return err
	}
	cl := &call{typ: typePurge, done: make(chan struct{})}
	if err := c.do(ctx, cl, group, "", nil); err != nil {
		return err
	}
	return cl.err
}

// Ping measures one round trip on a connection (dialling one if none is open).
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	cl := &call{typ: typePing, done: make(chan struct{})}
	if err := c.do(ctx, cl, "", "", nil); err != nil {
		return 0, err
	}
	return time.Since(start), cl.err
}

// ClientStats is a snapshot of a Client's connections.
type ClientStats struct {
	Conns        int    // open connections (at most MaxConns)
	InFlight     int    // requests sent and not answered yet
	Dials        uint64 // connections attempted
	DialFailures uint64 // of which failed
}

// Stats returns a snapshot of the Client's connections.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ClientStats{Conns: len(c.conns), Dials: c.dials.Load(), DialFailures: c.dialFailures.Load()}
	for _, cc := range c.conns {
		s.InFlight += int(cc.inflight.Load())
	}
	return s
}

// Close closes every connection; requests in flight and later ones fail with ErrUnavailable
// (ErrClosed).
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.broadcastLocked()
	c.mu.Unlock()
	c.stop()
	for _, cc := range conns {
		cc.fail(unavailable(c.cfg.Addr, ErrClosed))
	}
	return nil
}

// checkRequest refuses, before sending, what the peer would refuse.
func (c *Client) checkRequest(group, key string, withKey bool) error {
	if len(group) > MaxGroupBytes {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("group name of %d bytes, limit %d", len(group), MaxGroupBytes)}
	}
	if withKey && (key == "" || len(key) > c.cfg.MaxKeyBytes) {
		return &Error{Code: CodeInvalidKey, Message: fmt.Sprintf("key of %d bytes: must be 1 to %d, refused before sending", len(key), c.cfg.MaxKeyBytes)}
	}
	return nil
}

// do sends cl on a connection and waits for its answer or ctx. When ctx ends first, the call
// stays registered until its answer or its deadline, whichever comes first, and is dropped.
func (c *Client) do(ctx context.Context, cl *call, group, key string, keys []string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("peer %s: %w", c.cfg.Addr, err)
	}
	deadline := time.Now().Add(c.cfg.RequestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cl.deadline = deadline.UnixNano()
	cc, err := c.acquire(ctx, deadline, true)
	if err != nil {
		return err
	}
	cc.start(cl, group, key, keys)
	select {
	case <-cl.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("peer %s: %w", c.cfg.Addr, ctx.Err())
	}
}

// doAsync sends cl; when no connection has room at once (the first request, a full pool) a
// goroutine waits for one: the only case where an asynchronous call costs a goroutine.
func (c *Client) doAsync(cl *call, group, key string, keys []string, deadline time.Time) {
	if deadline.IsZero() {
		deadline = time.Now().Add(c.cfg.RequestTimeout)
	}
	cl.deadline = deadline.UnixNano()
	cc, err := c.acquire(context.Background(), deadline, false)
	if errors.Is(err, errWouldBlock) {
		go func() {
			cc, err := c.acquire(c.life, deadline, true)
			if err != nil {
				cl.finish(err)
				return
			}
			cc.start(cl, group, key, keys)
		}()
		return
	}
	if err != nil {
		cl.finish(err)
		return
	}
	cc.start(cl, group, key, keys)
}

var errWouldBlock = errors.New("no connection with room")

// acquire returns a connection with a free slot (see pick), which it takes. It dials another
// connection, one at a time, when every open one carries SpreadAt requests (up to MaxConns), waits
// (when block is set) for a dial or a slot until ctx ends or the deadline, and fails at once
// while a failed dial's backoff lasts and no connection is open.
func (c *Client) acquire(ctx context.Context, deadline time.Time, block bool) (*clientConn, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, unavailable(c.cfg.Addr, ErrClosed)
		}
		best := c.pick()
		room := best != nil && best.inflight.Load() < int32(best.streams)
		if (!room || best.inflight.Load() >= int32(c.cfg.SpreadAt)) && c.dialing == 0 && len(c.conns) < c.cfg.MaxConns {
			if now := time.Now(); now.Before(c.retryAt) {
				if best == nil && c.dialing == 0 { // nothing to wait for
					err := c.dialErr
					c.mu.Unlock()
					return nil, unavailable(c.cfg.Addr, fmt.Errorf("not redialling for %v after: %w", c.retryAt.Sub(now).Round(time.Millisecond), err))
				}
			} else {
				c.dialing++
				go c.dial()
			}
		}
		if room {
			best.inflight.Add(1)
			c.mu.Unlock()
			return best, nil
		}
		if !block {
			c.mu.Unlock()
			return nil, errWouldBlock
		}
		changed := c.changed
		c.waiters.Add(1)
		c.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
		}
		select {
		case <-changed:
			c.waiters.Add(-1)
		case <-ctx.Done():
			c.waiters.Add(-1)
			return nil, fmt.Errorf("peer %s: %w", c.cfg.Addr, ctx.Err())
		case <-timer.C:
			c.waiters.Add(-1)
			return nil, unavailable(c.cfg.Addr, fmt.Errorf("%w: waiting for a connection", ErrTimeout))
		}
	}
}

// pick returns the oldest open, not draining connection with fewer than SpreadAt requests in
// flight, or else the least loaded one. Filling one connection before the next keeps
// concurrent requests together, so that they share writes (see writer).
func (c *Client) pick() *clientConn {
	var best *clientConn
	for _, cc := range c.conns {
		if cc.draining.Load() {
			continue
		}
		n := cc.inflight.Load()
		if n < int32(c.cfg.SpreadAt) {
			return cc
		}
		if best == nil || n < best.inflight.Load() {
			best = cc
		}
	}
	return best
}

// dial opens one connection; on success this goroutine becomes its reader.
func (c *Client) dial() {
	c.dials.Add(1)
	ctx, cancel := context.WithTimeout(c.life, c.cfg.DialTimeout)
	s, err := dial(ctx, &c.cfg, c.key)
	cancel()
	var cc *clientConn
	c.mu.Lock()
	c.dialing--
	switch {
	case err != nil:
		c.dialFailures.Add(1)
		c.failures++
		c.dialErr = err
		c.retryAt = time.Now().Add(c.backoff())
	case c.closed:
		s.nc.Close()
	default:
		c.failures, c.dialErr = 0, nil
		cc = newClientConn(c, s)
		c.conns = append(c.conns, cc)
	}
	c.broadcastLocked()
	c.mu.Unlock()
	if cc != nil {
		cc.readLoop()
	}
}

// backoff is RedialMin doubled per consecutive failure up to RedialMax, with jitter so that
// the nodes of a cluster do not redial a restarted peer in step.
func (c *Client) backoff() time.Duration {
	d := c.cfg.RedialMin << min(c.failures-1, 30)
	if d <= 0 || d > c.cfg.RedialMax {
		d = c.cfg.RedialMax
	}
	return d/2 + rand.N(d/2+1)
}

func (c *Client) removeConn(cc *clientConn) {
	c.mu.Lock()
	for i, x := range c.conns {
		if x == cc {
			c.conns = append(c.conns[:i], c.conns[i+1:]...)
			break
		}
	}
	c.broadcastLocked()
	c.mu.Unlock()
}

// broadcastLocked wakes every caller waiting in acquire.
func (c *Client) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// slotFreed wakes the callers waiting for a slot, if any.
func (c *Client) slotFreed() {
	if c.waiters.Load() > 0 {
		c.mu.Lock()
		c.broadcastLocked()
		c.mu.Unlock()
	}
}
