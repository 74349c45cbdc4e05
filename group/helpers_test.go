package group

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testConfig is DefaultConfig with a small bound and a load timeout short enough for tests
// that wait for it.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.CacheBytes = 1 << 20
	cfg.NegativeTTL = 0
	cfg.LoadTimeout = 5 * time.Second
	// Failures are not remembered, so that the tests of loads that fail see every retry
	// reach the loader; errmemory_test.go turns it on.
	cfg.ErrorTTL = 0
	return cfg
}

// newTestGroup builds a group that logs nowhere and fails the test on a construction error.
func newTestGroup(t testing.TB, l Loader, cfg Config) *Group {
	t.Helper()
	g, err := New(t.Name(), l, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g
}

// countingLoader counts its calls and answers with fn (or with the key's bytes).
type countingLoader struct {
	calls atomic.Int64
	fn    func(ctx context.Context, key string) (Value, error)
}

func (l *countingLoader) Load(ctx context.Context, key string) (Value, error) {
	l.calls.Add(1)
	if l.fn == nil {
		return Value{Bytes: []byte("value of " + key)}, nil
	}
	return l.fn(ctx, key)
}

// gate blocks loaders until the test opens it, and tells the test when a loader is waiting.
type gate struct {
	entered chan struct{} // receives once per loader call that reached the gate
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1024), open: make(chan struct{})}
}

func (g *gate) wait(ctx context.Context) error {
	g.entered <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// waitEntered waits for n loader calls to reach the gate.
func (g *gate) waitEntered(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-g.entered:
		case <-deadline:
			t.Fatal("loader was not called in time")
		}
	}
}

// eventually polls cond until it holds or the deadline passes. It never sleeps: it waits on
// a ticker between polls.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, within)
		}
		<-tick.C
	}
}

// waiters reports how many callers share the running fill of k (0 if none runs).
func (f *flights) waiters(k flightKey) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[k]; ok {
		return c.waiters
	}
	return 0
}

// fakePeer is an owner node that answers with fn and counts its fetches.
type fakePeer struct {
	calls atomic.Int64
	fn    func(ctx context.Context, group, key string) (Value, error)
}

func (p *fakePeer) Fetch(ctx context.Context, group, key string) (Value, error) {
	p.calls.Add(1)
	return p.fn(ctx, group, key)
}

// ownerPicker hands every key for which owns returns true to peer; the rest are local.
type ownerPicker struct {
	picks atomic.Int64
	peer  Peer
	owns  func(key string) bool
}

func (p *ownerPicker) PickPeer(key string) (Peer, bool) {
	p.picks.Add(1)
	if p.owns != nil && !p.owns(key) {
		return nil, false
	}
	return p.peer, true
}

// fakeInvalidator records what it was asked to spread.
type fakeInvalidator struct {
	mu     sync.Mutex
	keys   []string
	groups []string
}

func (f *fakeInvalidator) InvalidateKey(_ context.Context, group, key string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, group+"/"+key)
	return 2, nil
}

func (f *fakeInvalidator) InvalidateGroup(_ context.Context, group string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups = append(f.groups, group)
	return 3, nil
}
