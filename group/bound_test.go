package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestByteBoundHolds runs a randomized sequence of Gets (local loads and fetches from an owner,
// values of random sizes and TTLs, some ErrNotFound), Removes, Purges and peer changes, and
// checks after every operation that the main and hot caches together stay within CacheBytes.
func TestByteBoundHolds(t *testing.T) {
	tests := []struct {
		name       string
		seed       uint64
		cacheBytes int64
		maxValue   int
		keys       int
		ops        int
	}{
		{"small values", 1, 64 << 10, 512, 2000, 20000},
		{"values up to the bound", 2, 64 << 10, 80 << 10, 300, 5000},
		{"mixed sizes, large bound", 3, 1 << 20, 32 << 10, 1000, 10000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tt.seed, 0))
			size := func() int {
				if rng.IntN(10) == 0 {
					return rng.IntN(tt.maxValue + 1)
				}
				return rng.IntN(tt.maxValue/8 + 1)
			}
			// Each key's loader answer is drawn from the test's random stream; the loader
			// runs on the fill's goroutine, so the draw happens here, before the Get.
			var next Value
			var nextErr error
			l := LoaderFunc(func(context.Context, string) (Value, error) { return next, nextErr })
			peer := &fakePeer{fn: func(context.Context, string, string) (Value, error) { return next, nextErr }}
			cfg := testConfig()
			cfg.CacheBytes = tt.cacheBytes
			cfg.HotCacheRate = 1
			cfg.NegativeTTL = time.Minute
			cfg.HotCacheFraction = 0.25
			g := newTestGroup(t, l, cfg)
			picker := &ownerPicker{peer: peer, owns: func(key string) bool { return len(key)%2 == 0 }}
			g.SetPeers(picker)

			var sawMain, sawHot int64
			for i := range tt.ops {
				key := fmt.Sprintf("k%d", rng.IntN(tt.keys))
				var op string
				switch r := rng.IntN(1000); {
				case r < 2:
					op = "purge"
					g.PurgeLocal()
				case r < 4:
					op = "toggle peers"
					if g.peers.Load() == nil {
						g.SetPeers(picker)
					} else {
						g.SetPeers(nil)
					}
				case r < 100:
					op = "remove " + key
					g.RemoveLocal(key)
				default:
					op = "get " + key
					next, nextErr = Value{Bytes: make([]byte, size())}, nil
					switch rng.IntN(20) {
					case 0:
						next, nextErr = Value{}, ErrNotFound
					case 1:
						next.TTL = time.Duration(rng.IntN(5)+1) * time.Millisecond
					}
					// A value larger than the main cache is refused (ErrValueTooLarge).
					if _, err := g.Get(context.Background(), key); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrValueTooLarge) {
						t.Fatalf("op %d (%s): %v", i, op, err)
					}
				}
				st := g.Stats()
				if total := st.Main.Bytes + st.Hot.Bytes; total > tt.cacheBytes {
					t.Fatalf("op %d (%s): main %d + hot %d = %d bytes, bound %d", i, op, st.Main.Bytes, st.Hot.Bytes, total, tt.cacheBytes)
				}
				sawMain = max(sawMain, st.Main.Bytes)
				sawHot = max(sawHot, st.Hot.Bytes)
			}
			// The bound must have been under pressure for the test to mean anything.
			if sawMain < tt.cacheBytes/2 || sawHot < tt.cacheBytes/16 {
				t.Fatalf("the caches never filled (main peak %d, hot peak %d, bound %d)", sawMain, sawHot, tt.cacheBytes)
			}
			if st := g.Stats(); st.Main.Evictions == 0 {
				t.Fatalf("no eviction in %d operations: %+v", tt.ops, st.Main)
			}
		})
	}
}

// TestConcurrentUse runs Gets, GetLocals, Removes, Purges and peer changes from several
// goroutines at once (for the race detector), while another goroutine checks that every
// Stats snapshot keeps its invariants and the byte bound.
func TestConcurrentUse(t *testing.T) {
	const workers, ops = 4, 3000
	cfg := testConfig()
	cfg.CacheBytes = 256 << 10
	cfg.HotCacheRate = 2
	cfg.NegativeTTL = time.Millisecond
	cfg.TTL = 2 * time.Millisecond
	loader := LoaderFunc(func(_ context.Context, key string) (Value, error) {
		if len(key)%5 == 0 {
			return Value{}, ErrNotFound
		}
		return Value{Bytes: make([]byte, 64*len(key))}, nil
	})
	g := newTestGroup(t, loader, cfg)
	peer := &fakePeer{fn: func(_ context.Context, _, key string) (Value, error) {
		return Value{Bytes: make([]byte, 100*len(key)), TTL: time.Millisecond}, nil
	}}
	picker := &ownerPicker{peer: peer, owns: func(key string) bool { return key[len(key)-1]%2 == 0 }}

	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		var err error
		defer func() { checked <- err }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := g.Stats()
			switch {
			case st.CacheHits > st.Gets+st.ServerRequests:
				err = fmt.Errorf("hits %d > gets %d + server requests %d", st.CacheHits, st.Gets, st.ServerRequests)
			case st.NegativeHits > st.CacheHits:
				err = fmt.Errorf("negative hits %d > hits %d", st.NegativeHits, st.CacheHits)
			case st.LocalLoads+st.LocalLoadErrs > st.LoadsDeduped:
				err = fmt.Errorf("local loads %d + errors %d > fills %d", st.LocalLoads, st.LocalLoadErrs, st.LoadsDeduped)
			}
			if err != nil {
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range ops {
				key := fmt.Sprintf("k%d", rng.IntN(300))
				switch r := rng.IntN(100); {
				case r < 1:
					g.PurgeLocal()
				case r < 2:
					if rng.IntN(2) == 0 {
						g.SetPeers(picker)
					} else {
						g.SetPeers(nil)
					}
				case r < 10:
					g.RemoveLocal(key)
				case r < 30:
					_, _ = g.GetLocal(context.Background(), key)
				default:
					_, _ = g.Get(context.Background(), key)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	if st.Main.Bytes+st.Hot.Bytes > cfg.CacheBytes {
		t.Fatalf("main %d + hot %d bytes, bound %d", st.Main.Bytes, st.Hot.Bytes, cfg.CacheBytes)
	}
	if st.Gets == 0 || st.ServerRequests == 0 || st.CacheHits == 0 || st.PeerLoads == 0 {
		t.Fatalf("the mix did not exercise the group: %+v", st)
	}
}
