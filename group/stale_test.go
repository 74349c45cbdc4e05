package group

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// staleLoader answers "v<n>" with a short TTL, n counting its calls; it fails while failing
// is set and blocks on gate while gated is set.
type staleLoader struct {
	calls   atomic.Int64
	failing atomic.Bool
	gated   atomic.Bool
	gate    *gate
}

const shortTTL = 30 * time.Millisecond

func (l *staleLoader) Load(ctx context.Context, key string) (Value, error) {
	n := l.calls.Add(1)
	if l.gated.Load() {
		if err := l.gate.wait(ctx); err != nil {
			return Value{}, err
		}
	}
	if l.failing.Load() {
		return Value{}, errors.New("origin down")
	}
	return Value{Bytes: []byte{'v', byte('0' + n)}, TTL: shortTTL}, nil
}

// expire waits until key's entry in g's main cache has expired.
func expire(t *testing.T, g *Group, key string) {
	t.Helper()
	eventually(t, 10*time.Second, "the value expired", func() bool {
		var e entry
		_, hit := g.main.get(key, &e)
		return !hit
	})
}

func TestStaleWhileRevalidate(t *testing.T) {
	l := &staleLoader{gate: newGate()}
	cfg := testConfig()
	cfg.StaleWhileRevalidate = time.Hour
	g := newTestGroup(t, l, cfg)
	if res, err := g.Get(t.Context(), "k"); err != nil || string(res.Bytes) != "v1" || res.Stale {
		t.Fatalf("first Get = %q stale=%v %v", res.Bytes, res.Stale, err)
	}
	expire(t, g, "k")

	// Every Get answers the expired value at once while one refresh, held by the gate, runs.
	l.gated.Store(true)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := g.Get(context.Background(), "k")
			if err != nil || string(res.Bytes) != "v1" || !res.Stale || res.Age <= 0 || res.TTL != 0 {
				t.Errorf("Get while revalidating = %q stale=%v age=%v ttl=%v %v", res.Bytes, res.Stale, res.Age, res.TTL, err)
			}
		})
	}
	wg.Wait()
	l.gate.waitEntered(t, 1)
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("loader calls = %d, want 2 (the first load and one refresh)", n)
	}
	st := g.Stats()
	if st.StaleRevalidating != 20 || st.StaleRefreshes != 1 {
		t.Fatalf("StaleRevalidating %d, StaleRefreshes %d; want 20 and 1", st.StaleRevalidating, st.StaleRefreshes)
	}
	l.gated.Store(false)
	l.gate.release()
	eventually(t, 10*time.Second, "the refreshed value is served", func() bool {
		res, err := g.Get(t.Context(), "k")
		return err == nil && string(res.Bytes) == "v2" && !res.Stale
	})
}

func TestStaleIfError(t *testing.T) {
	for _, sie := range []time.Duration{0, time.Hour} {
		t.Run("stale_if_error="+sie.String(), func(t *testing.T) {
			l := &staleLoader{}
			cfg := testConfig()
			cfg.StaleIfError = sie
			cfg.ErrorTTL = time.Hour
			g := newTestGroup(t, l, cfg)
			if _, err := g.Get(t.Context(), "k"); err != nil {
				t.Fatal(err)
			}
			expire(t, g, "k")
			l.failing.Store(true)
			for i := range 3 { // the first load fails; the others get the remembered failure
				res, err := g.Get(t.Context(), "k")
				if sie == 0 {
					if err == nil {
						t.Fatalf("Get %d without stale_if_error = %q, want the error", i, res.Bytes)
					}
					continue
				}
				if err != nil || string(res.Bytes) != "v1" || !res.Stale {
					t.Fatalf("Get %d = %q stale=%v %v, want the stale v1", i, res.Bytes, res.Stale, err)
				}
			}
			if n := l.calls.Load(); n != 2 {
				t.Fatalf("loader calls = %d, want 2", n)
			}
			if sie > 0 && g.Stats().StaleOnError != 3 {
				t.Fatalf("StaleOnError = %d, want 3", g.Stats().StaleOnError)
			}
		})
	}
}

// Past its grace an expired value is gone; a key the origin no longer has is not served stale.
func TestStaleLimits(t *testing.T) {
	t.Run("past the grace", func(t *testing.T) {
		l := &staleLoader{}
		cfg := testConfig()
		cfg.StaleIfError = 50 * time.Millisecond
		g := newTestGroup(t, l, cfg)
		if _, err := g.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		l.failing.Store(true)
		eventually(t, 10*time.Second, "the error comes through past the grace", func() bool {
			_, err := g.Get(t.Context(), "k")
			return err != nil
		})
		if st := g.Stats(); st.Main.Items != 0 {
			t.Fatalf("Main.Items = %d: the expired value outlived its grace", st.Main.Items)
		}
	})
	t.Run("not found", func(t *testing.T) {
		var gone atomic.Bool
		l := LoaderFunc(func(context.Context, string) (Value, error) {
			if gone.Load() {
				return Value{}, ErrNotFound
			}
			return Value{Bytes: []byte("v"), TTL: shortTTL}, nil
		})
		cfg := testConfig()
		cfg.StaleIfError = time.Hour
		g := newTestGroup(t, l, cfg)
		if _, err := g.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		expire(t, g, "k")
		gone.Store(true)
		if _, err := g.Get(t.Context(), "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v, want ErrNotFound", err)
		}
	})
	t.Run("kept within the byte bound", func(t *testing.T) {
		l := &staleLoader{}
		cfg := testConfig()
		cfg.StaleIfError = time.Hour
		g := newTestGroup(t, l, cfg)
		if _, err := g.Get(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		before := g.Stats().Main
		expire(t, g, "k")
		if after := g.Stats().Main; after.Bytes != before.Bytes || after.Items != 1 || after.Expirations != 0 {
			t.Fatalf("Main before %+v, after expiry %+v: want the entry kept and counted", before, after)
		}
	})
}

// A refresh that fails leaves the expired value in place, and the failure is remembered: the
// Gets that follow keep getting the stale value without asking the origin again.
func TestFailedRevalidationKeepsServingStale(t *testing.T) {
	l := &staleLoader{}
	cfg := testConfig()
	cfg.StaleWhileRevalidate = time.Hour
	cfg.ErrorTTL = time.Hour
	g := newTestGroup(t, l, cfg)
	if _, err := g.Get(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	expire(t, g, "k")
	l.failing.Store(true)
	if res, err := g.Get(t.Context(), "k"); err != nil || !res.Stale {
		t.Fatalf("first Get after expiry = %q stale=%v %v", res.Bytes, res.Stale, err)
	}
	eventually(t, 10*time.Second, "the refresh failed and was remembered", func() bool { return g.failures.n.Load() == 1 })
	for range 50 {
		if res, err := g.Get(t.Context(), "k"); err != nil || string(res.Bytes) != "v1" || !res.Stale {
			t.Fatalf("Get after the failed refresh = %q stale=%v %v", res.Bytes, res.Stale, err)
		}
	}
	eventually(t, 10*time.Second, "the refreshes ended", func() bool {
		n := 0
		g.refreshing.Range(func(any, any) bool { n++; return true })
		return n == 0
	})
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("loader calls = %d, want 2 (the load and one failed refresh)", n)
	}
}

// TestStaleValueFromPeer: a value the owner answers stale is answered stale with the owner's
// Age, through Get and GetMany, and never kept as a hot copy, even with every fetch copied.
func TestStaleValueFromPeer(t *testing.T) {
	cfg := testConfig()
	cfg.HotCacheRate = 1
	g := newTestGroup(t, &countingLoader{}, cfg)
	peer := &fakePeer{fn: func(_ context.Context, _, key string) (Value, error) {
		return Value{Bytes: []byte("old " + key), TTL: time.Nanosecond, ContentType: "text/plain",
			Stale: true, Age: 42 * time.Second}, nil
	}}
	g.SetPeers(&ownerPicker{peer: peer})
	check := func(how string, res Result, err error) {
		t.Helper()
		if err != nil || string(res.Bytes) != "old k" || !res.Stale || res.Age != 42*time.Second || res.TTL != 0 ||
			res.Source != SourcePeer || res.ContentType != "text/plain" {
			t.Fatalf("%s = %+v, %v; want the stale value, Age 42s, TTL 0", how, res, err)
		}
	}
	for i := range 3 {
		res, err := g.Get(context.Background(), "k")
		check("Get", res, err)
		if n := peer.calls.Load(); n != int64(i+1) {
			t.Fatalf("after %d Gets the owner was asked %d times: a stale value was kept", i+1, n)
		}
	}
	items := g.GetMany(context.Background(), []string{"k"})
	check("GetMany", items[0].Result, items[0].Err)
	if st := g.Stats(); st.Hot.Items != 0 || st.Main.Items != 0 {
		t.Errorf("stale values kept: hot %d, main %d items", st.Hot.Items, st.Main.Items)
	}
}

// TestRevalidationNotHeldByHungLoad: a stale-while-revalidate refresh whose Load ignores its
// context is cut off at the load timeout like any fill, so that a later stale Get starts a
// new refresh. The refresh's goroutine calls flights.do with context.Background, which makes
// the slow call inline (flight.go): do then returns only when the hung Load does, and the key
// stays in g.refreshing, so no Get revalidates it again for as long as the Load hangs.
func TestRevalidationNotHeldByHungLoad(t *testing.T) {
	hung := make(chan struct{})
	entered := make(chan struct{}, 16)
	t.Cleanup(func() { close(hung) })
	l := &countingLoader{}
	l.fn = func(ctx context.Context, key string) (Value, error) {
		switch l.calls.Load() {
		case 1:
			return Value{Bytes: []byte("v1"), TTL: shortTTL}, nil
		case 2:
			entered <- struct{}{}
			<-hung // ignores ctx
			return Value{Bytes: []byte("late")}, nil
		default:
			return Value{Bytes: []byte("v3")}, nil
		}
	}
	cfg := testConfig()
	cfg.StaleWhileRevalidate = time.Hour
	cfg.LoadTimeout = 50 * time.Millisecond
	g := newTestGroup(t, l, cfg)
	if res, err := g.Get(t.Context(), "k"); err != nil || string(res.Bytes) != "v1" {
		t.Fatalf("first Get = %q %v", res.Bytes, err)
	}
	expire(t, g, "k")
	if res, err := g.Get(t.Context(), "k"); err != nil || !res.Stale {
		t.Fatalf("Get of the expired key = %q stale=%v %v, want the stale v1", res.Bytes, res.Stale, err)
	}
	receive(t, entered, "the refresh's Load")
	eventually(t, 5*time.Second, "a new refresh once the first timed out", func() bool {
		res, err := g.Get(t.Context(), "k")
		return err == nil && string(res.Bytes) == "v3"
	})
}
