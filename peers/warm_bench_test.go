package peers

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPeekMiss measures what the previous-owner peek adds to a miss: a Get of a key this
// node owns and holds nowhere, filled by a loader that answers at once, with (peek) and
// without (plain) a peek of the previous owner, a real node over the authenticated peer wire
// on loopback, which has nothing. The difference is the cost of a peek miss; an origin that
// takes milliseconds dwarfs it.
//
//	go test -run '^$' -bench BenchmarkPeekMiss -count 5 ./peers/
func BenchmarkPeekMiss(b *testing.B) {
	log := newLoadLog()
	nodes := startCluster(b, 2, log, warmOptions)
	asker := nodes[0]
	ring := asker.c.view.Load().ring
	next := 0
	ownedKey := func() string {
		for {
			next++
			k := "bench-" + strconv.Itoa(next)
			if ring.OwnerName(k) == asker.name {
				return k
			}
		}
	}
	for _, peek := range []bool{false, true} {
		name := "plain"
		if peek {
			name = "peek"
		}
		b.Run(name, func(b *testing.B) {
			// The previous ring: node-1 alone, so that it is every key's previous owner.
			v := *asker.c.view.Load()
			v.prevRing, v.changedAt = NewRing([]string{"node-1"}), time.Now()
			asker.c.view.Store(&v)
			asker.c.cfg.WarmTime = -1
			if peek {
				asker.c.cfg.WarmTime = time.Hour
			}
			keys := make([]string, b.N)
			for i := range keys {
				keys[i] = ownedKey()
			}
			before := asker.g.WarmStats().Peeks
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := asker.g.Get(context.Background(), keys[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if peeks := asker.g.WarmStats().Peeks - before; peek && peeks != int64(b.N) || !peek && peeks != 0 {
				b.Fatalf("%d peeks in %d misses (peek %v)", peeks, b.N, peek)
			}
		})
	}
}
