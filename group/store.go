package group

import (
	"cmp"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
)

// store is a concurrent map bounded by the total weight of its entries, on the S3-FIFO
// eviction policy (Yang et al., "FIFO queues are all you need for cache eviction", SOSP 2023):
//   - a new key enters a small FIFO queue; a key evicted from it unread is dropped and
//     remembered in a ghost queue of hashes, and one that was read moves to the main queue;
//   - a key found in the ghost queue when it comes back enters the main queue directly;
//   - the main queue evicts from its tail, giving a key that was read since it last passed
//     there another round (a frequency of 0 to 3, decremented at each pass).
//
// One-time keys (a scan) pass through the small queue without displacing the main queue, and
// a key read often stays. A read takes no lock (storetable.go) and writes nothing but a
// counter, and only until it reaches its cap (get), so that hits of several goroutines proceed
// together. A write costs one table insertion and, in a full store, one removal: about what
// golang/groupcache's LRU costs, and a quarter of otter's W-TinyLFU write with its maintenance
// pass (BenchmarkStore), for hit ratios at or above otter's and LRU's on every trace of
// BenchmarkHitRatio.
//
// The keys are spread over shards by hash, each with its own lock, table and queues; the bound
// is on the total. A store that must evict takes its victims in the shard it wrote to while
// that shard holds at least its share of the bound, else from the first shard above its share
// (then from any). The bound holds when set, setMax and clear return; between a write and its
// evictions, concurrent readers of bytes may see it passed by that write.
type store[K comparable, V any] struct {
	hash      func(K) uint64
	shards    []storeShard[K, V]
	mask      uint64
	max       atomic.Int64
	bytes     atomic.Int64
	items     atomic.Int64
	evictions atomic.Int64
	next      atomic.Uint64    // where shrink starts looking for a shard above its share
	tomb      *storeNode[K, V] // marks a removed key's slot in a table (storetable.go)
}

type storeShard[K comparable, V any] struct {
	tab atomic.Pointer[table[K, V]] // read without the lock (storetable.go)

	mu          sync.Mutex // orders the writers: everything below, and the table's slots
	live, used  int        // nodes in the table; its slots not nil (nodes and tombstones)
	small, main fifo[K, V]
	ghost       ghost
	bytes       atomic.Int64 // written under mu; read without it by shrink
	_           [64]byte     // keeps neighbouring shards' fields off one cache line
}

// storeNode is one entry. Its key, value and weight never change (a new value for the key
// gets a new node), so that they can be read once the lock is released.
type storeNode[K comparable, V any] struct {
	key    K
	val    V
	weight uint32
	// state holds, in its low byte, the reads since the node last passed a queue's tail
	// (counted up to maxFreq), and inMain above it,
	// which only the shard's write lock changes. One word keeps a node of a string key and a
	// group entry at 96 bytes, an allocation size class.
	state      atomic.Uint32
	prev, next *storeNode[K, V]
}

const (
	maxFreq  = 3
	freqMask = 0xff
	inMain   = 1 << 8
)

func (n *storeNode[K, V]) freq() uint32 { return min(n.state.Load()&freqMask, maxFreq) }

func (n *storeNode[K, V]) inMain() bool { return n.state.Load()&inMain != 0 }

// setState sets the frequency and the queue; the shard's write lock must be held.
func (n *storeNode[K, V]) setState(freq uint32, main bool) {
	if main {
		freq |= inMain
	}
	n.state.Store(freq)
}

// storeShards is the number of shards for a store of maxBytes: a power of two, at most 64,
// each holding at least 256 KiB, so that a small store keeps its policy in one piece.
func storeShards(maxBytes int64) int {
	n := 1
	for n < 64 && maxBytes/int64(2*n) >= 256<<10 {
		n *= 2
	}
	return n
}

func newStore[K comparable, V any](maxBytes int64, shards int, hash func(K) uint64) *store[K, V] {
	st := &store[K, V]{hash: hash, shards: make([]storeShard[K, V], shards), mask: uint64(shards - 1)}
	st.tomb = &storeNode[K, V]{}
	for i := range st.shards {
		st.shards[i].reset()
	}
	st.max.Store(maxBytes)
	return st
}

func (st *store[K, V]) shard(h uint64) *storeShard[K, V] {
	// The high bits, apart from the low ones where a table's probe starts. (The sizer's
	// sampled keys leave the high bits zero: their store has one shard.)
	return &st.shards[(h>>40)&st.mask]
}

// get stores key's value in *v and counts a read of it, if key is present.
func (st *store[K, V]) get(key K, v *V) bool {
	h := st.hash(key)
	n := st.shard(h).tab.Load().find(key, h, st.tomb)
	if n != nil {
		*v = n.val
		// A compare-and-swap, not an add: racing readers lose a count rather than carry it
		// into inMain. Once at maxFreq, a read writes nothing.
		if st := n.state.Load(); st&freqMask < maxFreq {
			n.state.CompareAndSwap(st, st+1)
		}
	}
	return n != nil
}

// fair is a shard's share of the bound.
func (st *store[K, V]) fair() int64 { return st.max.Load() / int64(len(st.shards)) }

// set stores val for key, with weight w, and evicts what the bound requires. A new value for
// a key present keeps the old one's place and frequency. An entry heavier than the whole bound
// is not stored (it would evict every other entry before it went too); the key's old value,
// which it replaces, is removed.
func (st *store[K, V]) set(key K, val V, w uint32) {
	if int64(w) > st.max.Load() {
		st.removeIf(key, nil)
		return
	}
	h := st.hash(key)
	s := st.shard(h)
	n := &storeNode[K, V]{key: key, val: val, weight: w}
	s.mu.Lock()
	delta := int64(w)
	// One probe both finds the node replaced and publishes n; n's state is set right after,
	// which at worst drops a count that a reader gave it in between.
	if old := s.put(n, h, st); old != nil {
		delta -= int64(old.weight)
		n.setState(old.freq(), old.inMain())
		s.queue(old).replace(old, n)
	} else {
		st.items.Add(1)
		if s.ghost.take(h) {
			n.setState(0, true)
			s.main.pushFront(n)
		} else {
			s.small.pushFront(n)
		}
	}
	s.bytes.Add(delta)
	st.bytes.Add(delta)
	fair := st.fair()
	for st.bytes.Load() > st.max.Load() && s.bytes.Load() >= fair {
		if !st.evictOne(s, fair, false) {
			break
		}
	}
	s.mu.Unlock()
	for st.bytes.Load() > st.max.Load() && st.evictSomewhere() {
	}
}

// shrink evicts until the bound holds.
func (st *store[K, V]) shrink() {
	for st.bytes.Load() > st.max.Load() && st.evictSomewhere() {
	}
}

// evictSomewhere evicts one entry and reports whether there was one to evict: from the first
// shard above its share, or else from any shard, sparing each shard's newest small-queue
// entry while anything else can go (see evictOne).
func (st *store[K, V]) evictSomewhere() bool {
	fair := st.fair()
	start := st.next.Add(1)
	for pass := range 3 {
		for j := range uint64(len(st.shards)) {
			s := &st.shards[(start+j)&st.mask]
			if b := s.bytes.Load(); b == 0 || (pass == 0 && b <= fair) {
				continue
			}
			s.mu.Lock()
			ok := st.evictOne(s, fair, pass == 2)
			s.mu.Unlock()
			if ok {
				return true
			}
		}
	}
	return false
}

// evictOne evicts one entry of s, whose lock is held, and reports whether it did. fair is s's
// share of the bound, which sets the small queue's: a tenth of it. Unless forced, it never
// evicts the small queue's only entry, the latest new key: a value larger than a tenth of the
// share would otherwise be dropped as soon as it is stored.
func (st *store[K, V]) evictOne(s *storeShard[K, V], fair int64, force bool) bool {
	for {
		small := s.small.n > 0 && (s.small.bytes*10 >= fair || s.main.n == 0)
		if small && s.small.n == 1 && !force {
			small = false
		}
		if small {
			t := s.small.tail
			s.small.remove(t)
			if t.freq() > 0 {
				t.setState(0, true)
				s.main.pushFront(t)
				continue
			}
			h := st.hash(t.key)
			s.ghost.push(h, s.live)
			st.drop(s, t, h)
			st.evictions.Add(1)
			return true
		}
		t := s.main.tail
		if t == nil {
			return false
		}
		s.main.remove(t)
		if f := t.freq(); f > 0 {
			// Readers count without the lock: one that counts between freq and setState is
			// lost, which costs the key at most one round.
			t.setState(f-1, true)
			s.main.pushFront(t)
			continue
		}
		st.drop(s, t, st.hash(t.key))
		st.evictions.Add(1)
		return true
	}
}

// drop forgets n, already out of its queue. s's lock is held.
func (st *store[K, V]) drop(s *storeShard[K, V], n *storeNode[K, V], h uint64) {
	s.delete(n.key, h, st.tomb)
	s.bytes.Add(-int64(n.weight))
	st.bytes.Add(-int64(n.weight))
	st.items.Add(-1)
}

// removeIf removes key if drop, given its value, says so (or drop is nil), and reports
// whether it did.
func (st *store[K, V]) removeIf(key K, drop func(V) bool) bool {
	h := st.hash(key)
	s := st.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lookup(key, h, st.tomb)
	if n == nil || (drop != nil && !drop(n.val)) {
		return false
	}
	s.queue(n).remove(n)
	st.drop(s, n, h)
	return true
}

// clear removes every entry.
func (st *store[K, V]) clear() {
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.Lock()
		b := s.bytes.Swap(0)
		st.bytes.Add(-b)
		st.items.Add(-int64(s.live))
		s.reset()
		s.small, s.main = fifo[K, V]{}, fifo[K, V]{}
		s.ghost = ghost{}
		s.mu.Unlock()
	}
}

// setMax sets the bound and evicts what it requires.
func (st *store[K, V]) setMax(n int64) {
	st.max.Store(n)
	st.shrink()
}

// ranked returns the entries in the order the policy keeps them, the one it would keep
// longest first: the main queue's, the most read first, where a small-queue entry that was
// read counts as a main-queue entry read 0 times, ahead of those (it moves to the main
// queue's head when the small queue's tail reaches it, where they are dropped before it);
// then the small queue's unread ones; within each, the most recently queued first. Each
// shard's lock is held while its entries are listed.
func (st *store[K, V]) ranked() []*storeNode[K, V] {
	type ranked struct {
		n     *storeNode[K, V]
		score uint64
	}
	var all []ranked
	for i := range st.shards {
		s := &st.shards[i]
		s.mu.Lock()
		for inSmall, q := range [2]*fifo[K, V]{&s.main, &s.small} {
			pos := uint64(0)
			for n := q.head; n != nil; n = n.next {
				// main (or promoted) > small, then frequency, then promoted before main,
				// then position from the head.
				class, freq, promoted := uint64(1), uint64(n.freq()), uint64(0)
				if inSmall == 1 {
					class, freq, promoted = min(freq, 1), 0, min(freq, 1)
				}
				score := class<<62 | freq<<58 | promoted<<57 | (1<<57 - 1 - pos)
				all = append(all, ranked{n, score})
				pos++
			}
		}
		s.mu.Unlock()
	}
	slices.SortStableFunc(all, func(a, b ranked) int { return cmp.Compare(b.score, a.score) })
	nodes := make([]*storeNode[K, V], len(all))
	for i, r := range all {
		nodes[i] = r.n
	}
	return nodes
}

// hottest yields the entries in ranked order.
func (st *store[K, V]) hottest() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for _, n := range st.ranked() {
			if !yield(n.key, n.val) {
				return
			}
		}
	}
}

func (s *storeShard[K, V]) queue(n *storeNode[K, V]) *fifo[K, V] {
	if n.inMain() {
		return &s.main
	}
	return &s.small
}
