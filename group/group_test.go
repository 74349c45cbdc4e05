package group

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	ok := LoaderFunc(func(context.Context, string) (Value, error) { return Value{}, nil })
	tests := []struct {
		name    string
		group   string
		loader  Loader
		mutate  func(*Config)
		wantErr string
	}{
		{"defaults", "g", ok, func(*Config) {}, ""},
		{"empty name", "", ok, func(*Config) {}, "empty name"},
		{"nil loader", "g", nil, func(*Config) {}, "nil loader"},
		{"zero bytes", "g", ok, func(c *Config) { c.CacheBytes = 0 }, "CacheBytes"},
		{"hot fraction too big", "g", ok, func(c *Config) { c.HotCacheFraction = 0.6 }, "HotCacheFraction"},
		{"negative hot fraction", "g", ok, func(c *Config) { c.HotCacheFraction = -0.1 }, "HotCacheFraction"},
		{"negative TTL", "g", ok, func(c *Config) { c.TTL = -time.Second }, "TTL"},
		{"negative NegativeTTL", "g", ok, func(c *Config) { c.NegativeTTL = -time.Second }, "NegativeTTL"},
		{"zero load timeout", "g", ok, func(c *Config) { c.LoadTimeout = 0 }, "LoadTimeout"},
		{"negative hot rate", "g", ok, func(c *Config) { c.HotCacheRate = -1 }, "HotCacheRate"},
		{"two faults reported", "g", ok, func(c *Config) { c.CacheBytes = -1; c.LoadTimeout = -1 }, "LoadTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			g, err := New(tt.group, tt.loader, cfg, nil)
			if tt.wantErr == "" {
				if err != nil || g == nil {
					t.Fatalf("New = %v, %v; want a group", g, err)
				}
				if g.Name() != tt.group || g.Config() != cfg {
					t.Fatalf("Name/Config = %q/%+v, want %q/%+v", g.Name(), g.Config(), tt.group, cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestGetSharesOneLoad(t *testing.T) {
	tests := []struct {
		name    string
		callers int
		local   bool // GetLocal instead of Get
	}{
		{"one caller", 1, false},
		{"1000 callers", 1000, false},
		{"1000 peer requests", 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := newGate()
			l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
				if err := gt.wait(ctx); err != nil {
					return Value{}, err
				}
				return Value{Bytes: []byte("v:" + key)}, nil
			}}
			g := newTestGroup(t, l, testConfig())
			get := g.Get
			if tt.local {
				get = g.GetLocal
			}

			var wg sync.WaitGroup
			errs := make(chan error, tt.callers)
			for range tt.callers {
				wg.Go(func() {
					res, err := get(t.Context(), "cold")
					if err == nil && string(res.Bytes) != "v:cold" {
						err = fmt.Errorf("got %q", res.Bytes)
					}
					errs <- err
				})
			}
			gt.waitEntered(t, 1)
			eventually(t, 10*time.Second, "every caller joined the fill", func() bool {
				return g.flights.waiters(flightKey{key: "cold"}) == tt.callers
			})
			gt.release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := l.calls.Load(); n != 1 {
				t.Fatalf("loader called %d times, want 1", n)
			}
			st := g.Stats()
			if st.Loads != int64(tt.callers) || st.LoadsDeduped != 1 || st.LocalLoads != 1 {
				t.Fatalf("Loads/LoadsDeduped/LocalLoads = %d/%d/%d, want %d/1/1",
					st.Loads, st.LoadsDeduped, st.LocalLoads, tt.callers)
			}
			res, err := get(t.Context(), "cold")
			if err != nil || res.Source != SourceMain || l.calls.Load() != 1 {
				t.Fatalf("after the fill: %v %v, loader calls %d; want a main-cache hit", res.Source, err, l.calls.Load())
			}
		})
	}
}

func TestLoaderPanic(t *testing.T) {
	tests := []struct {
		name    string
		callers int
		panicV  any
	}{
		{"one caller, string", 1, "boom"},
		{"50 callers, error value", 50, errors.New("bad state")},
		{"50 callers, runtime error", 50, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var panicking atomic.Bool
			panicking.Store(true)
			gt := newGate()
			l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
				if !panicking.Load() {
					return Value{Bytes: []byte("fine")}, nil
				}
				if err := gt.wait(ctx); err != nil {
					return Value{}, err
				}
				if tt.panicV == nil {
					var items []int
					_ = items[len(key)] // a runtime panic (index out of range), not a call to panic
				}
				panic(tt.panicV)
			}}
			g := newTestGroup(t, l, testConfig())

			var wg sync.WaitGroup
			errs := make(chan error, tt.callers)
			for range tt.callers {
				wg.Go(func() {
					_, err := g.Get(t.Context(), "k")
					errs <- err
				})
			}
			gt.waitEntered(t, 1)
			eventually(t, 10*time.Second, "every caller joined the fill", func() bool {
				return g.flights.waiters(flightKey{key: "k"}) == tt.callers
			})
			gt.release()
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, ErrLoaderPanic) {
					t.Fatalf("waiter got %v, want ErrLoaderPanic", err)
				}
			}
			st := g.Stats()
			if st.LoaderPanics != 1 || st.LocalLoadErrs != 1 || st.Main.Items != 0 {
				t.Fatalf("LoaderPanics/LocalLoadErrs/Main.Items = %d/%d/%d, want 1/1/0",
					st.LoaderPanics, st.LocalLoadErrs, st.Main.Items)
			}

			panicking.Store(false)
			res, err := g.Get(t.Context(), "k")
			if err != nil || string(res.Bytes) != "fine" || res.Source != SourceLoader {
				t.Fatalf("Get after the panic = %q %v %v, want a fresh load", res.Bytes, res.Source, err)
			}
		})
	}
}

func TestCancelledCallerLeavesAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // 0: the test cancels the leaver's context by hand
		want    error
	}{
		{"cancelled", 0, context.Canceled},
		{"deadline", 20 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gt := newGate()
			var loaderCtxErr atomic.Value
			l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
				err := gt.wait(ctx)
				loaderCtxErr.Store(fmt.Sprint(ctx.Err()))
				if err != nil {
					return Value{}, err
				}
				return Value{Bytes: []byte("shared")}, nil
			}}
			g := newTestGroup(t, l, testConfig())
			t.Cleanup(gt.release)

			leaverCtx, cancel := context.WithCancel(context.Background())
			if tt.timeout > 0 {
				leaverCtx, cancel = context.WithTimeout(context.Background(), tt.timeout)
			}
			defer cancel()
			leaver := make(chan error, 1)
			go func() {
				_, err := g.Get(leaverCtx, "k")
				leaver <- err
			}()
			gt.waitEntered(t, 1)
			stayer := make(chan Result, 1)
			go func() {
				res, _ := g.Get(context.Background(), "k")
				stayer <- res
			}()
			eventually(t, 10*time.Second, "both callers joined", func() bool {
				return g.flights.waiters(flightKey{key: "k"}) == 2
			})
			if tt.timeout == 0 {
				cancel()
			}
			// The loader is still held at the gate: the leaver must come back without it.
			select {
			case err := <-leaver:
				if !errors.Is(err, tt.want) {
					t.Fatalf("leaver got %v, want %v", err, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the cancelled caller is still waiting for the fill")
			}
			gt.release()
			res := <-stayer
			if string(res.Bytes) != "shared" {
				t.Fatalf("the caller that stayed got %q", res.Bytes)
			}
			if got := loaderCtxErr.Load(); got != "<nil>" {
				t.Fatalf("the loader's context ended with the leaver's: %v", got)
			}
			if n := l.calls.Load(); n != 1 {
				t.Fatalf("loader called %d times, want 1", n)
			}
		})
	}
}

func TestLoadTimeout(t *testing.T) {
	// unblock ends the calls that ignore their context, once the test is over.
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) })
	honours := func(ctx context.Context) error {
		<-ctx.Done()
		return fmt.Errorf("origin: %w", ctx.Err())
	}
	ignores := func(context.Context) error {
		<-unblock
		return errors.New("too late")
	}
	tests := []struct {
		name  string
		wait  func(ctx context.Context) error
		peer  bool
		local bool
	}{
		{name: "loader", wait: honours, local: true},
		{name: "loader that ignores its context", wait: ignores, local: true},
		{name: "owner that does not answer", wait: honours, peer: true},
		{name: "owner that ignores its context", wait: ignores, peer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &countingLoader{fn: func(ctx context.Context, key string) (Value, error) {
				return Value{}, tt.wait(ctx)
			}}
			cfg := testConfig()
			cfg.LoadTimeout = 30 * time.Millisecond
			g := newTestGroup(t, l, cfg)
			if tt.peer {
				g.SetPeers(&ownerPicker{peer: &fakePeer{fn: func(ctx context.Context, _, _ string) (Value, error) {
					return Value{}, tt.wait(ctx)
				}}})
			}
			_, err := g.Get(t.Context(), "slow")
			if !errors.Is(err, ErrLoadTimeout) {
				t.Fatalf("Get = %v, want ErrLoadTimeout", err)
			}
			if got := l.calls.Load(); (got == 1) != tt.local {
				t.Fatalf("loader calls = %d, local = %v", got, tt.local)
			}
			if g.Stats().Main.Items != 0 {
				t.Fatal("a timed-out load was cached")
			}
		})
	}
}

func TestLoaderErrorIsNotCached(t *testing.T) {
	boom := errors.New("origin down")
	l := &countingLoader{fn: func(context.Context, string) (Value, error) { return Value{}, boom }}
	cfg := testConfig()
	cfg.NegativeTTL = time.Hour
	g := newTestGroup(t, l, cfg)
	for i := 1; i <= 3; i++ {
		_, err := g.Get(t.Context(), "k")
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), `"k"`) {
			t.Fatalf("Get %d = %v, want the loader's error with the key", i, err)
		}
		if n := l.calls.Load(); n != int64(i) {
			t.Fatalf("after %d Gets the loader ran %d times", i, n)
		}
	}
	if st := g.Stats(); st.LocalLoadErrs != 3 || st.LocalLoads != 0 {
		t.Fatalf("LocalLoadErrs/LocalLoads = %d/%d, want 3/0", st.LocalLoadErrs, st.LocalLoads)
	}
}

func TestInvalidKey(t *testing.T) {
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	for name, get := range map[string]func(context.Context, string) (Result, error){"Get": g.Get, "GetLocal": g.GetLocal} {
		if _, err := get(t.Context(), ""); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s(\"\") = %v, want ErrInvalidKey", name, err)
		}
	}
	if _, err := g.Remove(t.Context(), ""); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Remove(\"\") = %v, want ErrInvalidKey", err)
	}
	if l.calls.Load() != 0 {
		t.Error("the loader was asked for an empty key")
	}
}

func TestValueTTL(t *testing.T) {
	const short = 40 * time.Millisecond
	tests := []struct {
		name      string
		groupTTL  time.Duration
		loaderTTL time.Duration
		wantTTL   time.Duration // what the loading Get reports; 0 = never expires
		expires   bool
	}{
		{"group TTL", short, 0, short, true},
		{"loader TTL shorter than the group's", time.Hour, short, short, true},
		{"loader TTL longer than the group's", short, time.Hour, time.Hour, false},
		{"loader TTL without a group TTL", 0, short, short, true},
		{"never", 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gen atomic.Int64
			l := &countingLoader{fn: func(context.Context, string) (Value, error) {
				return Value{Bytes: fmt.Appendf(nil, "gen %d", gen.Add(1)), TTL: tt.loaderTTL}, nil
			}}
			cfg := testConfig()
			cfg.TTL = tt.groupTTL
			g := newTestGroup(t, l, cfg)

			first, err := g.Get(t.Context(), "k")
			loaded := time.Now()
			if err != nil || first.Source != SourceLoader || first.TTL != tt.wantTTL {
				t.Fatalf("first Get = %v %v TTL %v, want a load with TTL %v", first.Source, err, first.TTL, tt.wantTTL)
			}
			// The entry was made before the loading Get returned, so it must be gone by
			// loaded+TTL: a main-cache answer to a Get that starts later is a stale read.
			deadline := loaded.Add(tt.wantTTL)
			prevTTL := first.TTL
			sawHit := false
			for time.Since(loaded) < 10*time.Second {
				if !tt.expires && time.Since(loaded) > 3*short {
					break
				}
				start := time.Now()
				res, err := g.Get(t.Context(), "k")
				if err != nil {
					t.Fatal(err)
				}
				if res.Source == SourceLoader {
					break
				}
				sawHit = true
				if tt.wantTTL == 0 {
					if res.TTL != 0 {
						t.Fatalf("a value that never expires reported TTL %v", res.TTL)
					}
					continue
				}
				if !start.Before(deadline) {
					t.Fatalf("served %q %v after its deadline", res.Bytes, start.Sub(deadline))
				}
				if res.TTL <= 0 || res.TTL > prevTTL {
					t.Fatalf("remaining TTL %v after %v: want it positive and shrinking", res.TTL, prevTTL)
				}
				prevTTL = res.TTL
			}
			if !sawHit {
				t.Fatal("no Get was answered from the cache")
			}
			reloaded := l.calls.Load() > 1
			if reloaded != tt.expires {
				t.Fatalf("reloaded = %v, want %v (loader calls %d)", reloaded, tt.expires, l.calls.Load())
			}
			if exp := g.Stats().Main.Expirations; (exp > 0) != tt.expires {
				t.Fatalf("Main.Expirations = %d, want expired = %v", exp, tt.expires)
			}
		})
	}
}

func TestNegativeCaching(t *testing.T) {
	tests := []struct {
		name        string
		negativeTTL time.Duration
		gets        int
		wantCalls   int64
		wantNegHits int64
	}{
		{"off when zero", 0, 10, 10, 0},
		{"on", time.Hour, 10, 1, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &countingLoader{fn: func(context.Context, string) (Value, error) {
				return Value{}, fmt.Errorf("no row: %w", ErrNotFound)
			}}
			cfg := testConfig()
			cfg.NegativeTTL = tt.negativeTTL
			g := newTestGroup(t, l, cfg)
			for range tt.gets {
				if _, err := g.Get(t.Context(), "missing"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get = %v, want ErrNotFound", err)
				}
			}
			st := g.Stats()
			if l.calls.Load() != tt.wantCalls || st.NegativeHits != tt.wantNegHits || st.CacheHits != tt.wantNegHits {
				t.Fatalf("loader calls/NegativeHits/CacheHits = %d/%d/%d, want %d/%d/%d",
					l.calls.Load(), st.NegativeHits, st.CacheHits, tt.wantCalls, tt.wantNegHits, tt.wantNegHits)
			}
			if st.LocalLoads != tt.wantCalls || st.LocalLoadErrs != 0 {
				t.Fatalf("LocalLoads/LocalLoadErrs = %d/%d: ErrNotFound is an answer, not a failure", st.LocalLoads, st.LocalLoadErrs)
			}
		})
	}

	t.Run("expires", func(t *testing.T) {
		var exists atomic.Bool
		l := &countingLoader{fn: func(context.Context, string) (Value, error) {
			if exists.Load() {
				return Value{Bytes: []byte("created")}, nil
			}
			return Value{}, ErrNotFound
		}}
		cfg := testConfig()
		cfg.NegativeTTL = 30 * time.Millisecond
		g := newTestGroup(t, l, cfg)
		if _, err := g.Get(t.Context(), "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v", err)
		}
		exists.Store(true)
		eventually(t, 10*time.Second, "the key is found once the negative entry expires", func() bool {
			res, err := g.Get(t.Context(), "k")
			return err == nil && string(res.Bytes) == "created"
		})
		if n := l.calls.Load(); n != 2 {
			t.Fatalf("loader calls = %d, want 2 (one per negative TTL)", n)
		}
	})
}

func TestRemoveAndPurge(t *testing.T) {
	tests := []struct {
		name         string
		drop         func(ctx context.Context, g *Group) (int, error)
		wantConfirm  int
		wantInvKeys  []string
		wantInvGroup []string
		otherGone    bool // whether the untouched key "b" is dropped too
	}{
		{"RemoveLocal", func(_ context.Context, g *Group) (int, error) { g.RemoveLocal("a"); return 0, nil }, 0, nil, nil, false},
		{"PurgeLocal", func(_ context.Context, g *Group) (int, error) { g.PurgeLocal(); return 0, nil }, 0, nil, nil, true},
		{"Remove", func(ctx context.Context, g *Group) (int, error) { return g.Remove(ctx, "a") }, 2, []string{"TestRemoveAndPurge/Remove/a"}, nil, false},
		{"Purge", func(ctx context.Context, g *Group) (int, error) { return g.Purge(ctx) }, 3, nil, []string{"TestRemoveAndPurge/Purge"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &countingLoader{}
			g := newTestGroup(t, l, testConfig())
			inv := &fakeInvalidator{}
			g.SetInvalidator(inv)
			for _, k := range []string{"a", "b"} {
				if _, err := g.Get(t.Context(), k); err != nil {
					t.Fatal(err)
				}
			}
			confirmed, err := tt.drop(t.Context(), g)
			if err != nil || confirmed != tt.wantConfirm {
				t.Fatalf("drop = %d, %v; want %d confirmations", confirmed, err, tt.wantConfirm)
			}
			if fmt.Sprint(inv.keys) != fmt.Sprint(tt.wantInvKeys) || fmt.Sprint(inv.groups) != fmt.Sprint(tt.wantInvGroup) {
				t.Fatalf("invalidator saw keys %v groups %v, want %v %v", inv.keys, inv.groups, tt.wantInvKeys, tt.wantInvGroup)
			}
			res, err := g.Get(t.Context(), "a")
			if err != nil || res.Source != SourceLoader {
				t.Fatalf("Get(a) after the drop = %v %v, want a fresh load", res.Source, err)
			}
			res, err = g.Get(t.Context(), "b")
			if err != nil || (res.Source == SourceLoader) != tt.otherGone {
				t.Fatalf("Get(b) after the drop = %v %v, want dropped = %v", res.Source, err, tt.otherGone)
			}
		})
	}

	t.Run("without an invalidator", func(t *testing.T) {
		g := newTestGroup(t, &countingLoader{}, testConfig())
		g.SetInvalidator(&fakeInvalidator{})
		g.SetInvalidator(nil)
		if n, err := g.Remove(t.Context(), "a"); n != 0 || err != nil {
			t.Fatalf("Remove = %d, %v", n, err)
		}
		if n, err := g.Purge(t.Context()); n != 0 || err != nil {
			t.Fatalf("Purge = %d, %v", n, err)
		}
	})
}

// A fill that is under way when its key is removed hands its value to the callers that were
// waiting, but must not cache it: it was read before the Remove.
func TestRemoveDuringFillDoesNotCacheStaleValue(t *testing.T) {
	tests := []struct {
		name   string
		drop   func(g *Group)
		remote bool
	}{
		{"RemoveLocal during a load", func(g *Group) { g.RemoveLocal("k") }, false},
		{"PurgeLocal during a load", func(g *Group) { g.PurgeLocal() }, false},
		{"RemoveLocal during a fetch", func(g *Group) { g.RemoveLocal("k") }, true},
		{"PurgeLocal during a fetch", func(g *Group) { g.PurgeLocal() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var version atomic.Int64
			version.Store(1)
			gt := newGate()
			var held atomic.Bool
			held.Store(true)
			answer := func(ctx context.Context) (Value, error) {
				v := fmt.Appendf(nil, "v%d", version.Load())
				if held.Load() {
					if err := gt.wait(ctx); err != nil {
						return Value{}, err
					}
				}
				return Value{Bytes: v}, nil
			}
			l := &countingLoader{fn: func(ctx context.Context, _ string) (Value, error) { return answer(ctx) }}
			cfg := testConfig()
			cfg.HotCacheRate = 1
			g := newTestGroup(t, l, cfg)
			if tt.remote {
				g.SetPeers(&ownerPicker{peer: &fakePeer{fn: func(ctx context.Context, _, _ string) (Value, error) { return answer(ctx) }}})
			}

			got := make(chan Result, 1)
			go func() {
				res, err := g.Get(t.Context(), "k")
				if err != nil {
					t.Errorf("Get: %v", err)
				}
				got <- res
			}()
			gt.waitEntered(t, 1)
			version.Store(2) // the origin changes, and the change is announced by a Remove
			tt.drop(g)
			held.Store(false)
			gt.release()
			if res := <-got; string(res.Bytes) != "v1" {
				t.Fatalf("the waiting caller got %q, want the value its fill read (v1)", res.Bytes)
			}
			res, err := g.Get(t.Context(), "k")
			if err != nil || string(res.Bytes) != "v2" {
				t.Fatalf("Get after the Remove = %q %v %v, want v2", res.Bytes, res.Source, err)
			}
		})
	}
}

func TestGetLocalNeverAsksAPeer(t *testing.T) {
	peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) {
		return Value{Bytes: []byte("from peer")}, nil
	}}
	picker := &ownerPicker{peer: peer}
	l := &countingLoader{}
	g := newTestGroup(t, l, testConfig())
	g.SetPeers(picker)

	for range 3 {
		res, err := g.GetLocal(t.Context(), "k")
		if err != nil || string(res.Bytes) != "value of k" {
			t.Fatalf("GetLocal = %q %v", res.Bytes, err)
		}
	}
	if picker.picks.Load() != 0 || peer.calls.Load() != 0 || l.calls.Load() != 1 {
		t.Fatalf("picks/fetches/loads = %d/%d/%d, want 0/0/1", picker.picks.Load(), peer.calls.Load(), l.calls.Load())
	}
	if st := g.Stats(); st.ServerRequests != 3 || st.Gets != 0 || st.CacheHits != 2 {
		t.Fatalf("ServerRequests/Gets/CacheHits = %d/%d/%d, want 3/0/2", st.ServerRequests, st.Gets, st.CacheHits)
	}
}

func TestStats(t *testing.T) {
	boom := errors.New("boom")
	l := &countingLoader{fn: func(_ context.Context, key string) (Value, error) {
		switch key {
		case "missing":
			return Value{}, ErrNotFound
		case "broken":
			return Value{}, boom
		case "panics":
			panic("loader bug")
		}
		return Value{Bytes: []byte(key)}, nil
	}}
	cfg := testConfig()
	cfg.NegativeTTL = time.Hour
	g := newTestGroup(t, l, cfg)
	ctx := t.Context()
	for _, key := range []string{"a", "a", "a", "missing", "missing", "broken", "panics", "bb"} {
		_, _ = g.Get(ctx, key)
	}
	_, _ = g.GetLocal(ctx, "a")
	_, _ = g.GetLocal(ctx, "c")

	st := g.Stats()
	want := Stats{
		Gets:           8,
		CacheHits:      4, // a, a, missing, and GetLocal(a)
		NegativeHits:   1,
		Loads:          6, // a, missing, broken, panics, bb, GetLocal(c)
		LoadsDeduped:   6,
		LocalLoads:     4, // a, missing, bb, c
		LocalLoadErrs:  2,
		LoaderPanics:   1,
		ServerRequests: 2,
	}
	got := st
	got.Main, got.Hot, got.LoadDuration = CacheStats{}, CacheStats{}, Histogram{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats =\n%+v\nwant\n%+v", got, want)
	}
	// Entries: a, bb, c and the negative "missing".
	wantBytes := int64(len("a")*2+len("bb")*2+len("c")*2+len("missing")) + 4*EntryOverhead
	if st.Main.Items != 4 || st.Main.Bytes != wantBytes || st.Main.Hits != 4 {
		t.Fatalf("Main = %+v, want 4 items, %d bytes, 4 hits", st.Main, wantBytes)
	}
	if st.Hot != (CacheStats{}) {
		t.Fatalf("Hot = %+v, want zero without peers", st.Hot)
	}
	var sum uint64
	for _, c := range st.LoadDuration.Counts {
		sum += c
	}
	if st.LoadDuration.Count != 6 || sum != 6 || len(st.LoadDuration.Counts) != len(st.LoadDuration.Bounds)+1 || st.LoadDuration.Sum <= 0 {
		t.Fatalf("LoadDuration = %+v, want 6 observations", st.LoadDuration)
	}
}

func TestEvictionCounted(t *testing.T) {
	l := &countingLoader{fn: func(context.Context, string) (Value, error) {
		return Value{Bytes: make([]byte, 1000)}, nil
	}}
	cfg := testConfig()
	cfg.CacheBytes = 20 * (1000 + EntryOverhead + 8)
	g := newTestGroup(t, l, cfg)
	for i := range 100 {
		if _, err := g.Get(t.Context(), fmt.Sprintf("key-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	st := g.Stats()
	if st.Main.Bytes > cfg.CacheBytes || st.Main.Evictions < 80 || st.Main.Items+st.Main.Evictions != 100 {
		t.Fatalf("Main = %+v with a bound of %d, want >= 80 evictions and items+evictions = 100", st.Main, cfg.CacheBytes)
	}
}

// A value larger than the cache cannot be cached, so serving it would make every request load
// it again: it is refused, and the refusal is remembered like any failed load.
func TestTooLargeValueIsRefusedAndRemembered(t *testing.T) {
	for _, errorTTL := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("error_ttl=%v", errorTTL), func(t *testing.T) {
			cfg := testConfig()
			cfg.CacheBytes = 4096
			cfg.ErrorTTL = errorTTL
			l := &countingLoader{fn: func(context.Context, string) (Value, error) {
				return Value{Bytes: make([]byte, 8192)}, nil
			}}
			g := newTestGroup(t, l, cfg)
			for i := 1; i <= 3; i++ {
				if _, err := g.Get(t.Context(), "big"); !errors.Is(err, ErrValueTooLarge) {
					t.Fatalf("Get %d = %v, want ErrValueTooLarge", i, err)
				}
			}
			wantCalls := int64(3)
			if errorTTL > 0 {
				wantCalls = 1
			}
			if st := g.Stats(); st.Main.Bytes != 0 || l.calls.Load() != wantCalls {
				t.Fatalf("Main.Bytes = %d, loader calls %d; want nothing cached and %d calls", st.Main.Bytes, l.calls.Load(), wantCalls)
			}
		})
	}
}

func TestResultHash(t *testing.T) {
	g := newTestGroup(t, &countingLoader{}, testConfig())
	a1, _ := g.Get(t.Context(), "a")
	a2, _ := g.Get(t.Context(), "a")
	b, _ := g.Get(t.Context(), "b")
	if a1.Hash == 0 || a1.Hash != a2.Hash || a1.Hash == b.Hash {
		t.Fatalf("hashes a/a/b = %x/%x/%x: want equal for equal bytes, different otherwise", a1.Hash, a2.Hash, b.Hash)
	}
}

func TestSourceString(t *testing.T) {
	for src, want := range map[Source]string{SourceMain: "main", SourceHot: "hot", SourcePeer: "peer", SourceLoader: "loader", Source(9): "Source(9)"} {
		if got := src.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", src, got, want)
		}
	}
}
