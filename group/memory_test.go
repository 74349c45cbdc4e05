package group

import (
	"context"
	"fmt"
	"runtime"
	"testing"
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
// value bytes: it fills a Group (large enough that nothing is evicted) with n entries through
// Get, each key made by the caller and each value by the loader as a server would, and
// divides the heap's growth, less the keys' and values' lengths, by n. The growth includes
// otter's node, its hash-table slot (amortized over the table's doublings), the entry struct
// and the size-class rounding of the key and value allocations. EntryOverhead is set from it.
func BenchmarkEntryOverhead(b *testing.B) {
	const n = 200_000
	for _, size := range []int{0, 10, 100, 1000, 1024} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			var overhead float64
			for b.Loop() {
				cfg := DefaultConfig()
				cfg.CacheBytes = 1 << 40
				g, err := New("overhead", LoaderFunc(func(context.Context, string) (Value, error) {
					return Value{Bytes: make([]byte, size)}, nil
				}), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				before := heapInUse()
				var payload int64
				for i := range n {
					key := fmt.Sprintf("entry-%08d", i)
					payload += int64(len(key) + size)
					if _, err := g.Get(context.Background(), key); err != nil {
						b.Fatal(err)
					}
				}
				after := heapInUse()
				if st := g.Stats(); st.Main.Items != n {
					b.Fatalf("%d items cached, want %d", st.Main.Items, n)
				}
				overhead = float64(after-before-payload) / n
				runtime.KeepAlive(g)
			}
			b.ReportMetric(overhead, "overhead-B/entry")
		})
	}
}
