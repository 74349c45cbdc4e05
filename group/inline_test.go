package group

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of the inline fill (flights.inline): a caller whose context never ends makes the slow
// call on its own goroutine, and the others are still released at the load timeout.

// goroutineID returns the id of the calling goroutine, read from the first line of its stack
// ("goroutine 42 [running]:"): how a test tells on which goroutine a slow call runs. It
// reports a malformed line with t.Error, which any goroutine may call, and returns 0.
func goroutineID(t testing.TB) uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	if len(f) >= 2 && f[0] == "goroutine" {
		if id, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			return id
		}
	}
	t.Errorf("no goroutine id in %q", buf[:n])
	return 0
}

// receive returns what ch receives, or fails the test after 10 s, saying what it waited for.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still waiting after 10s", what)
		var zero T
		return zero
	}
}

// slowCalls are the two kinds of slow call a fill makes.
var slowCalls = []struct {
	name   string
	remote bool
}{{"loader", false}, {"owner's Fetch", true}}

// slowCall is a test's loader and owner at once: a fill of the key, local or remote, calls fn.
func slowCall(t *testing.T, cfg Config, remote bool, fn func(ctx context.Context, key string) (Value, error)) (*Group, *countingLoader, flightKey) {
	l := &countingLoader{fn: fn}
	g := newTestGroup(t, l, cfg)
	if remote {
		g.SetPeers(&ownerPicker{peer: &fakePeer{fn: func(ctx context.Context, _, key string) (Value, error) {
			return fn(ctx, key)
		}}})
	}
	return g, l, flightKey{key: "k", remote: remote}
}

// A Background caller whose slow call ignores its context: the caller that joined it gets
// ErrLoadTimeout at the load timeout while the call still runs, nothing is cached, and the
// next Get starts a new fill. The Background caller, on whose goroutine the call runs,
// returns when the call does, with the timeout the others got: the late answer is dropped.
func TestInlineSlowCallIgnoresItsContext(t *testing.T) {
	errOrigin := errors.New("origin down")
	for _, sc := range slowCalls {
		remote := sc.remote
		t.Run(sc.name, func(t *testing.T) {
			unblock := make(chan struct{})
			var unblockOnce sync.Once
			release := func() { unblockOnce.Do(func() { close(unblock) }) }
			t.Cleanup(release)
			entered := make(chan struct{}, 2)
			var calls atomic.Int64
			cfg := testConfig()
			cfg.LoadTimeout = time.Second
			cfg.HotCacheRate = 1 // a fetched value is always kept hot: a late one would show
			g, l, k := slowCall(t, cfg, remote, func(context.Context, string) (Value, error) {
				entered <- struct{}{}
				if calls.Add(1) == 1 {
					<-unblock // ignores its context
					return Value{Bytes: []byte("late")}, nil
				}
				return Value{}, errOrigin
			})

			start := time.Now()
			first := make(chan error, 1)
			go func() {
				_, err := g.Get(context.Background(), "k")
				first <- err
			}()
			receive(t, entered, "the first slow call")
			second := make(chan error, 1)
			go func() {
				_, err := g.Get(t.Context(), "k")
				second <- err
			}()
			eventually(t, 10*time.Second, "the second caller joined", func() bool { return g.flights.waiters(k) == 2 })

			if err := receive(t, second, "the caller that joined, while the slow call is blocked"); !errors.Is(err, ErrLoadTimeout) {
				t.Fatalf("the caller that joined got %v, want ErrLoadTimeout", err)
			}
			if took := time.Since(start); took < cfg.LoadTimeout {
				t.Fatalf("the caller that joined was released after %v, before the load timeout", took)
			}
			if st := g.Stats(); st.Main.Items+st.Hot.Items != 0 {
				t.Fatalf("%d+%d items cached after a timeout", st.Main.Items, st.Hot.Items)
			}

			if _, err := g.Get(context.Background(), "k"); !errors.Is(err, errOrigin) {
				t.Fatalf("the Get after the timeout got %v, want a new fill's %v", err, errOrigin)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("%d slow calls, want 2: the Get after the timeout starts a new fill", n)
			}
			select {
			case err := <-first:
				t.Fatalf("the Background caller returned (%v) while its slow call still runs", err)
			default:
			}

			release()
			if err := receive(t, first, "the Background caller, once its slow call returned"); !errors.Is(err, ErrLoadTimeout) {
				t.Fatalf("the Background caller got %v, want ErrLoadTimeout (its late answer dropped)", err)
			}
			if st := g.Stats(); st.Main.Items+st.Hot.Items != 0 {
				t.Fatalf("the late answer was cached: %d+%d items", st.Main.Items, st.Hot.Items)
			}
			if n := l.calls.Load(); (n != 0) == remote {
				t.Fatalf("loader called %d times, remote %v", n, remote)
			}
		})
	}
}

// A slow call that panics on a Background caller's goroutine fails that caller and the one
// that joined it with ErrLoaderPanic (the loader's, not the fill's own), and the next Get
// starts a new fill.
func TestInlineSlowCallPanics(t *testing.T) {
	for _, sc := range slowCalls {
		remote := sc.remote
		t.Run(sc.name, func(t *testing.T) {
			gt := newGate()
			t.Cleanup(gt.release)
			var calls atomic.Int64
			g, _, k := slowCall(t, testConfig(), remote, func(ctx context.Context, key string) (Value, error) {
				if calls.Add(1) == 1 {
					if err := gt.wait(ctx); err != nil {
						return Value{}, err
					}
					panic("inline bug")
				}
				return Value{Bytes: []byte("fresh")}, nil
			})

			errs := make(chan error, 2)
			go func() {
				_, err := g.Get(context.Background(), "k")
				errs <- err
			}()
			gt.waitEntered(t, 1)
			go func() {
				_, err := g.Get(t.Context(), "k")
				errs <- err
			}()
			eventually(t, 10*time.Second, "the second caller joined", func() bool { return g.flights.waiters(k) == 2 })
			gt.release()
			for range 2 {
				err := receive(t, errs, "a caller of the fill that panicked")
				if !errors.Is(err, ErrLoaderPanic) || strings.Contains(err.Error(), "outside the loader") {
					t.Fatalf("a caller got %v, want the slow call's panic as ErrLoaderPanic", err)
				}
			}
			if n := g.Stats().LoaderPanics; (n == 1) != !remote || n > 1 {
				t.Fatalf("LoaderPanics = %d, remote %v", n, remote)
			}

			res, err := g.Get(context.Background(), "k")
			if err != nil || string(res.Bytes) != "fresh" {
				t.Fatalf("the Get after the panic got %q %v, want a new fill's value", res.Bytes, err)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("%d slow calls, want 2", n)
			}
		})
	}
}

type inlineCtxKey struct{}

// The slow call runs on the caller's goroutine exactly when the caller's context never ends,
// and under the same context either way: the caller's values, the load timeout's deadline.
func TestInlineRunsOnTheCallersGoroutine(t *testing.T) {
	values := context.WithValue(context.Background(), inlineCtxKey{}, "caller's")
	cancellable, cancel := context.WithCancel(values)
	t.Cleanup(cancel)
	tests := []struct {
		name   string
		ctx    context.Context
		inline bool
	}{
		{"values over Background", values, true},
		{"WithoutCancel", context.WithoutCancel(cancellable), true},
		{"cancellable", cancellable, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type seen struct {
				goroutine uint64
				value     any
				deadline  time.Time
				ok        bool
			}
			var got seen
			l := &countingLoader{fn: func(ctx context.Context, _ string) (Value, error) {
				got.goroutine = goroutineID(t)
				got.value = ctx.Value(inlineCtxKey{})
				got.deadline, got.ok = ctx.Deadline()
				return Value{Bytes: []byte("v")}, nil
			}}
			cfg := testConfig()
			g := newTestGroup(t, l, cfg)
			caller := goroutineID(t)
			before := time.Now()
			if _, err := g.Get(tt.ctx, "k"); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			if (got.goroutine == caller) != tt.inline {
				t.Errorf("the loader ran on goroutine %d, the caller is %d; want the caller's: %v", got.goroutine, caller, tt.inline)
			}
			if got.value != "caller's" {
				t.Errorf("the loader's ctx.Value = %v, want the caller's value", got.value)
			}
			if !got.ok || got.deadline.Before(before.Add(cfg.LoadTimeout)) || got.deadline.After(after.Add(cfg.LoadTimeout)) {
				t.Errorf("the loader's deadline is %v (%v) after the Get began, want the load timeout %v", got.deadline.Sub(before), got.ok, cfg.LoadTimeout)
			}
		})
	}
}

// Background callers blocked in their loads hold only their own goroutines; callers whose
// context can end hold one more each, for the slow call (the comparison shows the count
// measures something).
func TestInlineCostsNoGoroutine(t *testing.T) {
	const callers = 200
	measure := func(t *testing.T, ctx context.Context) int {
		entered, open := make(chan struct{}, callers), make(chan struct{})
		l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
			entered <- struct{}{}
			<-open
			return Value{Bytes: []byte("loaded " + key)}, nil
		}}
		cfg := testConfig()
		cfg.MaxConcurrentLoads = 0 // every load at once
		g := newTestGroup(t, l, cfg)
		runtime.GC()
		base := runtime.NumGoroutine()
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				if _, err := g.Get(ctx, fmt.Sprint("k", i)); err != nil {
					t.Error(err)
				}
			})
		}
		for range callers {
			receive(t, entered, "every loader called")
		}
		extra := runtime.NumGoroutine() - base - callers
		close(open)
		wg.Wait()
		return extra
	}
	inline := measure(t, context.Background())
	spawned := measure(t, t.Context())
	t.Logf("goroutines beyond the %d callers while their loads wait: Background %d, cancellable %d", callers, inline, spawned)
	if inline > 10 {
		t.Errorf("%d goroutines beyond the Background callers, want none (a few of the runtime's)", inline)
	}
	if spawned < callers {
		t.Errorf("only %d goroutines beyond the cancellable callers: the comparison measures nothing", spawned)
	}
}

// A blocking Peer's fetch for a Background caller runs on its goroutine, and so does the
// local load it falls back to when the owner cannot be reached: one load, whose value the
// caller and the one that joined the fetch both get.
func TestInlineFetch(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(key string) (Value, error)
		want      string
		source    Source
		loads     int64
		fallbacks int64
	}{
		{
			name:   "owner answers",
			answer: func(key string) (Value, error) { return Value{Bytes: []byte("owned " + key)}, nil },
			want:   "owned k", source: SourcePeer,
		},
		{
			name:   "owner unreachable",
			answer: func(string) (Value, error) { return Value{}, fmt.Errorf("dial: %w", ErrPeerUnavailable) },
			want:   "value of k", source: SourceLoader, loads: 1, fallbacks: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := newGate()
			t.Cleanup(gt.release)
			var fetchedOn, loadedOn atomic.Uint64
			peer := &fakePeer{fn: func(ctx context.Context, _, key string) (Value, error) {
				fetchedOn.Store(goroutineID(t))
				if err := gt.wait(ctx); err != nil {
					return Value{}, err
				}
				return tt.answer(key)
			}}
			l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
				loadedOn.Store(goroutineID(t))
				return Value{Bytes: []byte("value of " + key)}, nil
			}}
			g := newTestGroup(t, l, testConfig())
			g.SetPeers(&ownerPicker{peer: peer})

			type answer struct {
				res       Result
				err       error
				goroutine uint64
			}
			answers := make(chan answer, 2)
			go func() {
				id := goroutineID(t)
				res, err := g.Get(context.Background(), "k")
				answers <- answer{res, err, id}
			}()
			gt.waitEntered(t, 1)
			go func() {
				res, err := g.Get(t.Context(), "k")
				answers <- answer{res, err, 0}
			}()
			eventually(t, 10*time.Second, "the second caller joined", func() bool {
				return g.flights.waiters(flightKey{key: "k", remote: true}) == 2
			})
			gt.release()
			for range 2 {
				a := receive(t, answers, "a caller of the fetch")
				if a.err != nil || string(a.res.Bytes) != tt.want || a.res.Source != tt.source {
					t.Fatalf("a caller got %q from %v, %v; want %q from %v", a.res.Bytes, a.res.Source, a.err, tt.want, tt.source)
				}
				if a.goroutine == 0 {
					continue
				}
				if fetchedOn.Load() != a.goroutine {
					t.Errorf("the fetch ran on goroutine %d, not on the Background caller's (%d)", fetchedOn.Load(), a.goroutine)
				}
				if tt.loads > 0 && loadedOn.Load() != a.goroutine {
					t.Errorf("the fallback load ran on goroutine %d, not on the Background caller's (%d)", loadedOn.Load(), a.goroutine)
				}
			}
			st := g.Stats()
			if n := peer.calls.Load(); n != 1 || l.calls.Load() != tt.loads || st.FallbackLoads != tt.fallbacks {
				t.Fatalf("fetches/loads/fallbacks = %d/%d/%d, want 1/%d/%d", n, l.calls.Load(), st.FallbackLoads, tt.loads, tt.fallbacks)
			}
		})
	}
}
