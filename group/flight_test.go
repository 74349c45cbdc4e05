package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// panickyHandler is a log handler with a bug: it panics on a record whose message it is set to
// panic on, and discards the rest.
type panickyHandler struct {
	slog.Handler
	on atomic.Pointer[string]
}

func (h *panickyHandler) Handle(ctx context.Context, r slog.Record) error {
	if msg := h.on.Load(); msg != nil && r.Message == *msg {
		panic("log handler bug")
	}
	return h.Handler.Handle(ctx, r)
}

func (h *panickyHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *panickyHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

// A fill that panics outside the slow call (here while settling a fetch: logging the
// fallback, or storing the fetched value) releases every caller sharing it with an error, and
// the next Get starts a new fill: whoever settles it, the first caller on its own goroutine
// (its context never ends: the call ran inline), the first caller after waiting for the call's
// goroutine, or the goroutine that took over the wait when the first caller left (drive).
func TestFillPanicOutsideTheLoader(t *testing.T) {
	tests := []struct {
		name string
		// answer is the owner's answer; breakFill makes the fill's own code panic on it, and
		// mendFill undoes that.
		answer    func() (Value, error)
		breakFill func(g *Group, h *panickyHandler)
		mendFill  func(g *Group, h *panickyHandler)
		want      Source // what the Get after the panic gets
	}{
		{
			name:   "logging the fallback to a local load",
			answer: func() (Value, error) { return Value{}, fmt.Errorf("dial: %w", ErrPeerUnavailable) },
			breakFill: func(_ *Group, h *panickyHandler) {
				msg := "owner unreachable; loading locally"
				h.on.Store(&msg)
			},
			mendFill: func(_ *Group, h *panickyHandler) { h.on.Store(nil) },
			want:     SourceLoader,
		},
		{
			name:   "storing the fetched value",
			answer: func() (Value, error) { return Value{Bytes: []byte("remote")}, nil },
			// A rate the constructor would reject: rand.IntN panics on it when the fetch
			// decides whether to keep the value hot.
			breakFill: func(g *Group, _ *panickyHandler) { g.cfg.HotCacheRate = -1 },
			mendFill:  func(g *Group, _ *panickyHandler) { g.cfg.HotCacheRate = 1 },
			want:      SourcePeer,
		},
	}
	type mode struct {
		name   string
		leaves bool // the first caller leaves before the answer; drive settles the fill
		ctx    func(t *testing.T) context.Context
	}
	modes := []mode{
		{"inline", false, func(*testing.T) context.Context { return context.Background() }},
		{"on a goroutine", false, func(t *testing.T) context.Context { return t.Context() }},
		{"driven after the first caller left", true, func(t *testing.T) context.Context { return t.Context() }},
	}
	for _, tt := range tests {
		for _, md := range modes {
			t.Run(tt.name+"/"+md.name, func(t *testing.T) {
				testFillPanic(t, tt.answer, tt.breakFill, tt.mendFill, tt.want, md.leaves, md.ctx(t))
			})
		}
	}
}

func testFillPanic(t *testing.T, answer func() (Value, error), breakFill, mendFill func(*Group, *panickyHandler), want Source, leaves bool, ctx context.Context) {
	const callers = 50
	gt := newGate()
	var held atomic.Bool
	held.Store(true)
	peer := &fakePeer{fn: func(ctx context.Context, _, _ string) (Value, error) {
		if held.Load() {
			if err := gt.wait(ctx); err != nil {
				return Value{}, err
			}
		}
		return answer()
	}}
	h := &panickyHandler{Handler: slog.DiscardHandler}
	l := &countingLoader{}
	g, err := New(t.Name(), l, testConfig(), slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	g.SetPeers(&ownerPicker{peer: peer})
	breakFill(g, h)

	errs := make(chan error, callers)
	firstCtx, leave := context.WithCancel(ctx)
	defer leave()
	first := make(chan error, 1)
	go func() {
		_, err := g.Get(firstCtx, "k")
		first <- err
	}()
	gt.waitEntered(t, 1) // the first caller leads the fill
	var wg sync.WaitGroup
	for range callers - 1 {
		wg.Go(func() {
			_, err := g.Get(ctx, "k")
			errs <- err
		})
	}
	eventually(t, 10*time.Second, "every caller joined the fetch", func() bool {
		return g.flights.waiters(flightKey{key: "k", remote: true}) == callers
	})
	if leaves {
		leave()
		if err := receive(t, first, "the first caller"); !errors.Is(err, context.Canceled) {
			t.Fatalf("the first caller got %v, want context.Canceled", err)
		}
		errs <- fmt.Errorf("left: %w", ErrLoaderPanic) // stands for its answer below
	} else {
		go func() { errs <- <-first }()
	}
	gt.release()
	deadline := time.After(10 * time.Second)
	for range callers {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrLoaderPanic) || !(strings.Contains(err.Error(), "outside the loader") || strings.HasPrefix(err.Error(), "left: ")) {
				t.Fatalf("a caller got %v, want the fill's panic", err)
			}
		case <-deadline:
			t.Fatal("callers still waiting for a fill that panicked")
		}
	}
	wg.Wait()
	if n := g.Stats().LoaderPanics; n != 0 {
		t.Fatalf("LoaderPanics = %d: the loader did not panic", n)
	}

	mendFill(g, h)
	held.Store(false)
	res, err := g.Get(t.Context(), "k")
	if err != nil || res.Source != want {
		t.Fatalf("Get after the panic = %v %v, want a new fill from %v", res.Source, err, want)
	}
	if n := peer.calls.Load(); n != 2 {
		t.Fatalf("owner asked %d times, want 2 (one per fill)", n)
	}
}

// When the caller that started a fill leaves, the fill goes on for the callers that remain:
// they get its answer, its timeout or its panic, and what it loads is cached.
func TestFillGoesOnWithoutItsFirstCaller(t *testing.T) {
	unblock := make(chan struct{}) // ends the loader that ignores its context, after the test
	t.Cleanup(func() { close(unblock) })
	tests := []struct {
		name    string
		load    func(ctx context.Context) (Value, error) // called once the first caller left
		wantErr error                                    // nil: the value
		cached  bool
	}{
		{"answers", func(context.Context) (Value, error) { return Value{Bytes: []byte("late")}, nil }, nil, true},
		{"ignores its context", func(context.Context) (Value, error) { <-unblock; return Value{}, nil }, ErrLoadTimeout, false},
		{"panics", func(context.Context) (Value, error) { panic("late bug") }, ErrLoaderPanic, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := newGate()
			l := &countingLoader{fn: func(ctx context.Context, _ string) (Value, error) {
				if err := gt.wait(ctx); err != nil {
					return Value{}, err
				}
				return tt.load(ctx)
			}}
			cfg := testConfig()
			cfg.LoadTimeout = time.Second
			g := newTestGroup(t, l, cfg)
			t.Cleanup(gt.release)

			firstCtx, leave := context.WithCancel(context.Background())
			first := make(chan error, 1)
			go func() {
				_, err := g.Get(firstCtx, "k")
				first <- err
			}()
			gt.waitEntered(t, 1)
			type answer struct {
				res Result
				err error
			}
			stayer := make(chan answer, 1)
			go func() {
				res, err := g.Get(context.Background(), "k")
				stayer <- answer{res, err}
			}()
			eventually(t, 10*time.Second, "both callers joined", func() bool {
				return g.flights.waiters(flightKey{key: "k"}) == 2
			})
			leave()
			if err := <-first; !errors.Is(err, context.Canceled) {
				t.Fatalf("the first caller got %v, want context.Canceled", err)
			}
			gt.release()
			var got answer
			select {
			case got = <-stayer:
			case <-time.After(10 * time.Second):
				t.Fatal("the caller that stayed is still waiting")
			}
			if tt.wantErr == nil {
				if got.err != nil || string(got.res.Bytes) != "late" {
					t.Fatalf("the caller that stayed got %q %v", got.res.Bytes, got.err)
				}
			} else if !errors.Is(got.err, tt.wantErr) {
				t.Fatalf("the caller that stayed got %v, want %v", got.err, tt.wantErr)
			}
			if st := g.Stats(); (st.Main.Items == 1) != tt.cached {
				t.Fatalf("Main.Items = %d, want cached = %v", st.Main.Items, tt.cached)
			}
			if n := l.calls.Load(); n != 1 {
				t.Fatalf("loader called %d times, want 1", n)
			}
		})
	}
}

// A slow call that calls runtime.Goexit (as a test's loader calling t.Fatal does) caches
// nothing and is a loader panic for every other caller at once, whether it ran on a goroutine
// of its own or on a Background caller's goroutine (flights.inline), which ends with it.
func TestSlowCallGoexit(t *testing.T) {
	tests := []struct {
		name    string
		ctx     func(t *testing.T) context.Context // the first caller's
		wantErr error                              // the joined caller's
		panics  int64
	}{
		{"on a goroutine of its own", func(t *testing.T) context.Context { return t.Context() }, ErrLoaderPanic, 1},
		{"on the caller's goroutine", func(*testing.T) context.Context { return context.Background() }, ErrLoaderPanic, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := newGate()
			t.Cleanup(gt.release)
			l := &countingLoader{fn: func(ctx context.Context, _ string) (Value, error) {
				if err := gt.wait(ctx); err != nil {
					return Value{}, err
				}
				runtime.Goexit()
				return Value{}, nil
			}}
			cfg := testConfig()
			cfg.LoadTimeout = time.Minute // released at the deadline would fail the 10 s wait below
			g := newTestGroup(t, l, cfg)
			go func() { _, _ = g.Get(tt.ctx(t), "k") }()
			gt.waitEntered(t, 1)
			joined := make(chan error, 1)
			go func() {
				_, err := g.Get(t.Context(), "k")
				joined <- err
			}()
			eventually(t, 10*time.Second, "the second caller joined", func() bool {
				return g.flights.waiters(flightKey{key: "k"}) == 2
			})
			gt.release()
			select {
			case err := <-joined:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("the caller that joined got %v, want %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the caller that joined is still waiting")
			}
			if st := g.Stats(); st.Main.Items != 0 || st.LoaderPanics != tt.panics {
				t.Fatalf("Main.Items = %d, LoaderPanics = %d; want 0 and %d", st.Main.Items, st.LoaderPanics, tt.panics)
			}
		})
	}
}
