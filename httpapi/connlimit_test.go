package httpapi

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIdleConnectionFloodDoesNotLockClientsOut floods a node capped at 16 connections with 48
// attackers on real loopback sockets, each reconnecting as soon as the node drops it: 36
// open a socket and send nothing, 12 send one request and keep the connection idle. Meanwhile
// a normal client, on a new connection each time, must get every answer, and the node must
// never hold more than the cap (plus the one it has just accepted and is making room for).
func TestIdleConnectionFloodDoesNotLockClientsOut(t *testing.T) {
	const (
		maxConns  = 16
		silent    = 36
		keepAlive = 12
		requests  = 10
	)
	cfg := aloneConfig()
	cfg.MaxConnections = maxConns
	cfg.MaxIdleConnections = maxConns // evictions come from the cap, not the idle bound
	n := startNodeValue(t, cfg, &origin{})
	lim := n.listener.(*connLimiter)
	addr := n.Addr()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var dials, peak atomic.Int64
	attack := func(sendRequest bool) {
		for ctx.Err() == nil {
			conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				continue
			}
			dials.Add(1)
			stopWatch := context.AfterFunc(ctx, func() { conn.Close() })
			br := bufio.NewReader(conn)
			if sendRequest {
				_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp, err := http.ReadResponse(br, nil); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			_, _ = br.ReadByte() // blocks until the node closes the connection
			stopWatch()
			conn.Close()
		}
	}
	for i := range silent + keepAlive {
		wg.Go(func() { attack(i < keepAlive) })
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			if open := int64(lim.open()); open > peak.Load() {
				peak.Store(open)
			}
			<-tick.C
		}
	})
	t.Cleanup(func() { stop(); wg.Wait() })

	poll(t, 10*time.Second, "the flood fills the node", func() bool { return lim.open() >= maxConns })

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var slowest time.Duration
	for i := range requests {
		start := time.Now()
		resp, err := client.Get("http://" + addr + keyPath("g", "k"))
		if err != nil {
			t.Fatalf("request %d during the flood: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "value of k" {
			t.Fatalf("request %d during the flood: %d %q", i, resp.StatusCode, body)
		}
		slowest = max(slowest, time.Since(start))
	}
	stop()
	wg.Wait()
	t.Logf("%d answers, the slowest in %v; %d attacking connections, %d evicted, at most %d open",
		requests, slowest, dials.Load(), lim.evicted.Load(), peak.Load())
	if p := peak.Load(); p > maxConns {
		t.Errorf("%d connections open at once, over the cap of %d", p, maxConns)
	}
	if lim.evicted.Load() == 0 {
		t.Error("nothing was evicted: the flood never reached the cap, the test proves nothing")
	}
}

// TestIdleConnectionsAreBounded: with room for 64 connections but 4 idle ones, 10 keep-alive
// connections left idle end up as 4.
func TestIdleConnectionsAreBounded(t *testing.T) {
	cfg := aloneConfig()
	cfg.MaxConnections = 64
	cfg.MaxIdleConnections = 4
	n := startNodeValue(t, cfg, &origin{})
	lim := n.listener.(*connLimiter)
	for range 10 {
		conn, err := net.DialTimeout("tcp", n.Addr(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	poll(t, 5*time.Second, "idle connections are closed down to 4", func() bool {
		return lim.open() == 4 && lim.idle.Load() == 4
	})
	if got := lim.evicted.Load(); got != 6 {
		t.Errorf("%d connections evicted, want 6", got)
	}
}

func TestConnLimits(t *testing.T) {
	auto := defaultMaxConnections()
	for _, tc := range []struct {
		conns, idle         int
		wantConns, wantIdle int
	}{
		{-1, 0, 0, 0},
		{100, 0, 100, 50},
		{100, 10, 100, 10},
		{100, -1, 100, 0},
		{0, 0, auto, auto / 2},
	} {
		c := NodeConfig{MaxConnections: tc.conns, MaxIdleConnections: tc.idle}
		if gc, gi := c.connLimits(); gc != tc.wantConns || gi != tc.wantIdle {
			t.Errorf("MaxConnections %d, MaxIdleConnections %d: limits %d, %d; want %d, %d",
				tc.conns, tc.idle, gc, gi, tc.wantConns, tc.wantIdle)
		}
	}
	if auto < 16 || auto > 65536 {
		t.Errorf("default MaxConnections %d out of [16, 65536]", auto)
	}
}
