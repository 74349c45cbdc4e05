package group

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/golang/groupcache"
)

// heapInUse returns the bytes of live heap objects after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkEntryOverhead measures what one cached entry costs the heap beyond its key and
// value bytes: it fills a Group to its bound, without evicting, with n entries through Get,
// each key made by the caller and each value by the loader as a server would, and divides the
// heap's growth, less the keys' and values' lengths, by n. The growth includes the store's node
// (with the entry struct), its hash-table slot (the tables grow by powers of two, so the cache
// must be filled to its bound to count them) and the size-class rounding of
// the key and value allocations. EntryOverhead is set from it.
func BenchmarkEntryOverhead(b *testing.B) {
	for _, n := range []int{100_000, 200_000, 300_000} {
		for _, size := range []int{0, 10, 100, 1000, 1024} {
			b.Run(fmt.Sprintf("entries=%d/value=%dB", n, size), func(b *testing.B) {
				var overhead float64
				for b.Loop() {
					key := func(i int) string { return fmt.Sprintf("entry-%08d", i) }
					payload := int64(n) * int64(len(key(0))+size)
					before := heapInUse()
					cfg := DefaultConfig()
					cfg.CacheBytes = payload + int64(n)*EntryOverhead // exactly full
					g, err := New("overhead", LoaderFunc(func(context.Context, string) (Value, error) {
						return Value{Bytes: make([]byte, size)}, nil
					}), cfg, nil)
					if err != nil {
						b.Fatal(err)
					}
					for i := range n {
						if _, err := g.Get(context.Background(), key(i)); err != nil {
							b.Fatal(err)
						}
					}
					after := heapInUse()
					if st := g.Stats(); st.Main.Items != int64(n) || st.Main.Evictions != 0 {
						b.Fatalf("%d items cached, %d evicted; want all %d kept", st.Main.Items, st.Main.Evictions, n)
					}
					overhead = float64(after-before-payload) / float64(n)
					runtime.KeepAlive(g)
				}
				b.ReportMetric(overhead, "overhead-B/entry")
			})
		}
	}
}

// BenchmarkFullHeap fills a cache bounded to 64 MiB with twice as many keys as fit, through
// Get, and reports the live heap it then holds against the configured bytes ("heap/bound"),
// for our Group and for golang/groupcache's Group (which counts only keys and values).
// scripts/memcheck measures the resident size of a 256 MiB group in a process of its own.
func BenchmarkFullHeap(b *testing.B) {
	const bound = 64 << 20
	for _, size := range []int{100, 1024} {
		fill := 2 * bound / (size + 16 + EntryOverhead)
		makeValue := func(key string) []byte {
			v := make([]byte, size)
			for i := range v {
				v[i] = key[i%len(key)]
			}
			return v
		}
		b.Run(fmt.Sprintf("value=%dB/groupcached", size), func(b *testing.B) {
			var ratio float64
			for b.Loop() {
				before := heapInUse()
				cfg := DefaultConfig()
				cfg.CacheBytes = bound
				g, err := New("heap", LoaderFunc(func(_ context.Context, key string) (Value, error) {
					return Value{Bytes: makeValue(key)}, nil
				}), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				for i := range fill {
					if _, err := g.Get(context.Background(), fmt.Sprintf("key-%011d", i)); err != nil {
						b.Fatal(err)
					}
				}
				ratio = float64(heapInUse()-before) / bound
				runtime.KeepAlive(g)
			}
			b.ReportMetric(ratio, "heap/bound")
		})
		b.Run(fmt.Sprintf("value=%dB/golang-groupcache", size), func(b *testing.B) {
			var ratio float64
			for b.Loop() {
				before := heapInUse()
				g := newGroupcacheGroup("heap", bound, func(_ context.Context, key string, dest groupcache.Sink) error {
					return dest.SetBytes(makeValue(key))
				})
				var bv groupcache.ByteView
				for i := range fill {
					if err := g.Get(context.Background(), fmt.Sprintf("key-%011d", i), groupcache.ByteViewSink(&bv)); err != nil {
						b.Fatal(err)
					}
				}
				ratio = float64(heapInUse()-before) / bound
				runtime.KeepAlive(g)
			}
			b.ReportMetric(ratio, "heap/bound")
		})
	}
}
