package group

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// The store's tests use integer keys. spread fills the high bits, which pick the shard;
// identity leaves the key as its own hash, so that a test can place a key in a shard
// (shard<<40 | i) or, in one shard, know the ghost's hashes.
func spread(k uint64) uint64   { return k * 0x9e3779b97f4a7c15 }
func identity(k uint64) uint64 { return k }

type testStore = store[uint64, int]

// nodeOf returns key's node, nil when the store does not hold it.
func nodeOf(st *testStore, key uint64) *storeNode[uint64, int] {
	h := st.hash(key)
	s := st.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lookup(key, h, st.tomb)
}

// checkStore walks every shard under its lock and returns the first broken invariant: each
// queue's links, count and bytes; every queued node in the map and in the queue its state
// names; a shard's map length and bytes those of its queues (and the sum of its map's
// weights); the store's bytes and items the sums over the shards, and the bytes within the
// bound.
func checkStore(st *testStore) error {
	var bytes, items int64
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.Lock()
		b, n, err := checkShard(st, s)
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("shard %d: %w", i, err)
		}
		bytes, items = bytes+b, items+n
	}
	if got := st.bytes.Load(); got != bytes {
		return fmt.Errorf("store bytes %d, its entries weigh %d", got, bytes)
	}
	if got := st.items.Load(); got != items {
		return fmt.Errorf("store items %d, it holds %d entries", got, items)
	}
	if limit := st.max.Load(); bytes > limit {
		return fmt.Errorf("%d bytes, bound %d", bytes, limit)
	}
	return nil
}

func checkShard(st *testStore, s *storeShard[uint64, int]) (bytes, items int64, err error) {
	var mapBytes int64
	mapLen := 0
	s.each(st.tomb, func(n *storeNode[uint64, int]) {
		mapBytes += int64(n.weight)
		mapLen++
	})
	if mapLen != s.live {
		return 0, 0, fmt.Errorf("table holds %d nodes, live says %d", mapLen, s.live)
	}
	for _, q := range []struct {
		name string
		q    *fifo[uint64, int]
		main bool
	}{{"main", &s.main, true}, {"small", &s.small, false}} {
		var n, b int64
		var prev *storeNode[uint64, int]
		for x := q.q.head; x != nil; prev, x = x, x.next {
			switch {
			case x.prev != prev:
				return 0, 0, fmt.Errorf("%s queue: key %d's prev link is broken", q.name, x.key)
			case x.inMain() != q.main:
				return 0, 0, fmt.Errorf("%s queue: key %d has inMain %v", q.name, x.key, x.inMain())
			case s.lookup(x.key, st.hash(x.key), st.tomb) != x:
				return 0, 0, fmt.Errorf("%s queue: key %d is not the table's node", q.name, x.key)
			case n > int64(mapLen):
				return 0, 0, fmt.Errorf("%s queue: longer than the table (%d): a cycle", q.name, mapLen)
			}
			n, b = n+1, b+int64(x.weight)
		}
		if q.q.tail != prev || n != int64(q.q.n) || b != q.q.bytes {
			return 0, 0, fmt.Errorf("%s queue: walked %d nodes, %d bytes; it says n %d, bytes %d (tail ok: %v)",
				q.name, n, b, q.q.n, q.q.bytes, q.q.tail == prev)
		}
		bytes, items = bytes+b, items+n
	}
	if items != int64(mapLen) {
		return 0, 0, fmt.Errorf("table holds %d keys, queues %d", mapLen, items)
	}
	if got := s.bytes.Load(); got != bytes || mapBytes != bytes {
		return 0, 0, fmt.Errorf("shard bytes %d, map's weights %d, queues' %d", got, mapBytes, bytes)
	}
	return bytes, items, nil
}

// TestStoreBound runs a seeded random sequence of sets (weights from 1 byte to the whole
// bound), removeIfs, clears and setMaxes (shrinking and growing) on stores of 1, 4 and 64
// shards, and checks the store's invariants (checkStore) after every operation.
func TestStoreBound(t *testing.T) {
	tests := []struct {
		name   string
		shards int
		seed   uint64
	}{
		{"1 shard", 1, 1},
		{"4 shards", 4, 2},
		{"64 shards", 64, 3},
	}
	const bound, keys, ops = 16 << 10, 1500, 3000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tt.seed, 0))
			st := newStore[uint64, int](bound, tt.shards, spread)
			var full, shrinks int
			for i := range ops {
				key := uint64(rng.IntN(keys))
				var op string
				switch r := rng.IntN(1000); {
				case r < 3:
					op = "clear"
					st.clear()
				case r < 15:
					m := bound/16 + rng.Int64N(2*bound)
					if m < st.bytes.Load() {
						shrinks++
					}
					op = fmt.Sprintf("setMax %d (from %d)", m, st.max.Load())
					st.setMax(m)
				case r < 100:
					var drop func(int) bool
					if r%2 == 0 {
						drop = func(v int) bool { return v%2 == 0 }
					}
					op = fmt.Sprintf("removeIf %d", key)
					st.removeIf(key, drop)
				default:
					limit := st.max.Load()
					w := 1 + rng.Int64N(64)
					switch rng.IntN(50) {
					case 0:
						w = limit/2 + rng.Int64N(limit/2+1)
					case 1, 2, 3, 4:
						w = 1 + rng.Int64N(limit/8+1)
					}
					op = fmt.Sprintf("set %d, weight %d", key, w)
					st.set(key, i, uint32(w))
				}
				if err := checkStore(st); err != nil {
					t.Fatalf("op %d (%s): %v", i, op, err)
				}
				if st.bytes.Load() > st.max.Load()*9/10 {
					full++
				}
			}
			t.Logf("near the bound after %d of %d ops, shrunk under its bytes %d times, evicted %d",
				full, ops, shrinks, st.evictions.Load())
			// The bound must have been under pressure, and shrunk below the bytes held. (A
			// large entry, kept while it is its shard's only new one, leaves a hole when it
			// goes: with one set in 50 near the bound, the store sits near it on 19-31% of the
			// operations.)
			if full < ops/10 || shrinks == 0 || st.evictions.Load() == 0 {
				t.Fatalf("the store was near its bound after %d of %d ops, shrunk under its bytes %d times, evicted %d",
					full, ops, shrinks, st.evictions.Load())
			}
		})
	}
}

// TestStoreEvictsAcrossShards fills shards of a store up to its bound and writes one more
// entry: the shard written to evicts its own entries only while it holds at least its share
// of the bound; under its share, the victim is in a shard above its share, and the new
// entry stays.
func TestStoreEvictsAcrossShards(t *testing.T) {
	// 4 shards, a bound of 400 bytes: a share of 100 each; every entry weighs 10.
	tests := []struct {
		name      string
		fill      map[int]int // shard -> entries
		write     int         // the shard of the new entry
		evictFrom int
	}{
		{"written shard empty, the first over its share", map[int]int{0: 40}, 1, 0},
		{"written shard empty, the last over its share", map[int]int{3: 40}, 1, 3},
		{"written shard under its share", map[int]int{1: 5, 2: 35}, 1, 2},
		{"written shard at its share", map[int]int{0: 30, 1: 10}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore[uint64, int](400, 4, identity)
			key := func(shard, i int) uint64 { return uint64(shard)<<40 | uint64(i) }
			for shard, n := range tt.fill {
				for i := range n {
					st.set(key(shard, i), i, 10)
				}
			}
			var before [4]int64
			for i := range st.shards {
				before[i] = st.shards[i].bytes.Load()
			}
			newKey := key(tt.write, 1000)
			st.set(newKey, 1, 10)
			if nodeOf(st, newKey) == nil {
				t.Fatalf("the new entry in shard %d was evicted", tt.write)
			}
			for i := range st.shards {
				want := before[i]
				if i == tt.write {
					want += 10
				}
				if i == tt.evictFrom {
					want -= 10
				}
				if got := st.shards[i].bytes.Load(); got != want {
					t.Errorf("shard %d holds %d bytes, want %d (before the write %v)", i, got, want, before)
				}
			}
			if got := st.evictions.Load(); got != 1 {
				t.Errorf("%d evictions, want 1", got)
			}
			if err := checkStore(st); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStoreRanked checks ranked's order, and that hottest yields it and stops when told: the
// main queue first, the most read first, then the most recently queued first.
func TestStoreRanked(t *testing.T) {
	st := newStore[uint64, int](100, 1, identity)
	const m0, m1, m2, s0, s1 = 1, 2, 3, 4, 5
	setKeys(st, m0, m2+1, true)
	setKeys(st, 100, 198, false) // m0-m2 move to the main queue, 100 leaves
	// The counts go against the order of arrival, which alone would rank m2 and s1 first.
	var v int
	st.get(m0, &v)
	st.get(m0, &v)
	st.get(m1, &v)
	setKeys(st, s0, s1+1, false) // 101 and 102 leave
	st.get(s0, &v)
	// s0, read in the small queue, moves to the main queue's head when it leaves the small
	// one: the unread m2 goes before it (TestRankedIsEvictionOrder).
	want := []uint64{m0, m1, s0, m2, s1, 197, 196}

	ranked := st.ranked()
	if len(ranked) != int(st.items.Load()) {
		t.Fatalf("ranked lists %d entries, the store holds %d", len(ranked), st.items.Load())
	}
	var got []uint64
	for _, n := range ranked[:len(want)] {
		got = append(got, n.key)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ranked starts %v, want %v", got, want)
	}
	got = got[:0]
	for k := range st.hottest() {
		got = append(got, k)
		if len(got) == 3 {
			break
		}
	}
	calls := 0
	st.hottest()(func(uint64, int) bool { calls++; return calls < 3 })
	if fmt.Sprint(got) != fmt.Sprint(want[:3]) || calls != 3 {
		t.Fatalf("hottest yielded %v, then stopped after %d calls; want %v and 3", got, calls, want[:3])
	}
}

// TestStoreReplace sets a new value for a key in each queue: it keeps the queue, the count of
// reads and its rank, and the store's bytes change by the difference of the weights.
func TestStoreReplace(t *testing.T) {
	tests := []struct {
		name       string
		main       bool
		reads      int
		oldW, newW uint32
	}{
		{"small queue, read twice, heavier", false, 2, 10, 30},
		{"main queue, read once, lighter", true, 1, 30, 5},
		{"main queue, unread, same weight", true, 0, 8, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore[uint64, int](1000, 1, identity)
			const key = 1
			st.set(key, 1, tt.oldW)
			var v int
			if tt.main {
				st.get(key, &v)
				for f := uint64(100); !nodeOf(st, key).inMain(); f++ {
					st.set(f, 0, 10)
				}
			}
			setKeys(st, 2000, 2010, false) // neighbours in the small queue
			for range tt.reads {
				st.get(key, &v)
			}
			n := nodeOf(st, key)
			rank := rankOf(st, key)
			bytes, items := st.bytes.Load(), st.items.Load()
			if n.inMain() != tt.main || n.freq() != uint32(tt.reads) {
				t.Fatalf("before: inMain %v, count %d; the test wants %v, %d", n.inMain(), n.freq(), tt.main, tt.reads)
			}

			st.set(key, 2, tt.newW)
			n2 := nodeOf(st, key)
			if n2.inMain() != tt.main || n2.freq() != uint32(tt.reads) {
				t.Errorf("after: inMain %v, count %d; want %v, %d", n2.inMain(), n2.freq(), tt.main, tt.reads)
			}
			if got := rankOf(st, key); got != rank {
				t.Errorf("ranked %d, was %d", got, rank)
			}
			if got, want := st.bytes.Load(), bytes+int64(tt.newW)-int64(tt.oldW); got != want {
				t.Errorf("bytes %d, want %d", got, want)
			}
			if got := st.items.Load(); got != items {
				t.Errorf("items %d, was %d", got, items)
			}
			if !st.get(key, &v) || v != 2 {
				t.Errorf("get = %d, want the new value 2", v)
			}
			if err := checkStore(st); err != nil {
				t.Error(err)
			}
		})
	}
}

// rankOf returns key's index in st.ranked(), -1 if it is absent.
func rankOf(st *testStore, key uint64) int {
	return slices.IndexFunc(st.ranked(), func(n *storeNode[uint64, int]) bool { return n.key == key })
}

// TestStoreConcurrent runs gets, sets, removeIfs, clears, setMaxes and rankeds of
// overlapping keys from 8 goroutines (for the race detector); once they are done, the store
// keeps its invariants (checkStore), and ranked lists its entries main queue first, the most
// read first.
func TestStoreConcurrent(t *testing.T) {
	for _, shards := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d shards", shards), func(t *testing.T) {
			st := newStore[uint64, int](4<<10, shards, spread)
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 11))
					var v int
					for i := range 5000 {
						key := uint64(rng.IntN(300))
						switch r := rng.IntN(1000); {
						case r < 2:
							st.clear()
						case r < 10:
							st.setMax(1<<10 + rng.Int64N(8<<10))
						case r < 12:
							st.ranked()
						case r < 100:
							st.removeIf(key, func(v int) bool { return v%2 == 0 })
						case r < 500:
							st.set(key, i, uint32(1+rng.IntN(200)))
						default:
							st.get(key, &v)
						}
					}
				})
			}
			wg.Wait()
			if err := checkStore(st); err != nil {
				t.Fatal(err)
			}
			if st.evictions.Load() == 0 || st.items.Load() == 0 {
				t.Fatalf("%d evictions, %d items: the mix did not fill the store", st.evictions.Load(), st.items.Load())
			}
			ranked := st.ranked()
			rank := func(n *storeNode[uint64, int]) uint32 {
				if n.inMain() {
					return 1<<8 | n.freq()<<1
				}
				if n.freq() > 0 { // moves to the main queue's head: a main entry's 0, before them
					return 1<<8 | 1
				}
				return 0
			}
			for i := 1; i < len(ranked); i++ {
				if a, b := ranked[i-1], ranked[i]; rank(a) < rank(b) {
					t.Fatalf("ranked %d (inMain %v, count %d) before %d (inMain %v, count %d)",
						a.key, a.inMain(), a.freq(), b.key, b.inMain(), b.freq())
				}
			}
		})
	}
}
