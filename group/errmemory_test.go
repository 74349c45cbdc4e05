package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		ttl, maxTTL time.Duration
		streak      int
		want        time.Duration
	}{
		{time.Second, 30 * time.Second, 1, time.Second},
		{time.Second, 30 * time.Second, 2, 2 * time.Second},
		{time.Second, 30 * time.Second, 5, 16 * time.Second},
		{time.Second, 30 * time.Second, 6, 30 * time.Second},
		{time.Second, 30 * time.Second, 1000, 30 * time.Second},
		{time.Second, time.Second, 4, time.Second},            // no backoff
		{time.Second, 0, 4, 0},                                // the caller passes max(MaxErrorTTL, ErrorTTL)
		{300 * time.Millisecond, time.Second, 3, time.Second}, // 1.2 s capped
		{300 * time.Millisecond, time.Second, 2, 600 * time.Millisecond},
	} {
		if got := backoff(tt.ttl, tt.maxTTL, tt.streak); got != tt.want {
			t.Errorf("backoff(%v, %v, %d) = %v, want %v", tt.ttl, tt.maxTTL, tt.streak, got, tt.want)
		}
	}
	if f := newFailureMemory(Config{ErrorTTL: time.Second}, newClock()); f.maxTTL != time.Second {
		t.Errorf("MaxErrorTTL 0 gives a cap of %v, want ErrorTTL", f.maxTTL)
	}
}

// A failing key costs the loader one call per ErrorTTL, whatever the number of Gets, and
// each repeated failure is remembered twice as long.
func TestFailedLoadIsRemembered(t *testing.T) {
	boom := errors.New("origin answered 500")
	var failing atomic.Bool
	failing.Store(true)
	l := &countingLoader{fn: func(context.Context, string) (Value, error) {
		if failing.Load() {
			return Value{}, boom
		}
		return Value{Bytes: []byte("fine")}, nil
	}}
	cfg := testConfig()
	cfg.ErrorTTL, cfg.MaxErrorTTL = 200*time.Millisecond, time.Hour
	g := newTestGroup(t, l, cfg)

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := g.Get(context.Background(), "k"); !errors.Is(err, boom) {
				t.Errorf("Get = %v, want the loader's error", err)
			}
		})
	}
	wg.Wait()
	if n := l.calls.Load(); n != 1 {
		t.Fatalf("50 Gets within ErrorTTL called the loader %d times, want 1", n)
	}
	_, err := g.Get(t.Context(), "k")
	var re *rememberedError
	if !errors.As(err, &re) || !errors.Is(err, boom) {
		t.Fatalf("Get within ErrorTTL = %v, want the remembered failure", err)
	}
	if st := g.Stats(); st.RememberedErrors == 0 || st.LocalLoadErrs != 1 {
		t.Fatalf("RememberedErrors %d, LocalLoadErrs %d; want > 0 and 1", st.RememberedErrors, st.LocalLoadErrs)
	}

	// Once ErrorTTL has passed, one Get reaches the loader again; its failure is remembered
	// for twice as long.
	eventually(t, 10*time.Second, "the loader is called again", func() bool {
		_, _ = g.Get(t.Context(), "k")
		return l.calls.Load() == 2
	})
	g.failures.mu.Lock()
	r := *g.failures.m["k"]
	g.failures.mu.Unlock()
	if r.streak != 2 || time.Duration(r.until-g.clock.now()) <= cfg.ErrorTTL {
		t.Fatalf("after the second failure: streak %d, remembered for %v more; want 2 and over %v",
			r.streak, time.Duration(r.until-g.clock.now()), cfg.ErrorTTL)
	}

	// A success forgets the key: its next failure starts from ErrorTTL again.
	failing.Store(false)
	g.RemoveLocal("k") // Remove forgets a failure too
	if res, err := g.Get(t.Context(), "k"); err != nil || string(res.Bytes) != "fine" {
		t.Fatalf("Get after Remove = %q %v", res.Bytes, err)
	}
	if g.failures.n.Load() != 0 {
		t.Fatal("the failure is still remembered after a success")
	}
}

// ErrNotFound is NegativeTTL's business: with NegativeTTL 0 it is asked again every time.
func TestNotFoundIsNotAFailure(t *testing.T) {
	l := &countingLoader{fn: func(context.Context, string) (Value, error) { return Value{}, ErrNotFound }}
	cfg := testConfig()
	cfg.ErrorTTL, cfg.NegativeTTL = time.Hour, 0
	g := newTestGroup(t, l, cfg)
	for range 3 {
		if _, err := g.Get(t.Context(), "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if n := l.calls.Load(); n != 3 {
		t.Fatalf("loader calls = %d, want 3", n)
	}
}

// A node that asks the key's owner gets the owner's failure and does not load the key itself.
func TestOwnersFailureIsNotLoadedLocally(t *testing.T) {
	l := &countingLoader{}
	cfg := testConfig()
	cfg.ErrorTTL = time.Hour
	g := newTestGroup(t, l, cfg)
	peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) {
		return Value{}, fmt.Errorf("owner: %w", ErrLoadTimeout)
	}}
	g.SetPeers(&ownerPicker{peer: peer, owns: func(string) bool { return true }})
	for range 3 {
		if _, err := g.Get(t.Context(), "k"); !errors.Is(err, ErrLoadTimeout) {
			t.Fatalf("Get = %v, want the owner's timeout", err)
		}
	}
	if n := l.calls.Load(); n != 0 {
		t.Fatalf("the local loader ran %d times, want 0", n)
	}
}

// countingHandler counts the records logged at Error.
type countingHandler struct{ errors atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelError {
		h.errors.Add(1)
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// Failures of many keys at once are logged a few lines a second, and the rest counted.
func TestFailureLogIsRateLimited(t *testing.T) {
	l := LoaderFunc(func(context.Context, string) (Value, error) { return Value{}, errors.New("down") })
	cfg := testConfig()
	cfg.ErrorTTL = time.Hour
	h := &countingHandler{}
	g, err := New("logged", l, cfg, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const keys = 200
	for i := range keys {
		_, _ = g.Get(t.Context(), fmt.Sprintf("k%d", i))
	}
	allowed := int64(failureLogBurst + time.Since(start)/failureLogEvery + 1)
	logged, held := h.errors.Load(), g.Stats().FailureLogsSuppressed
	if logged > allowed || logged+held != keys {
		t.Fatalf("%d failures: %d lines logged (at most %d allowed), %d held back", keys, logged, allowed, held)
	}
}

// The memory of one group is bounded.
func TestFailureMemoryIsBounded(t *testing.T) {
	f := newFailureMemory(Config{ErrorTTL: time.Hour}, newClock())
	for i := range maxRememberedKeys + 100 {
		f.remember(fmt.Sprintf("k%d", i), errors.New("x"))
	}
	if n := len(f.m); n > maxRememberedKeys || f.n.Load() != int64(n) {
		t.Fatalf("%d keys remembered (count %d), bound %d", n, f.n.Load(), maxRememberedKeys)
	}
	if _, ok := f.recall(fmt.Sprintf("k%d", maxRememberedKeys+99)); !ok {
		t.Fatal("the newest failure was not remembered")
	}
	f.forgetAll()
	if _, ok := f.recall("k1"); ok || f.n.Load() != 0 {
		t.Fatal("forgetAll left a failure")
	}
}
