package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// blockingHandler's fetches wait until release is closed or their context ends.
func blockingHandler(release <-chan struct{}) *fakeHandler {
	return &fakeHandler{fetch: func(ctx context.Context, _, key string) (Value, error) {
		select {
		case <-release:
			return Value{Bytes: []byte("late " + key)}, nil
		case <-ctx.Done():
			return Value{}, ctx.Err()
		}
	}}
}

func (ts *testServer) served() int {
	ts.wire.mu.Lock()
	defer ts.wire.mu.Unlock()
	return len(ts.wire.conns)
}

func TestConcurrentFetchesShareFewConnections(t *testing.T) {
	for _, maxConns := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("MaxConns=%d", maxConns), func(t *testing.T) {
			h := &fakeHandler{fetch: func(_ context.Context, _, key string) (Value, error) {
				time.Sleep(time.Millisecond) // a load: requests overlap
				return Value{Bytes: []byte(key)}, nil
			}}
			ts := startServer(t, testServerConfig(), h, serverOptions{})
			cfg := testClientConfig(ts.addr)
			cfg.MaxConns = maxConns
			c := newClient(t, cfg)
			const n = 500
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					key := fmt.Sprint("k", i)
					v, err := c.Fetch(context.Background(), "g", key)
					if err == nil && string(v.Bytes) != key {
						err = fmt.Errorf("value %q for %q", v.Bytes, key)
					}
					if err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("fetch failed: %v", err)
			}
			if got := ts.conns.Load(); got < 1 || got > int64(maxConns) {
				t.Errorf("server accepted %d TCP connections, want 1..%d", got, maxConns)
			}
			t.Logf("%d concurrent fetches: %d connections (MaxConns %d), %d dials", n, ts.conns.Load(), maxConns, c.Stats().Dials)
		})
	}
}

// The client keeps to the server's stream limit: callers beyond it wait for a slot.
func TestClientWaitsForTheServersStreamLimit(t *testing.T) {
	release := make(chan struct{})
	h := blockingHandler(release)
	scfg := testServerConfig()
	scfg.MaxStreams = 2
	ts := startServer(t, scfg, h, serverOptions{})
	cfg := testClientConfig(ts.addr)
	cfg.MaxConns = 1
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if _, err := c.Fetch(context.Background(), "g", fmt.Sprint(i)); err != nil {
				t.Errorf("fetch %d: %v", i, err)
			}
		})
	}
	waitFor(t, 5*time.Second, "2 requests in flight and 3 waiting", func() bool {
		return c.Stats().InFlight == 2 && c.waiters.Load() == 3 && h.fetches.Load() == 2
	})
	close(release)
	wg.Wait()
	if h.fetches.Load() != 5 {
		t.Errorf("%d fetches served, want 5", h.fetches.Load())
	}
}

// A client that ignores the stream limit finds the server reading no more: backpressure.
func TestServerStopsReadingAtItsStreamLimit(t *testing.T) {
	release := make(chan struct{})
	h := blockingHandler(release)
	scfg := testServerConfig()
	scfg.MaxStreams = 2
	ts := startServer(t, scfg, h, serverOptions{})
	nc, br, resp := rawUpgrade(t, testClientConfig(ts.addr), nil, newClaim(&ClientConfig{Path: DefaultPath, Self: "raw"}, time.Now()))
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	for id := uint32(1); id <= 3; id++ {
		nc.Write(rawFrame(typeFetch, 0, id, appendKeyRequest(nil, "g", fmt.Sprint(id))))
	}
	nc.Write(rawFrame(typePing, 0, 9, nil))
	waitFor(t, 5*time.Second, "two fetches started", func() bool { return h.fetches.Load() == 2 })
	_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := br.Peek(1); !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		t.Fatalf("read while the server is full: %v; want no answer (not even the pong)", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	close(release)
	seen := map[msgType]int{}
	for range 4 {
		hdr := make([]byte, headerLen)
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatalf("reading answers: %v", err)
		}
		h := parseHeader(hdr)
		io.CopyN(io.Discard, br, int64(h.length))
		seen[h.typ]++
	}
	if seen[typeFetchReply] != 3 || seen[typePong] != 1 {
		t.Errorf("answers %v, want 3 fetch replies and a pong", seen)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUnresponsivePeers(t *testing.T) {
	t.Run("accepts TCP, never answers the upgrade", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var mu sync.Mutex
		var held []net.Conn
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range held {
				c.Close()
			}
		}()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
		cfg := testClientConfig(ln.Addr().String())
		cfg.DialTimeout = 200 * time.Millisecond
		start := time.Now()
		_, err = newClient(t, cfg).Fetch(context.Background(), "g", "k")
		mustUnavailable(t, err)
		if d := time.Since(start); d > time.Second {
			t.Errorf("failed after %v, want about DialTimeout (200ms)", d)
		}
	})
	t.Run("handler never answers", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		ts := startServer(t, testServerConfig(), blockingHandler(release), serverOptions{})
		cfg := testClientConfig(ts.addr)
		cfg.RequestTimeout = 300 * time.Millisecond
		c := newClient(t, cfg)
		start := time.Now()
		_, err := c.Fetch(context.Background(), "g", "k")
		mustUnavailable(t, err, ErrTimeout)
		if d := time.Since(start); d < 300*time.Millisecond || d > time.Second {
			t.Errorf("failed after %v, want RequestTimeout (300ms) plus a sweep", d)
		}
		var got error
		done := make(chan struct{})
		c.FetchFunc("g", "async", time.Now().Add(100*time.Millisecond), func(_ Value, err error) { got = err; close(done) })
		<-done
		mustUnavailable(t, got, ErrTimeout)
	})
	t.Run("stopped process: the kernel accepts, nothing answers", func(t *testing.T) {
		ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
		p := startProxy(t, ts.addr, false)
		cfg := testClientConfig(p.addr())
		cfg.RequestTimeout = 30 * time.Second
		c := newClient(t, cfg)
		if _, err := c.Fetch(context.Background(), "g", "before"); err != nil {
			t.Fatalf("fetch before the stop: %v", err)
		}
		p.frozen.Store(true)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				_, err := c.Fetch(context.Background(), "g", fmt.Sprint(i))
				mustUnavailable(t, err, ErrNoPong)
			})
		}
		wg.Wait()
		if d, max := time.Since(start), cfg.PingAfter+cfg.PingTimeout+500*time.Millisecond; d > max {
			t.Errorf("calls failed after %v, want within PingAfter+PingTimeout (%v)", d, max)
		}
	})
	t.Run("caller leaves on its context", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		h := blockingHandler(release)
		ts := startServer(t, testServerConfig(), h, serverOptions{})
		c := newClient(t, testClientConfig(ts.addr))
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, err := c.Fetch(ctx, "g", "k"); errc <- err }()
		waitFor(t, 5*time.Second, "the fetch at the handler", func() bool { return h.fetches.Load() == 1 })
		start := time.Now()
		cancel()
		err := <-errc
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
			t.Errorf("err = %v, want context.Canceled and not ErrUnavailable", err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("returned %v after the cancel", d)
		}
	})
}

func TestServerCloseSendsGoAway(t *testing.T) {
	h := blockingHandler(nil)
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	errc := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := c.Fetch(context.Background(), "g", fmt.Sprint(i)); errc <- err }()
	}
	waitFor(t, 5*time.Second, "3 fetches at the handler", func() bool { return h.fetches.Load() == 3 })
	start := time.Now()
	ts.wire.Close()
	for range 3 {
		mustUnavailable(t, <-errc, ErrGoAway)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("pending calls failed %v after Close", d)
	}
	_, err := c.Fetch(context.Background(), "g", "after")
	mustUnavailable(t, err) // the upgrade is refused 503 shutting_down
}

func TestServerShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	h := blockingHandler(release)
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	errc := make(chan error, 1)
	go func() { _, err := c.Fetch(context.Background(), "g", "k"); errc <- err }()
	waitFor(t, 5*time.Second, "the fetch at the handler", func() bool { return h.fetches.Load() == 1 })
	shut := make(chan error, 1)
	go func() { shut <- ts.wire.Shutdown(context.Background()) }()
	waitFor(t, 5*time.Second, "the client drained", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.conns) == 1 && c.conns[0].draining.Load()
	})
	_, err := c.Fetch(context.Background(), "g", "new")
	mustUnavailable(t, err)
	close(release)
	if err := <-errc; err != nil {
		t.Errorf("the request in flight during Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestIdleConnections(t *testing.T) {
	t.Run("client closes", func(t *testing.T) {
		ts := startServer(t, testServerConfig(), &fakeHandler{}, serverOptions{})
		cfg := testClientConfig(ts.addr)
		cfg.IdleTimeout = 50 * time.Millisecond
		c := newClient(t, cfg)
		if _, err := c.Fetch(context.Background(), "g", "k"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the idle connection closed", func() bool { return c.Stats().Conns == 0 && ts.served() == 0 })
		if _, err := c.Fetch(context.Background(), "g", "k"); err != nil || c.Stats().Dials != 2 {
			t.Errorf("fetch after idle close: %v, %d dials; want a redial", err, c.Stats().Dials)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		scfg := testServerConfig()
		scfg.IdleTimeout = 50 * time.Millisecond
		ts := startServer(t, scfg, &fakeHandler{}, serverOptions{})
		c := newClient(t, testClientConfig(ts.addr))
		if _, err := c.Fetch(context.Background(), "g", "k"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the idle connection closed", func() bool { return c.Stats().Conns == 0 && ts.served() == 0 })
		if _, err := c.Fetch(context.Background(), "g", "k"); err != nil {
			t.Errorf("fetch after the server's idle close: %v", err)
		}
	})
}

func TestServerClosesAClientThatDoesNotRead(t *testing.T) {
	big := make([]byte, 1<<20)
	h := &fakeHandler{fetch: func(context.Context, string, string) (Value, error) { return Value{Bytes: big}, nil }}
	scfg := testServerConfig()
	scfg.WriteTimeout = 100 * time.Millisecond
	ts := startServer(t, scfg, h, serverOptions{})
	nc, _, resp := rawUpgrade(t, testClientConfig(ts.addr), nil, newClaim(&ClientConfig{Path: DefaultPath, Self: "raw"}, time.Now()))
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	w := bufio.NewWriter(nc)
	for id := uint32(1); id <= 64; id++ {
		w.Write(rawFrame(typeFetch, 0, id, appendKeyRequest(nil, "g", "k")))
	}
	w.Flush()
	waitFor(t, 5*time.Second, "the stalled connection closed", func() bool { return ts.served() == 0 })
}

func TestDialFailureBacksOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := testClientConfig(addr)
	cfg.RedialMin = time.Minute
	cfg.RedialMax = time.Minute
	c := newClient(t, cfg)
	_, err = c.Fetch(context.Background(), "g", "k")
	mustUnavailable(t, err)
	start := time.Now()
	_, err = c.Fetch(context.Background(), "g", "k")
	mustUnavailable(t, err)
	if d, s := time.Since(start), c.Stats(); d > 50*time.Millisecond || s.Dials != 1 || s.DialFailures != 1 {
		t.Errorf("second call: %v, %+v; want an immediate failure without a dial", d, s)
	}
}

func TestClientClose(t *testing.T) {
	h := blockingHandler(nil)
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	c := newClient(t, testClientConfig(ts.addr))
	errc := make(chan error, 1)
	go func() { _, err := c.Fetch(context.Background(), "g", "k"); errc <- err }()
	waitFor(t, 5*time.Second, "the fetch at the handler", func() bool { return h.fetches.Load() == 1 })
	c.Close()
	mustUnavailable(t, <-errc, ErrClosed)
	_, err := c.Fetch(context.Background(), "g", "k")
	mustUnavailable(t, err, ErrClosed)
	waitFor(t, 5*time.Second, "the server's side closed", func() bool { return ts.served() == 0 })
}
