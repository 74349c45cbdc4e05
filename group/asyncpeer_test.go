package group

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncPeer is a transport that completes fetches from its own goroutine, as a multiplexed
// connection's reader does: FetchFunc queues the request, and the test answers it with
// answer (the transport's goroutine calls done). Its blocking Fetch must never be used.
type asyncPeer struct {
	mu       sync.Mutex
	pending  []asyncRequest
	sent     chan struct{} // receives once per FetchFunc
	fetches  atomic.Int64  // blocking Fetch calls: none expected
	funcs    atomic.Int64
	panicNow bool
}

type asyncRequest struct {
	group, key string
	deadline   time.Time
	done       func(Value, error)
}

func newAsyncPeer() *asyncPeer { return &asyncPeer{sent: make(chan struct{}, 4096)} }

func (p *asyncPeer) Fetch(context.Context, string, string) (Value, error) {
	p.fetches.Add(1)
	return Value{}, errors.New("the blocking Fetch of an AsyncPeer was called")
}

func (p *asyncPeer) FetchFunc(group, key string, deadline time.Time, done func(Value, error)) {
	p.funcs.Add(1)
	if p.panicNow {
		panic("transport bug")
	}
	p.mu.Lock()
	p.pending = append(p.pending, asyncRequest{group, key, deadline, done})
	p.mu.Unlock()
	p.sent <- struct{}{}
}

// waitSent waits for n requests to be sent.
func (p *asyncPeer) waitSent(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-p.sent:
		case <-deadline:
			t.Fatal("the fetch was not sent in time")
		}
	}
}

// answerAll completes every pending request on one goroutine, the transport's, with answer,
// and waits for it.
func (p *asyncPeer) answerAll(answer func(r asyncRequest) (Value, error)) {
	p.mu.Lock()
	reqs := p.pending
	p.pending = nil
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, r := range reqs {
			r.done(answer(r))
		}
	})
	wg.Wait()
}

func valueOf(r asyncRequest) (Value, error) {
	return Value{Bytes: []byte("owned " + r.key), TTL: time.Minute}, nil
}

// TestAsyncPeerFetch: a fetch from an AsyncPeer is sent once for every concurrent Get of the
// key, completed by the transport's goroutine, cached, and the blocking Fetch is never used.
func TestAsyncPeerFetch(t *testing.T) {
	cfg := testConfig()
	cfg.HotCacheRate = 1
	g := newTestGroup(t, &countingLoader{}, cfg)
	p := newAsyncPeer()
	g.SetPeers(&ownerPicker{peer: p})

	const callers = 20
	results := make(chan error, callers)
	for range callers {
		go func() {
			res, err := g.Get(context.Background(), "k")
			if err == nil && (string(res.Bytes) != "owned k" || res.Source != SourcePeer || res.TTL != time.Minute) {
				err = fmt.Errorf("Get = %q from %v, TTL %v", res.Bytes, res.Source, res.TTL)
			}
			results <- err
		}()
	}
	p.waitSent(t, 1)
	eventually(t, 5*time.Second, "every caller joins the fill", func() bool {
		return g.flights.waiters(flightKey{key: "k", remote: true}) == callers
	})
	p.answerAll(func(r asyncRequest) (Value, error) {
		if r.group != t.Name() || time.Until(r.deadline) > cfg.LoadTimeout || time.Until(r.deadline) < cfg.LoadTimeout-2*time.Second {
			return Value{}, fmt.Errorf("request %s/%s with deadline in %v", r.group, r.key, time.Until(r.deadline))
		}
		return valueOf(r)
	})
	for range callers {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	if n := p.funcs.Load(); n != 1 || p.fetches.Load() != 0 {
		t.Errorf("FetchFunc called %d times, Fetch %d; want 1 and 0", n, p.fetches.Load())
	}
	if res, err := g.Get(context.Background(), "k"); err != nil || res.Source != SourceHot {
		t.Errorf("after the fetch: source %v, err %v; want the hot cache", res.Source, err)
	}
}

// TestAsyncPeerCostsNoGoroutine: fetches waiting on an AsyncPeer hold only their callers'
// goroutines; on a blocking Peer each also holds one for its slow call. The callers' context
// can end (a caller whose context never ends makes a blocking call on its own goroutine:
// flights.inline).
func TestAsyncPeerCostsNoGoroutine(t *testing.T) {
	const fetches = 200
	measure := func(t *testing.T, peer Peer, waitSent func(), release func()) int {
		g := newTestGroup(t, &countingLoader{}, testConfig())
		g.SetPeers(&ownerPicker{peer: peer})
		runtime.GC()
		base := runtime.NumGoroutine()
		var wg sync.WaitGroup
		for i := range fetches {
			wg.Go(func() {
				if _, err := g.Get(t.Context(), fmt.Sprint("k", i)); err != nil {
					t.Error(err)
				}
			})
		}
		waitSent()
		extra := runtime.NumGoroutine() - base - fetches
		release()
		wg.Wait()
		return extra
	}

	p := newAsyncPeer()
	async := measure(t, p, func() { p.waitSent(t, fetches) }, func() { p.answerAll(valueOf) })

	entered, open := make(chan struct{}, fetches), make(chan struct{})
	blocking := &fakePeer{fn: func(ctx context.Context, _, key string) (Value, error) {
		entered <- struct{}{}
		<-open
		return Value{Bytes: []byte("owned " + key)}, nil
	}}
	sync := measure(t, blocking, func() {
		for range fetches {
			<-entered
		}
	}, func() { close(open) })

	t.Logf("goroutines beyond the %d callers while their fetches wait: AsyncPeer %d, blocking Peer %d", fetches, async, sync)
	if async > 10 {
		t.Errorf("%d goroutines beyond the callers with an AsyncPeer, want none (a few of the runtime's)", async)
	}
	if sync < fetches {
		t.Errorf("only %d goroutines beyond the callers with a blocking Peer: the comparison measures nothing", sync)
	}
}

// TestAsyncPeerOutcomes: the ways a fetch from an AsyncPeer can end.
func TestAsyncPeerOutcomes(t *testing.T) {
	t.Run("the first caller leaves; the one that stays gets the value", func(t *testing.T) {
		g := newTestGroup(t, &countingLoader{}, testConfig())
		p := newAsyncPeer()
		g.SetPeers(&ownerPicker{peer: p})
		ctx, cancel := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() { _, err := g.Get(ctx, "k"); first <- err }()
		p.waitSent(t, 1)
		second := make(chan error, 1)
		go func() {
			res, err := g.Get(context.Background(), "k")
			if err == nil && string(res.Bytes) != "owned k" {
				err = fmt.Errorf("Get = %q", res.Bytes)
			}
			second <- err
		}()
		eventually(t, 5*time.Second, "the second caller joins", func() bool {
			return g.flights.waiters(flightKey{key: "k", remote: true}) == 2
		})
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("the caller that left: %v, want context.Canceled at once", err)
		}
		p.answerAll(valueOf)
		if err := <-second; err != nil {
			t.Fatalf("the caller that stayed: %v", err)
		}
		if p.funcs.Load() != 1 {
			t.Errorf("FetchFunc called %d times, want 1", p.funcs.Load())
		}
	})

	t.Run("no answer by the load timeout", func(t *testing.T) {
		cfg := testConfig()
		cfg.LoadTimeout = 50 * time.Millisecond
		l := &countingLoader{}
		g := newTestGroup(t, l, cfg)
		p := newAsyncPeer()
		g.SetPeers(&ownerPicker{peer: p})
		start := time.Now()
		_, err := g.Get(context.Background(), "k")
		if !errors.Is(err, ErrLoadTimeout) || time.Since(start) > 5*time.Second {
			t.Fatalf("Get: %v after %v, want ErrLoadTimeout at the load timeout", err, time.Since(start))
		}
		p.answerAll(valueOf) // the late answer is dropped
		if l.calls.Load() != 0 {
			t.Error("a timeout made the asking node load the key")
		}
		next := make(chan error, 1)
		go func() {
			res, err := g.Get(context.Background(), "k")
			if err == nil && res.Source != SourcePeer {
				err = fmt.Errorf("source %v", res.Source)
			}
			next <- err
		}()
		p.waitSent(t, 2) // the first request's signal, then the new one's
		p.answerAll(valueOf)
		if err := <-next; err != nil {
			t.Errorf("the next Get: %v; want a new fetch", err)
		}
	})

	t.Run("owner unreachable, answered on the caller's goroutine", func(t *testing.T) {
		l := &countingLoader{}
		g := newTestGroup(t, l, testConfig())
		g.SetPeers(&ownerPicker{peer: &syncFailPeer{}})
		res, err := g.Get(context.Background(), "k")
		if err != nil || res.Source != SourceLoader || l.calls.Load() != 1 {
			t.Fatalf("Get: source %v, err %v, loads %d; want the local fallback", res.Source, err, l.calls.Load())
		}
	})

	t.Run("FetchFunc panics", func(t *testing.T) {
		g := newTestGroup(t, &countingLoader{}, testConfig())
		p := newAsyncPeer()
		p.panicNow = true
		g.SetPeers(&ownerPicker{peer: p})
		if _, err := g.Get(context.Background(), "k"); !errors.Is(err, ErrLoaderPanic) {
			t.Fatalf("Get: %v, want ErrLoaderPanic", err)
		}
	})
}

// syncFailPeer fails every fetch before sending it: done runs inside FetchFunc.
type syncFailPeer struct{}

func (syncFailPeer) Fetch(context.Context, string, string) (Value, error) {
	return Value{}, errors.New("the blocking Fetch of an AsyncPeer was called")
}

func (syncFailPeer) FetchFunc(_, _ string, _ time.Time, done func(Value, error)) {
	done(Value{}, fmt.Errorf("dial: %w", ErrPeerUnavailable))
}

// TestPurgeHot: PurgeHot drops the hot copies and keeps a fetch under way from storing its
// answer, and leaves the main cache alone.
func TestPurgeHot(t *testing.T) {
	cfg := testConfig()
	cfg.HotCacheRate = 1
	g := newTestGroup(t, &countingLoader{}, cfg)
	p := newAsyncPeer()
	g.SetPeers(&ownerPicker{peer: p, owns: func(key string) bool { return key != "mine" }})
	ctx := context.Background()
	if _, err := g.Get(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { _, err := g.Get(ctx, "copy"); got <- err }()
	p.waitSent(t, 1)
	p.answerAll(valueOf)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() { _, err := g.Get(ctx, "in flight"); got <- err }()
	p.waitSent(t, 1)

	g.PurgeHot()
	p.answerAll(valueOf) // the fetch under way ends after the purge
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Hot.Items != 0 || st.Main.Items != 1 {
		t.Errorf("hot items %d, main items %d; want 0 and 1", st.Hot.Items, st.Main.Items)
	}
	if res, err := g.Get(ctx, "mine"); err != nil || res.Source != SourceMain {
		t.Errorf("the node's own key: source %v, err %v", res.Source, err)
	}
}
