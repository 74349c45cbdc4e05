package wire

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestDebugCoalescing(t *testing.T) {
	for _, mc := range []int{1, 2, 4} {
		for _, spread := range []int{1, 8, 64} {
			t.Run(fmt.Sprint(mc, "/", spread), func(t *testing.T) { debugCoalescing(t, mc, spread) })
		}
	}
}

func debugCoalescing(t *testing.T, mc, spread int) {
	value := benchValue()
	h := &fakeHandler{fetch: func(context.Context, string, string) (Value, error) {
		return Value{Bytes: value, TTL: time.Minute}, nil
	}}
	ts := startServer(t, testServerConfig(), h, serverOptions{})
	cfg := testClientConfig(ts.addr)
	cfg.MaxConns, cfg.SpreadAt = mc, spread
	c := newClient(t, cfg)
	var wg sync.WaitGroup
	const n = 20000
	start := time.Now()
	for g := 0; g < 32; g++ {
		wg.Go(func() {
			for i := 0; i < n/32; i++ {
				c.Fetch(context.Background(), "g", "k")
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	c.mu.Lock()
	var cw uint64
	for _, cc := range c.conns {
		cw += cc.w.flushes.Load()
	}
	nc := len(c.conns)
	c.mu.Unlock()
	ts.wire.mu.Lock()
	var sw uint64
	for sc := range ts.wire.conns {
		sw += sc.w.flushes.Load()
	}
	ts.wire.mu.Unlock()
	t.Logf("%d fetches in %v (%.1f µs each): %d conns, client writes %d (%.1f frames/write), server writes %d (%.1f frames/write)",
		n, el, float64(el.Microseconds())/n, nc, cw, float64(n)/float64(cw), sw, float64(n)/float64(sw))
}
