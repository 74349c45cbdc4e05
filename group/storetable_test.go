package group

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestTableReadersDuringChurn: a reader, which takes no lock, always finds the keys that stay
// in the store, with their value, while writers insert and remove other keys around them,
// leave tombstones and make the shard rebuild its table many times over; and it never finds
// a key that was never stored.
func TestTableReadersDuringChurn(t *testing.T) {
	const stay, churn, ops = 64, 4096, 20_000
	for _, shards := range []int{1, 4} {
		st := newStore[uint64, int](1<<40, shards, spread)
		for k := range uint64(stay) {
			st.set(k, int(k)+1, 1)
		}
		totalSlots := func() (n int) {
			for i := range st.shards {
				n += len(st.shards[i].tab.Load().slots)
			}
			return n
		}
		slotsBefore := totalSlots()
		var stop atomic.Bool
		var readers sync.WaitGroup
		var failures atomic.Int64
		for r := range 2 {
			readers.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(r), 1))
				for !stop.Load() {
					k := uint64(rng.IntN(stay))
					var v int
					if !st.get(k, &v) || v != int(k)+1 {
						failures.Add(1)
					}
					if st.get(1<<50+k, &v) { // never stored
						failures.Add(1)
					}
				}
			})
		}
		var writers sync.WaitGroup
		for w := range 2 {
			writers.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 2))
				for range ops {
					k := stay + uint64(rng.IntN(churn))
					if rng.IntN(2) == 0 {
						st.set(k, 0, 1)
					} else {
						st.removeIf(k, nil)
					}
				}
			})
		}
		writers.Wait()
		stop.Store(true)
		readers.Wait()
		if n := failures.Load(); n > 0 {
			t.Fatalf("%d shards: %d reads missed a key that stayed or found one never stored", shards, n)
		}
		if err := checkStore(st); err != nil {
			t.Fatal(err)
		}
		if totalSlots() == slotsBefore {
			t.Fatalf("%d shards: no table grew: the churn did not exercise a rebuild", shards)
		}
	}
}

// TestTableTombstones: removed keys leave tombstones that later inserts reuse or a rebuild
// clears, so that the slots in use stay within half the table whatever the
// churn, and a key removed then stored again is found once, with its new value.
func TestTableTombstones(t *testing.T) {
	st := newStore[uint64, int](1<<40, 1, identity)
	s := &st.shards[0]
	for round := range 200 {
		for k := range uint64(40) {
			st.set(uint64(round)*1000+k, round, 1)
		}
		for k := range uint64(40) {
			st.removeIf(uint64(round)*1000+k, nil)
		}
		st.set(7, round, 1)
		st.removeIf(7, nil)
		st.set(7, round, 1)
		s.mu.Lock()
		slots, used, live := len(s.tab.Load().slots), s.used, s.live
		s.mu.Unlock()
		if used*2 > slots || live != 1 {
			t.Fatalf("round %d: %d of %d slots in use, %d live; want at most half in use and 1 live", round, used, slots, live)
		}
		var v int
		if !st.get(7, &v) || v != round {
			t.Fatalf("round %d: key 7 = %d (found: %v)", round, v, st.get(7, &v))
		}
	}
	if err := checkStore(st); err != nil {
		t.Fatal(err)
	}
}
