package group

import (
	"context"
	"testing"
	"time"
)

// TestPeekLeavesTheLoaderItsTime: a previous owner that never answers, behind a Peeker with
// no bound of its own, holds a load for at most a quarter of its LoadTimeout: the loader
// then starts with about three quarters of it left, and its value is the answer.
func TestPeekLeavesTheLoaderItsTime(t *testing.T) {
	const loadTimeout = 2 * time.Second
	cfg := testConfig()
	cfg.LoadTimeout = loadTimeout
	left := make(chan time.Duration, 1)
	l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
		deadline, ok := ctx.Deadline()
		if !ok {
			t.Error("the loader's context has no deadline")
		}
		left <- time.Until(deadline)
		return Value{Bytes: []byte("loaded " + key)}, nil
	}}
	g := newTestGroup(t, l, cfg)
	g.SetPeers(previousPicker{prev: PeekerFunc(func(ctx context.Context, _, _ string) (Value, error) {
		<-ctx.Done()
		return Value{}, ctx.Err()
	})})
	start := time.Now()
	res, err := g.Get(context.Background(), "k")
	took := time.Since(start)
	if err != nil || string(res.Bytes) != "loaded k" {
		t.Fatalf("Get = %+v, %v; want the loader's value", res, err)
	}
	remaining := <-left
	ws := g.WarmStats()
	t.Logf("Get took %v; the peek %v; the loader started with %v of the %v left", took, ws.PeekTime, remaining, loadTimeout)
	if ws.Peeks != 1 || ws.PeekHits != 0 || l.calls.Load() != 1 {
		t.Fatalf("WarmStats = %+v, %d loads; want 1 peek, 0 hits, 1 load", ws, l.calls.Load())
	}
	if remaining < loadTimeout/2 {
		t.Fatalf("the loader started with %v of the %v load timeout left: the peek took more than its quarter", remaining, loadTimeout)
	}
}
