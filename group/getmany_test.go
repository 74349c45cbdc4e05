package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeBatchPeer is an owner that answers batches (and single fetches) with fn, and records
// every batch it was sent.
type fakeBatchPeer struct {
	fetches atomic.Int64
	mu      sync.Mutex
	batches [][]string
	fn      func(ctx context.Context, key string) (Value, error)
	// batchFn, when set, answers whole batches instead of fn.
	batchFn func(ctx context.Context, keys []string) []BatchResult
}

func (p *fakeBatchPeer) Fetch(ctx context.Context, _, key string) (Value, error) {
	p.fetches.Add(1)
	return p.fn(ctx, key)
}

func (p *fakeBatchPeer) FetchBatch(ctx context.Context, _ string, keys []string) []BatchResult {
	p.mu.Lock()
	p.batches = append(p.batches, slices.Clone(keys))
	p.mu.Unlock()
	if p.batchFn != nil {
		return p.batchFn(ctx, keys)
	}
	out := make([]BatchResult, len(keys))
	for i, k := range keys {
		out[i].Value, out[i].Err = p.fn(ctx, k)
	}
	return out
}

func (p *fakeBatchPeer) sent() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.batches)
}

// ownerAnswer is an owner's answer for a key: "missing-*" is not found, "bad-*" fails.
func ownerAnswer(_ context.Context, key string) (Value, error) {
	switch {
	case strings.HasPrefix(key, "missing"):
		return Value{}, ErrNotFound
	case strings.HasPrefix(key, "bad"):
		return Value{}, errors.New("owner's origin failed")
	}
	return Value{Bytes: []byte("owner's " + key), TTL: time.Minute}, nil
}

func keysOf(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return keys
}

func TestGetManyLocal(t *testing.T) {
	l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
		switch {
		case strings.HasPrefix(key, "missing"):
			return Value{}, ErrNotFound
		case strings.HasPrefix(key, "bad"):
			return Value{}, errors.New("origin down")
		}
		return Value{Bytes: []byte("v:" + key)}, nil
	}}
	g := newTestGroup(t, l, testConfig())
	ctx := context.Background()
	if _, err := g.Get(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	keys := append(keysOf("k", 40), "warm", "missing1", "bad1", "", "k3", "warm", "k39")
	items := g.GetMany(ctx, keys)
	if len(items) != len(keys) {
		t.Fatalf("%d items for %d keys", len(items), len(keys))
	}
	for i, key := range keys {
		it := items[i]
		switch {
		case key == "":
			if !errors.Is(it.Err, ErrInvalidKey) {
				t.Errorf("item %d (empty key): err %v, want ErrInvalidKey", i, it.Err)
			}
		case key == "missing1":
			if !errors.Is(it.Err, ErrNotFound) {
				t.Errorf("item %d (%s): err %v, want ErrNotFound", i, key, it.Err)
			}
		case key == "bad1":
			if it.Err == nil || errors.Is(it.Err, ErrNotFound) || !strings.Contains(it.Err.Error(), "origin down") {
				t.Errorf("item %d (%s): err %v, want the loader's error", i, key, it.Err)
			}
		default:
			if it.Err != nil || string(it.Bytes) != "v:"+key {
				t.Errorf("item %d (%s): %q, %v", i, key, it.Bytes, it.Err)
			}
		}
	}
	if items[40].Source != SourceMain {
		t.Errorf("warm key: source %v, want main", items[40].Source)
	}
	if items[0].Source != SourceLoader {
		t.Errorf("cold key: source %v, want loader", items[0].Source)
	}
	// warm, then 40 + missing + bad: each once, the repeats and the empty key not at all.
	if got := l.calls.Load(); got != 1+42 {
		t.Errorf("loader called %d times, want 43", got)
	}
	st := g.Stats()
	if st.Gets != 1+43 || st.Loads != 1+42 {
		t.Errorf("stats: %d gets, %d loads; want 44 and 43", st.Gets, st.Loads)
	}
	// Everything is cached now but the failure and the not-found (NegativeTTL is 0): a second
	// GetMany loads only those two.
	g.GetMany(ctx, keys)
	if got := l.calls.Load(); got != 1+42+2 {
		t.Errorf("after a second GetMany: loader called %d times, want 45", got)
	}
}

func TestGetManyEmpty(t *testing.T) {
	g := newTestGroup(t, &countingLoader{}, testConfig())
	if items := g.GetMany(context.Background(), nil); len(items) != 0 {
		t.Fatalf("%d items for no keys", len(items))
	}
}

// A GetMany that misses a key being filled for a Get joins that fill: the origin is asked once.
func TestGetManySharesLocalFillWithGet(t *testing.T) {
	gt := newGate()
	l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
		if key == "slow" {
			if err := gt.wait(ctx); err != nil {
				return Value{}, err
			}
		}
		return Value{Bytes: []byte(key)}, nil
	}}
	g := newTestGroup(t, l, testConfig())
	ctx := context.Background()
	got := make(chan error, 1)
	go func() { _, err := g.Get(ctx, "slow"); got <- err }()
	gt.waitEntered(t, 1)
	many := make(chan []Item, 1)
	go func() { many <- g.GetMany(ctx, []string{"a", "slow", "b"}) }()
	eventually(t, 10*time.Second, "GetMany joins the Get's fill", func() bool {
		return g.flights.waiters(flightKey{key: "slow"}) == 2
	})
	gt.release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	items := <-many
	for i, want := range []string{"a", "slow", "b"} {
		if items[i].Err != nil || string(items[i].Bytes) != want {
			t.Errorf("item %d: %q, %v", i, items[i].Bytes, items[i].Err)
		}
	}
	if n := l.calls.Load(); n != 3 {
		t.Errorf("loader called %d times, want 3", n)
	}
}

// Keys owned by a BatchPeer go in one FetchBatch per owner; per-key answers keep their
// meaning; the hot cache keeps the copies, as for Gets.
func TestGetManyBatchesPerOwner(t *testing.T) {
	l := &countingLoader{}
	cfg := testConfig()
	cfg.HotCacheRate = 1
	g := newTestGroup(t, l, cfg)
	a := &fakeBatchPeer{fn: ownerAnswer}
	b := &fakeBatchPeer{fn: ownerAnswer}
	g.SetPeers(PeerPickerFunc(func(key string) (Peer, bool) {
		switch key[len(key)-1] % 3 {
		case 0:
			return a, true
		case 1:
			return b, true
		}
		return nil, false
	}))
	keys := append(keysOf("k", 30), "missing0", "bad1")
	items := g.GetMany(context.Background(), keys)
	for i, key := range keys {
		it := items[i]
		owner := key[len(key)-1] % 3
		switch {
		case owner == 2:
			if it.Err != nil || string(it.Bytes) != "value of "+key || it.Source != SourceLoader {
				t.Errorf("local %s: %q from %v, %v", key, it.Bytes, it.Source, it.Err)
			}
		case key == "missing0":
			if !errors.Is(it.Err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", key, it.Err)
			}
		case key == "bad1":
			if it.Err == nil || errors.Is(it.Err, ErrNotFound) || !strings.Contains(it.Err.Error(), "owner's origin failed") {
				t.Errorf("%s: %v, want the owner's failure", key, it.Err)
			}
		default:
			if it.Err != nil || string(it.Bytes) != "owner's "+key || it.Source != SourcePeer || it.TTL != time.Minute {
				t.Errorf("remote %s: %q from %v ttl %v, %v", key, it.Bytes, it.Source, it.TTL, it.Err)
			}
		}
	}
	for name, p := range map[string]*fakeBatchPeer{"a": a, "b": b} {
		sent := p.sent()
		if len(sent) != 1 || p.fetches.Load() != 0 {
			t.Fatalf("owner %s: %d batches %v and %d fetches, want one batch", name, len(sent), sent, p.fetches.Load())
		}
	}
	// Keys ending in 2, 5 or 8 are local: 9 of k0..k29.
	if n := len(a.sent()[0]) + len(b.sent()[0]); n != 23 {
		t.Errorf("%d keys sent to the owners, want 23", n)
	}
	if n := l.calls.Load(); n != 9 {
		t.Errorf("loader called %d times, want 9 (the local keys)", n)
	}
	// The remote values are hot now (HotCacheRate 1): no new batch.
	items = g.GetMany(context.Background(), keys[:30])
	for i, it := range items {
		if it.Err != nil || (it.Source != SourceHot && it.Source != SourceMain) {
			t.Errorf("second read of %s: %v, %v", keys[i], it.Source, it.Err)
		}
	}
	if len(a.sent())+len(b.sent()) != 2 {
		t.Errorf("a second GetMany of hot keys sent %d batches", len(a.sent())+len(b.sent())-2)
	}
}

// A key whose fetch is already under way for a Get is not sent again in the batch: the
// GetMany waits for that fetch.
func TestGetManyBatchSkipsFetchUnderWay(t *testing.T) {
	gt := newGate()
	owner := &fakeBatchPeer{fn: func(ctx context.Context, key string) (Value, error) {
		if key == "slow" {
			if err := gt.wait(ctx); err != nil {
				return Value{}, err
			}
		}
		return ownerAnswer(ctx, key)
	}}
	g := newTestGroup(t, &countingLoader{}, testConfig())
	g.SetPeers(&ownerPicker{peer: owner})
	ctx := context.Background()
	got := make(chan error, 1)
	go func() { _, err := g.Get(ctx, "slow"); got <- err }()
	gt.waitEntered(t, 1)
	many := make(chan []Item, 1)
	go func() { many <- g.GetMany(ctx, []string{"x", "slow", "y"}) }()
	eventually(t, 10*time.Second, "the batch is sent", func() bool { return len(owner.sent()) == 1 })
	if sent := owner.sent()[0]; !slices.Equal(sent, []string{"x", "y"}) {
		t.Errorf("batch %v, want [x y]", sent)
	}
	gt.release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	items := <-many
	for i, k := range []string{"x", "slow", "y"} {
		if items[i].Err != nil || string(items[i].Bytes) != "owner's "+k {
			t.Errorf("item %d: %q, %v", i, items[i].Bytes, items[i].Err)
		}
	}
	if n := owner.fetches.Load(); n != 1 {
		t.Errorf("%d single fetches, want 1 (the Get's)", n)
	}
}

// An unreachable owner's keys are loaded here, each once; a Get of one of them meanwhile
// shares the fallback load.
func TestGetManyUnreachableOwnerFallsBack(t *testing.T) {
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	owner := &fakeBatchPeer{batchFn: func(_ context.Context, keys []string) []BatchResult {
		out := make([]BatchResult, len(keys))
		for i := range out {
			out[i].Err = fmt.Errorf("%w: connection refused", ErrPeerUnavailable)
		}
		return out
	}}
	g.SetPeers(&ownerPicker{peer: owner})
	keys := keysOf("k", 20)
	items := g.GetMany(context.Background(), keys)
	for i, it := range items {
		if it.Err != nil || string(it.Bytes) != "value of "+keys[i] || it.Source != SourceLoader {
			t.Errorf("item %d: %q from %v, %v", i, it.Bytes, it.Source, it.Err)
		}
	}
	if n := l.calls.Load(); n != 20 {
		t.Errorf("loader called %d times, want 20", n)
	}
	if st := g.Stats(); st.FallbackLoads != 20 || st.PeerErrors != 20 {
		t.Errorf("stats: %d fallbacks, %d peer errors; want 20 each", st.FallbackLoads, st.PeerErrors)
	}
	if len(owner.sent()) != 1 {
		t.Errorf("%d batches, want 1", len(owner.sent()))
	}
}

// A plain Peer (no FetchBatch) gets a fetch per key.
func TestGetManyPlainPeerFetchesPerKey(t *testing.T) {
	owner := &fakePeer{fn: func(ctx context.Context, _, key string) (Value, error) { return ownerAnswer(ctx, key) }}
	g := newTestGroup(t, &countingLoader{}, testConfig())
	g.SetPeers(&ownerPicker{peer: owner})
	keys := keysOf("k", 10)
	for i, it := range g.GetMany(context.Background(), keys) {
		if it.Err != nil || string(it.Bytes) != "owner's "+keys[i] {
			t.Errorf("item %d: %q, %v", i, it.Bytes, it.Err)
		}
	}
	if n := owner.calls.Load(); n != 10 {
		t.Errorf("%d fetches, want 10", n)
	}
}

// A batch the owner does not answer in time ends at the load timeout, as a fetch does, and is
// not loaded again here; a panicking FetchBatch fails its keys as a panicking Fetch would.
func TestGetManyBatchTimeoutAndPanic(t *testing.T) {
	cfg := testConfig()
	cfg.LoadTimeout = 100 * time.Millisecond
	l := &countingLoader{}
	g := newTestGroup(t, l, cfg)
	hang := make(chan struct{})
	defer close(hang)
	owner := &fakeBatchPeer{batchFn: func(context.Context, []string) []BatchResult {
		<-hang // ignores its context
		return nil
	}}
	g.SetPeers(&ownerPicker{peer: owner})
	for i, it := range g.GetMany(context.Background(), []string{"a", "b", "c"}) {
		if !errors.Is(it.Err, ErrLoadTimeout) {
			t.Errorf("item %d: %v, want ErrLoadTimeout", i, it.Err)
		}
	}
	if n := l.calls.Load(); n != 0 {
		t.Errorf("loader called %d times after an owner's timeout", n)
	}

	g2 := newTestGroup(t, l, testConfig())
	g2.SetPeers(&ownerPicker{peer: &fakeBatchPeer{batchFn: func(context.Context, []string) []BatchResult {
		panic("transport bug")
	}}})
	for i, it := range g2.GetMany(context.Background(), []string{"a", "b"}) {
		if !errors.Is(it.Err, ErrLoaderPanic) {
			t.Errorf("item %d after a panic: %v, want ErrLoaderPanic", i, it.Err)
		}
	}
	// The fills are over: a new read fetches again.
	if _, err := g2.Get(context.Background(), "a"); !errors.Is(err, ErrLoaderPanic) {
		t.Errorf("Get after the panic: %v", err)
	}
}

// A caller whose context has ended gets its error for every key that needs a fill, and
// no fill is started.
func TestGetManyCanceled(t *testing.T) {
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	if _, err := g.Get(context.Background(), "warm"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	items := g.GetMany(ctx, []string{"warm", "cold"})
	if items[0].Err != nil || !errors.Is(items[1].Err, context.Canceled) {
		t.Errorf("items: %v, %v", items[0].Err, items[1].Err)
	}
	if n := l.calls.Load(); n != 1 {
		t.Errorf("loader called %d times, want 1", n)
	}
}

// A caller that leaves while a batch is in flight gets ctx's error at once; the fills finish
// for the Gets that share them and cache their values.
func TestGetManyCallerLeavesBatchGoesOn(t *testing.T) {
	gt := newGate()
	owner := &fakeBatchPeer{batchFn: func(ctx context.Context, keys []string) []BatchResult {
		_ = gt.wait(ctx)
		out := make([]BatchResult, len(keys))
		for i, k := range keys {
			out[i].Value, out[i].Err = ownerAnswer(ctx, k)
		}
		return out
	}}
	cfg := testConfig()
	cfg.HotCacheRate = 1
	g := newTestGroup(t, &countingLoader{}, cfg)
	g.SetPeers(&ownerPicker{peer: owner})
	ctx, cancel := context.WithCancel(context.Background())
	many := make(chan []Item, 1)
	go func() { many <- g.GetMany(ctx, []string{"a", "b"}) }()
	gt.waitEntered(t, 1)
	got := make(chan error, 1)
	go func() { _, err := g.Get(context.Background(), "b"); got <- err }()
	eventually(t, 10*time.Second, "the Get joins the batch's fill", func() bool {
		return g.flights.waiters(flightKey{key: "b", remote: true}) == 2
	})
	cancel()
	for i, it := range <-many {
		if !errors.Is(it.Err, context.Canceled) {
			t.Errorf("item %d: %v, want context.Canceled", i, it.Err)
		}
	}
	gt.release()
	if err := <-got; err != nil {
		t.Fatalf("the Get sharing the batch: %v", err)
	}
	eventually(t, 10*time.Second, "a is cached", func() bool {
		res, err := g.Get(context.Background(), "a")
		return err == nil && res.Source == SourceHot
	})
	if len(owner.sent()) != 1 {
		t.Errorf("%d batches, want 1", len(owner.sent()))
	}
}

// BenchmarkGetManyHits: 100 keys, all in the main cache; one op is the 100 keys.
func BenchmarkGetManyHits(b *testing.B) {
	g := newTestGroup(b, &countingLoader{}, testConfig())
	keys := keysOf("k", 100)
	for _, it := range g.GetMany(context.Background(), keys) {
		if it.Err != nil {
			b.Fatal(it.Err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		g.GetMany(context.Background(), keys)
	}
}

// Under the stale settings GetMany answers an expired value as Get does: at once, with one
// background refresh (stale-while-revalidate), or when its reload fails (stale-if-error).
func TestGetManyServesStale(t *testing.T) {
	l := &staleLoader{gate: newGate()}
	cfg := testConfig()
	cfg.StaleWhileRevalidate = time.Hour
	g := newTestGroup(t, l, cfg)
	if _, err := g.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	expire(t, g, "k")
	l.gated.Store(true)
	items := g.GetMany(t.Context(), []string{"k", "k"})
	for i, it := range items {
		if it.Err != nil || string(it.Bytes) != "v1" || !it.Stale || it.TTL != 0 {
			t.Errorf("item %d: %q stale=%v ttl=%v %v", i, it.Bytes, it.Stale, it.TTL, it.Err)
		}
	}
	l.gate.waitEntered(t, 1)
	l.gated.Store(false)
	l.gate.release()
	eventually(t, 10*time.Second, "the refreshed value is served", func() bool {
		it := g.GetMany(t.Context(), []string{"k"})[0]
		return it.Err == nil && string(it.Bytes) == "v2" && !it.Stale
	})
	if st := g.Stats(); st.StaleRefreshes != 1 {
		t.Errorf("%d refreshes, want 1", st.StaleRefreshes)
	}

	cfg = testConfig()
	cfg.StaleIfError = time.Hour
	l2 := &staleLoader{gate: newGate()}
	g2 := newTestGroup(t, l2, cfg)
	if _, err := g2.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	expire(t, g2, "k")
	l2.failing.Store(true)
	items = g2.GetMany(t.Context(), []string{"k", "fresh"})
	if it := items[0]; it.Err != nil || string(it.Bytes) != "v1" || !it.Stale {
		t.Errorf("stale-if-error: %q stale=%v %v", it.Bytes, it.Stale, it.Err)
	}
	if it := items[1]; it.Err == nil {
		t.Errorf("a key with no stale value: %q, want the load's failure", it.Bytes)
	}
}
