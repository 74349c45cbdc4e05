package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestGroupSizing runs Gets through a group with Config.Sizing: the estimator counts every
// Get and GetLocal (hits, misses, not-found and failures alike), warms up, and then estimates
// a hit ratio that grows with the size; SetPeers moves the size the ratios multiply.
func TestGroupSizing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CacheBytes = 1 << 20
	cfg.Sizing = true
	g, err := New("sized", LoaderFunc(func(_ context.Context, key string) (Value, error) {
		switch {
		case strings.HasPrefix(key, "missing"):
			return Value{}, ErrNotFound
		case strings.HasPrefix(key, "fail"):
			return Value{}, errors.New("origin down")
		}
		return Value{Bytes: make([]byte, 100)}, nil
	}), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if est, ok := g.Sizing(); !ok || !est.Warming || len(est.Sizes) != 5 {
		t.Fatalf("a new group's sizing: %+v, %v; want 5 sizes, warming", est, ok)
	}
	ctx := context.Background()
	// Zipf-distributed reads of 500,000 keys of ~220 bytes (a 1 MiB cache holds about 4,700),
	// half as Gets and half as GetLocals, with a few missing and failing keys.
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.05, 1, 500_000)
	const requests = 300_000
	for i := range requests {
		n := zipf.Uint64()
		key := fmt.Sprintf("key-%d", n)
		switch n % 1000 {
		case 1:
			key = "missing-" + key
		case 2:
			key = "fail-" + key
		}
		if i%2 == 0 {
			_, _ = g.Get(ctx, key)
		} else {
			_, _ = g.GetLocal(ctx, key)
		}
	}
	est, ok := g.Sizing()
	st := g.Stats()
	if !ok || est.Requests != st.Gets+st.ServerRequests || est.Requests != requests {
		t.Fatalf("sizing counted %d requests (ok %v), want every Get and GetLocal: %d", est.Requests, ok, st.Gets+st.ServerRequests)
	}
	if est.Warming || est.Sampled < 512 {
		t.Fatalf("still warming after %d sampled requests", est.Sampled)
	}
	for i, s := range est.Sizes {
		t.Logf("%vx (%d bytes): hit ratio %.3f, rate %v, %d entries", s.Ratio, s.Bytes, s.HitRatio, s.Rate, s.Entries)
		if s.Bytes != int64(s.Ratio*float64(cfg.CacheBytes)) {
			t.Errorf("size %v simulates %d bytes, want %v of %d", s.Ratio, s.Bytes, s.Ratio, cfg.CacheBytes)
		}
		if i > 0 && s.HitRatio+0.02 < est.Sizes[i-1].HitRatio {
			t.Errorf("the hit ratio falls from %.3f at %vx to %.3f at %vx", est.Sizes[i-1].HitRatio, est.Sizes[i-1].Ratio, s.HitRatio, s.Ratio)
		}
	}
	if lo, hi := est.Sizes[0].HitRatio, est.Sizes[4].HitRatio; hi-lo < 0.05 {
		t.Errorf("¼x %.3f and 4x %.3f: want 4x well above ¼x for this working set", lo, hi)
	}
	// The real cache, 1x, hit about as the estimate for 1x says (its miniature holds a few
	// dozen entries: the estimate is rough at this size; BENCHMARKS.md has its precision).
	if real := float64(st.CacheHits) / float64(st.CacheHits+st.Loads); real-est.Sizes[2].HitRatio > 0.05 || est.Sizes[2].HitRatio-real > 0.05 {
		t.Errorf("1x estimated %.3f, the group's own hit ratio is %.3f", est.Sizes[2].HitRatio, real)
	}

	g.SetPeers(&ownerPicker{owns: func(string) bool { return false }})
	if est, _ := g.Sizing(); est.Sizes[2].Bytes != cfg.CacheBytes-hotBytes(cfg) {
		t.Errorf("linked: 1x simulates %d bytes, want the main cache's %d", est.Sizes[2].Bytes, cfg.CacheBytes-hotBytes(cfg))
	}
	g.SetPeers(nil)
	if est, _ := g.Sizing(); est.Sizes[2].Bytes != cfg.CacheBytes {
		t.Errorf("unlinked: 1x simulates %d bytes, want %d", est.Sizes[2].Bytes, cfg.CacheBytes)
	}

	off := newTestGroupOrFail(t, DefaultConfig())
	if est, ok := off.Sizing(); ok || est.Sizes != nil {
		t.Errorf("a group without sizing: %+v, %v", est, ok)
	}
}

func newTestGroupOrFail(t *testing.T, cfg Config) *Group {
	t.Helper()
	g, err := New("g", LoaderFunc(func(context.Context, string) (Value, error) { return Value{}, nil }), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestObservedLen(t *testing.T) {
	for _, tt := range []struct {
		res  Result
		err  error
		want int
	}{
		{Result{Bytes: []byte("abc")}, nil, 3},
		{Result{}, nil, 0},
		{Result{}, ErrNotFound, 0},
		{Result{}, fmt.Errorf("loading: %w", ErrNotFound), 0},
		{Result{}, ErrLoadTimeout, -1},
		{Result{}, context.Canceled, -1},
		{Result{}, errors.New("origin down"), -1},
	} {
		if got := observedLen(tt.res, tt.err); got != tt.want {
			t.Errorf("observedLen(%d bytes, %v) = %d, want %d", len(tt.res.Bytes), tt.err, got, tt.want)
		}
	}
}

// TestGetHitWithSizingAllocatesNothing: the hook adds no allocation to a hit, sampled or not.
func TestGetHitWithSizingAllocatesNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Sizing = true
	g := newTestGroupOrFail(t, cfg)
	ctx := context.Background()
	keys := benchKeys(10_000)
	for range 10 {
		for _, k := range keys {
			if _, err := g.Get(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if est, _ := g.Sizing(); est.Warming {
		t.Fatal("still warming up")
	}
	i := 0
	if allocs := testing.AllocsPerRun(10_000, func() {
		_, _ = g.Get(ctx, keys[i%len(keys)])
		i++
	}); allocs != 0 {
		t.Errorf("a hit with sizing allocates %v times", allocs)
	}
}
