package peers

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
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

// BenchmarkHandOff measures one node's hand-off: 4,096 values of 1 KiB that node-0 owns, in
// its main cache, pushed to node-1 over the authenticated wire on loopback (each iteration
// with keys node-1 does not hold). It reports the bytes handed over per second and per
// hand-off.
//
//	go test -run '^$' -bench BenchmarkHandOff -count 5 ./peers/
func BenchmarkHandOff(b *testing.B) {
	const entries, valueBytes = 4096, 1024
	log := newLoadLog()
	value := make([]byte, valueBytes)
	opt := func(string) nodeOptions {
		o := warmOptions("")
		o.group.CacheBytes = 64 << 20
		o.load = func(context.Context, string, string) (group.Value, error) { return group.Value{Bytes: value}, nil }
		return o
	}
	nodes := startCluster(b, 2, log, opt)
	sender, receiver := nodes[0], nodes[1]
	ring := sender.c.view.Load().ring
	next := 0
	var sent int64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Fresh keys the sender owns and loads itself; the old ones go, so that the hand-off
		// sends exactly these.
		sender.g.PurgeLocal()
		for n := 0; n < entries; {
			next++
			k := "handoff-" + strconv.Itoa(next)
			if ring.OwnerName(k) != sender.name {
				continue
			}
			if _, err := sender.g.Get(context.Background(), k); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.StartTimer()
		st, err := sender.c.HandOff(context.Background(), 1<<30)
		if err != nil || st.Entries != entries || st.Failed != 0 {
			b.Fatalf("HandOff = %+v, %v", st, err)
		}
		sent += st.Bytes
	}
	b.StopTimer()
	b.SetBytes(sent / int64(b.N))
	if stored := receiver.g.WarmStats().PushesStored; stored != int64(b.N*entries) {
		b.Fatalf("%d pushes stored, want %d", stored, b.N*entries)
	}
}
