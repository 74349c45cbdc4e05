package group

import (
	"context"
	"testing"
)

// BenchmarkGetMissAdmission is BenchmarkGetMiss's groupcached case with the admission
// control off (MaxConcurrentLoads and MaxLoadingBytes 0) and on (DefaultConfig's 32 loads and
// 64 MiB), run alternately in one process: the difference is what admission costs a miss.
func BenchmarkGetMissAdmission(b *testing.B) {
	value := make([]byte, 128)
	keys := benchKeys(1 << 20)
	for _, on := range []bool{false, true} {
		name := "admission=off"
		if on {
			name = "admission=on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.CacheBytes = 1 << 20
			if !on {
				cfg.MaxConcurrentLoads, cfg.MaxLoadingBytes = 0, 0
			}
			g, err := New(b.Name(), LoaderFunc(func(context.Context, string) (Value, error) {
				return Value{Bytes: value}, nil
			}), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if res, err := g.Get(ctx, keys[i%len(keys)]); err != nil || res.Source != SourceLoader {
					b.Fatalf("Get = %v %v, want a load", res.Source, err)
				}
				i++
			}
		})
	}
}

// BenchmarkAdmissionAcquireRelease is the admission check alone, as every miss pays it with
// DefaultConfig's bounds: acquire a slot (no queue), release it with a loaded value's size.
// A miss costs microseconds; this is what admission adds to it.
func BenchmarkAdmissionAcquireRelease(b *testing.B) {
	a := newAdmission(DefaultConfig())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		charge, err := a.acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		a.release(charge, 128, true)
	}
}
