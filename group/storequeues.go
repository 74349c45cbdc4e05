package group

// The S3-FIFO policy's queues (store.go): the small and main FIFOs of nodes, and the ghost of
// hashes of keys recently dropped from the small one.

// fifo is a queue of nodes linked through them: new ones at the head, evicted from the tail.
type fifo[K comparable, V any] struct {
	head, tail *storeNode[K, V]
	n          int
	bytes      int64
}

func (q *fifo[K, V]) pushFront(n *storeNode[K, V]) {
	n.prev, n.next = nil, q.head
	if q.head != nil {
		q.head.prev = n
	} else {
		q.tail = n
	}
	q.head = n
	q.n++
	q.bytes += int64(n.weight)
}

func (q *fifo[K, V]) remove(n *storeNode[K, V]) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		q.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		q.tail = n.prev
	}
	n.prev, n.next = nil, nil
	q.n--
	q.bytes -= int64(n.weight)
}

// replace puts n in old's place.
func (q *fifo[K, V]) replace(old, n *storeNode[K, V]) {
	n.prev, n.next = old.prev, old.next
	if n.prev != nil {
		n.prev.next = n
	} else {
		q.head = n
	}
	if n.next != nil {
		n.next.prev = n
	} else {
		q.tail = n
	}
	old.prev, old.next = nil, nil
	q.bytes += int64(n.weight) - int64(old.weight)
}

// ghost remembers the hashes of the keys the small queue evicted unread, the most recent
// ones, about as many as the shard holds entries: in two generations of Bloom filters, of
// which take asks both and push fills the newer, and which are replaced one at a time once the
// newer has taken half the shard's entries. Each generation has 16 to 32 bits per hash it
// takes (a power of two): two to four bytes per entry, where a set of hashes took some forty
// (BenchmarkFullHeap). A false match lets a new key into the main queue, as if it had been
// seen before: about 1% of new keys at most, when both generations are full and have 16 bits
// per hash (at 10 bits per hash, it was 3.4%).
type ghost struct {
	cur, prev []uint64 // bit sets, a power of two of bits each
	added     int      // hashes pushed into cur
	limit     int      // hashes cur takes before it becomes prev
}

const ghostProbes = 3

// push remembers h; entries is the shard's entry count, which sizes a new generation.
func (g *ghost) push(h uint64, entries int) {
	if g.added >= g.limit {
		g.prev = g.cur
		g.limit = max(entries/2, 16)
		bits := 64
		for bits < 16*g.limit {
			bits *= 2
		}
		g.cur = make([]uint64, bits/64)
		g.added = 0
	}
	g.added++
	h1, h2, mask := ghostMix(h), h|1, uint64(len(g.cur)*64-1)
	for i := range uint64(ghostProbes) {
		b := (h1 + i*h2) & mask
		g.cur[b/64] |= 1 << (b % 64)
	}
}

// take reports whether h is remembered.
func (g *ghost) take(h uint64) bool {
	return ghostHas(g.cur, h) || ghostHas(g.prev, h)
}

func ghostHas(set []uint64, h uint64) bool {
	if len(set) == 0 {
		return false
	}
	h1, h2, mask := ghostMix(h), h|1, uint64(len(set)*64-1)
	for i := range uint64(ghostProbes) {
		b := (h1 + i*h2) & mask
		if set[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// ghostMix spreads h's bits (the sizer's sampled keys leave the high ones zero): splitmix64's
// finaliser.
func ghostMix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}
