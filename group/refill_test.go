package group

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestNoSecondLoadAfterFillEnds hammers the window between a caller's cache miss and its
// joining the flights: a fill that ends inside it must not be followed by a second loader
// call for the same key. Each key is asked for by several goroutines at once; the loader
// yields so that fills end while others are still on their way in.
func TestNoSecondLoadAfterFillEnds(t *testing.T) {
	const keys, callers = 2000, 8
	var loads atomic.Int64
	cfg := DefaultConfig()
	cfg.CacheBytes = 64 << 20
	g, err := New("refill", LoaderFunc(func(ctx context.Context, key string) (Value, error) {
		loads.Add(1)
		runtime.Gosched()
		return Value{Bytes: []byte("v-" + key)}, nil
	}), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range keys {
		key := fmt.Sprint("key-", i)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				get := g.Get
				if c%2 == 1 {
					get = g.GetLocal
				}
				if _, err := get(ctx, key); err != nil {
					t.Errorf("Get(%q): %v", key, err)
				}
			})
		}
		wg.Wait()
		if got := loads.Load(); got != int64(i+1) {
			t.Fatalf("after %d keys the loader ran %d times", i+1, got)
		}
	}
}
