package group

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/lru"
)

// gcGroupSeq names golang/groupcache groups: its NewGroup registers every group in a
// process-wide map and panics on a duplicate name, and the benchmark framework calls each
// benchmark function several times.
var gcGroupSeq atomic.Int64

func newGroupcacheGroup(name string, cacheBytes int64, getter groupcache.GetterFunc) *groupcache.Group {
	return groupcache.NewGroup(fmt.Sprintf("%s#%d", name, gcGroupSeq.Add(1)), cacheBytes, getter)
}

// cpuClock measures the CPU time the process spends, so that a benchmark can report
// cpu-ns/op beside ns/op: on a machine shared with other work, wall time per operation
// grows with the load and CPU time much less.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPUClock() cpuClock { return cpuClock{start: processCPU()} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

// benchKeys returns n keys and a value for each of size bytes.
func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%08d", i)
	}
	return keys
}

// BenchmarkGetHit measures Get on a key that is cached, from every CPU at once, beside the
// same operation on golang/groupcache. Both hold the same 10,000 keys of 128 bytes.
func BenchmarkGetHit(b *testing.B) {
	const nKeys = 10_000
	keys := benchKeys(nKeys)
	value := make([]byte, 128)
	run := func(b *testing.B, get func(ctx context.Context, key string) int) {
		ctx := context.Background()
		var seq atomic.Uint32
		var read atomic.Int64
		b.ReportAllocs()
		cpu := startCPUClock()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			// Each goroutine walks the keys from its own offset with a stride, so the goroutines
			// do not read the same key at the same moment.
			i := int(seq.Add(1)) * 7919
			n := 0
			for pb.Next() {
				n += get(ctx, keys[i%nKeys])
				i += 13
			}
			read.Add(int64(n))
		})
		b.StopTimer()
		cpu.report(b)
		if read.Load() != int64(b.N)*int64(len(value)) {
			b.Fatalf("read %d bytes in %d Gets", read.Load(), b.N)
		}
	}

	b.Run("groupcached", func(b *testing.B) {
		// DefaultConfig with and without a TTL; then sizing off and on, both set, so that one
		// run gives the sizing hook's cost whatever the default.
		off, on := false, true
		for _, tc := range []struct {
			name   string
			ttl    time.Duration
			sizing *bool
		}{
			{"ttl=0s", 0, nil},
			{"ttl=1h0m0s", time.Hour, nil},
			{"ttl=0s,sizing=off", 0, &off},
			{"ttl=0s,sizing=on", 0, &on},
		} {
			b.Run(tc.name, func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.TTL = tc.ttl
				if tc.sizing != nil {
					cfg.Sizing = *tc.sizing
				}
				g, err := New(b.Name(), LoaderFunc(func(context.Context, string) (Value, error) {
					return Value{Bytes: value}, nil
				}), cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				// Enough passes for a sizer's warm-up (512 sampled requests) to end.
				for range 10 {
					for _, k := range keys {
						if _, err := g.Get(context.Background(), k); err != nil {
							b.Fatal(err)
						}
					}
				}
				if est, ok := g.Sizing(); ok && est.Warming {
					b.Fatal("the sizer is still warming up")
				}
				run(b, func(ctx context.Context, key string) int {
					res, err := g.Get(ctx, key)
					if err != nil || res.Source != SourceMain {
						panic(fmt.Sprint("not a hit: ", res.Source, err))
					}
					return len(res.Bytes)
				})
			})
		}
	})

	// A read-only Go map is no cache, but it shows how far this machine lets a read-only
	// lookup scale from one CPU to two: the yardstick for the scaling of the others.
	b.Run("go-map", func(b *testing.B) {
		m := make(map[string][]byte, nKeys)
		for _, k := range keys {
			m[k] = value
		}
		run(b, func(_ context.Context, key string) int { return len(m[key]) })
	})

	b.Run("golang-groupcache", func(b *testing.B) {
		g := newGroupcacheGroup(b.Name(), 64<<20, func(_ context.Context, _ string, dest groupcache.Sink) error {
			return dest.SetBytes(value)
		})
		var bv groupcache.ByteView
		for _, k := range keys {
			if err := g.Get(context.Background(), k, groupcache.ByteViewSink(&bv)); err != nil {
				b.Fatal(err)
			}
		}
		loadsBefore := g.Stats.Loads.Get()
		run(b, func(ctx context.Context, key string) int {
			var v groupcache.ByteView
			if err := g.Get(ctx, key, groupcache.ByteViewSink(&v)); err != nil {
				panic(err)
			}
			return v.Len()
		})
		if g.Stats.Loads.Get() != loadsBefore {
			b.Fatal("golang/groupcache missed during the benchmark")
		}
	})
}

// BenchmarkGetMiss measures a Get that fills the key: singleflight, the loader call under the
// load timeout, and the store with whatever eviction the 1 MiB bound needs, beside the same on
// golang/groupcache. The loader answers at once, so this is the engine's own cost of a miss.
// cpu-ns/op counts the whole process's CPU time per Get, the work of the goroutines a fill
// wakes and of the collector included.
func BenchmarkGetMiss(b *testing.B) { benchGetMiss(b, context.Background()) }

// BenchmarkGetMissCancellable is BenchmarkGetMiss with a context that can end, as every HTTP
// request's: the fill's slow call then runs on a goroutine of its own, so that the caller can
// leave at once (flights.inline runs it on the caller's goroutine only for a context that never
// ends). golang/groupcache, which has no such promise, runs it on the caller's goroutine
// whatever the context.
func BenchmarkGetMissCancellable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchGetMiss(b, ctx)
}

// benchGetMiss runs BenchmarkGetMiss's workload with ctx, ours beside golang/groupcache.
func benchGetMiss(b *testing.B, ctx context.Context) {
	value := make([]byte, 128)
	keys := benchKeys(1 << 20)
	b.Run("groupcached", func(b *testing.B) {
		cfg := DefaultConfig()
		cfg.CacheBytes = 1 << 20
		g, err := New(b.Name(), LoaderFunc(func(context.Context, string) (Value, error) {
			return Value{Bytes: value}, nil
		}), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		cpu := startCPUClock()
		i := 0
		for b.Loop() {
			if res, err := g.Get(ctx, keys[i%len(keys)]); err != nil || res.Source != SourceLoader {
				b.Fatalf("Get = %v %v, want a load", res.Source, err)
			}
			i++
		}
		cpu.report(b)
	})
	b.Run("golang-groupcache", func(b *testing.B) {
		g := newGroupcacheGroup(b.Name(), 1<<20, func(_ context.Context, _ string, dest groupcache.Sink) error {
			return dest.SetBytes(value)
		})
		b.ReportAllocs()
		cpu := startCPUClock()
		i := 0
		var bv groupcache.ByteView
		for b.Loop() {
			if err := g.Get(ctx, keys[i%len(keys)], groupcache.ByteViewSink(&bv)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		cpu.report(b)
	})
}

// BenchmarkStore measures what a miss pays to store its value, alone: a new key of 128 bytes
// into a full 1 MiB cache, evicting what the bound requires, as BenchmarkGetMiss's fills do.
// "groupcached" is the group's cache.add (the S3-FIFO store's set, with its eviction);
// "lru" is golang/groupcache's store (its lru package, with its cache's byte
// count), the part of a golang/groupcache miss that corresponds.
func BenchmarkStore(b *testing.B) {
	value := make([]byte, 128)
	keys := benchKeys(1 << 20)
	const maxBytes = 1 << 20
	b.Run("groupcached", func(b *testing.B) {
		c := newCache(maxBytes, newClock())
		b.ReportAllocs()
		cpu := startCPUClock()
		i := 0
		for b.Loop() {
			c.add(keys[i%len(keys)], entry{value: value})
			i++
		}
		cpu.report(b)
	})
	b.Run("golang-groupcache-lru", func(b *testing.B) {
		c := lru.New(0)
		var nbytes int64
		c.OnEvicted = func(key lru.Key, value any) {
			nbytes -= int64(len(key.(string)) + len(value.([]byte)))
		}
		b.ReportAllocs()
		cpu := startCPUClock()
		i := 0
		for b.Loop() {
			k := keys[i%len(keys)]
			c.Add(k, value)
			nbytes += int64(len(k) + len(value))
			for nbytes > maxBytes {
				c.RemoveOldest()
			}
			i++
		}
		cpu.report(b)
	})
}

// BenchmarkGetMissPaired is BenchmarkGetMiss for a machine shared with other work: it
// alternates runs of 500 misses on groupcached and 500 on golang/groupcache (the same
// workload as BenchmarkGetMiss, one goroutine), and reports the median run of each and the
// median of the ratios of neighbouring runs, so that a burst of other work lands on either
// side alike and is left out.
func BenchmarkGetMissPaired(b *testing.B) {
	const run = 500
	value := make([]byte, 128)
	keys := benchKeys(1 << 20)
	cfg := DefaultConfig()
	cfg.CacheBytes = 1 << 20
	g, err := New(b.Name(), LoaderFunc(func(context.Context, string) (Value, error) {
		return Value{Bytes: value}, nil
	}), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	gc := newGroupcacheGroup(b.Name(), 1<<20, func(_ context.Context, _ string, dest groupcache.Sink) error {
		return dest.SetBytes(value)
	})
	ctx := context.Background()
	i, j := 0, 0
	ours := func() time.Duration {
		start := time.Now()
		for range run {
			if res, err := g.Get(ctx, keys[i%len(keys)]); err != nil || res.Source != SourceLoader {
				b.Fatalf("Get = %v %v, want a load", res.Source, err)
			}
			i++
		}
		return time.Since(start)
	}
	var bv groupcache.ByteView
	theirs := func() time.Duration {
		start := time.Now()
		for range run {
			if err := gc.Get(ctx, keys[j%len(keys)], groupcache.ByteViewSink(&bv)); err != nil {
				b.Fatal(err)
			}
			j++
		}
		return time.Since(start)
	}
	reportPaired(b, run, ours, theirs)
}

// reportPaired runs ours and theirs (each run Gets) in turn b.N times, starting with each on
// alternate rounds, and reports the median of each and the median ratio of a round's two.
func reportPaired(b *testing.B, run int, ours, theirs func() time.Duration) {
	var o, t, r []float64
	k := 0
	for b.Loop() {
		var a, c time.Duration
		if k%2 == 0 {
			a, c = ours(), theirs()
		} else {
			c, a = theirs(), ours()
		}
		k++
		o, t, r = append(o, float64(a)/float64(run)), append(t, float64(c)/float64(run)), append(r, float64(a)/float64(c))
	}
	median := func(s []float64) float64 {
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.ReportMetric(median(o), "ours-ns/Get")
	b.ReportMetric(median(t), "groupcache-ns/Get")
	b.ReportMetric(median(r), "ratio")
}
