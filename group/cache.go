package group

import (
	"hash/maphash"
	"math"
	"sync/atomic"
	"time"
)

// EntryOverhead is the bookkeeping cost of one cached entry beyond its key and value bytes:
// the store's node (the group's entry struct, queue links, weight and frequency: 96 bytes),
// its slots in the shard's table (8 bytes each, two to six per entry: a table is rebuilt a
// third full and again once half its slots are taken), its share of the ghost queue's filters and the size-class rounding of the key. It is
// charged to the byte bound so that the heap tracks CacheBytes (golang/groupcache counts key
// and value only, and a cache of small values then grows far past its bound:
// BenchmarkFullHeap measures 2.4x at 100-byte values).
//
// Measured by BenchmarkEntryOverhead: a Group is filled through Get exactly to its bound,
// without evicting, with 100,000 to 300,000 entries (keys made by the caller, values by the
// loader), and the growth of the live heap after a full GC, less the keys' and values'
// lengths, is divided by the count. It came to 119-138 bytes per entry (the tables grow by
// powers of two), more where a value's length is rounded up to an allocation size class
// (1000-byte values: 143-150). BenchmarkFullHeap, which also evicts (and so leaves tombstones
// and fills the ghost filters), finds the live heap at 1.00-1.03x the bound with 136.
const EntryOverhead = 136

// entry is what the caches hold. It is stored by value: a hit copies it out without
// allocating.
type entry struct {
	value    []byte
	hash     uint64 // xxhash64 of value, computed once when the entry is made
	expires  int64  // clock.now() at which it expires; 0 means never
	negative bool   // a remembered ErrNotFound
	meta     *meta  // content type and date; nil when the value has none
}

// cache is one byte-bounded cache of the group's entries, on store's S3-FIFO policy.
//
// Expiry is ours: every entry records its deadline and get treats a passed deadline as a
// miss (and drops the entry), so an expired entry is never served; an expired entry that
// nobody asks for again holds its bytes, still within the bound, until the policy evicts it
// as unread.
type cache struct {
	s           *store[string, entry]
	clock       clock
	expirations atomic.Int64

	// grace keeps an expired value (not a negative entry) this long past its deadline, for
	// serving stale (stale.go): get still reports it as a miss, but leaves it in place, where
	// it keeps counting against the byte bound, for stale to find. Set once, by New, for the
	// main cache only; zero drops expired entries as soon as get finds them.
	grace int64
}

// newCache returns a cache of maxBytes, sharded for that size.
func newCache(maxBytes int64, clk clock) *cache {
	return newCacheShards(maxBytes, clk, storeShards(maxBytes))
}

// newCacheShards returns a cache of maxBytes in the given number of shards (a power of two):
// the hot cache starts empty and is sized later, but is sharded for the group's bytes.
func newCacheShards(maxBytes int64, clk clock, shards int) *cache {
	c := &cache{clock: clk}
	seed := maphash.MakeSeed()
	c.s = newStore[string, entry](max(maxBytes, 1), shards, func(k string) uint64 { return maphash.String(seed, k) })
	return c
}

// clock reads the monotonic time as nanoseconds since its group was made. That is one vDSO
// call (about 25 ns on the CI machine) where time.Now makes two (about 40 ns), on every hit of
// an entry with a TTL; and a step of the wall clock cannot expire or revive entries.
type clock struct{ epoch time.Time }

func newClock() clock { return clock{epoch: time.Now()} }

func (c clock) now() int64 { return int64(time.Since(c.epoch)) }

// deadline returns the expiry stamp ttl from now; it is never 0, which means "never".
func (c clock) deadline(ttl time.Duration) int64 { return max(c.now()+int64(ttl), 1) }

// weight is what one entry costs against the byte bound. Entries too large to express are
// given the largest weight, which no cache of a realistic size can hold, so they are dropped.
func weight(key string, value []byte) uint32 {
	w := uint64(len(key)) + uint64(len(value)) + EntryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// get stores the entry for key in *e and returns its remaining lifetime (0: never expires)
// if it is present and has not expired. An expired entry found here is dropped and counted,
// unless it is a value within its grace (see grace), which stays for stale to find.
// The entry is written through e, not returned: on the hit path every copy of it shows.
func (c *cache) get(key string, e *entry) (time.Duration, bool) {
	if !c.s.get(key, e) {
		return 0, false
	}
	if e.expires == 0 {
		return 0, true
	}
	now := c.clock.now()
	if left := e.expires - now; left > 0 {
		return time.Duration(left), true
	}
	if !c.kept(e, now) {
		c.dropExpired(key, now)
	}
	return 0, false
}

// kept reports whether e, expired or not, stays in the cache at now: it has not expired, or
// it is a value within its grace (see grace).
func (c *cache) kept(e *entry, now int64) bool {
	return e.expires == 0 || e.expires > now || (!e.negative && now-e.expires < c.grace)
}

// stale stores key's expired value in *e if it is within its grace, and returns how long ago
// it expired. It finds nothing when grace is zero.
func (c *cache) stale(key string, e *entry) (time.Duration, bool) {
	if c.grace == 0 {
		return 0, false
	}
	if !c.s.get(key, e) || e.negative || e.expires == 0 {
		return 0, false
	}
	past := c.clock.now() - e.expires
	if past < 0 || past >= c.grace {
		return 0, false
	}
	return time.Duration(past), true
}

// dropExpired removes key if its entry has expired at now (and is not kept for its grace).
// A fill may have replaced it with a fresh entry since get read it; that one stays.
func (c *cache) dropExpired(key string, now int64) {
	if c.s.removeIf(key, func(old entry) bool { return !c.kept(&old, now) }) {
		c.expirations.Add(1)
	}
}

// add stores e unless it alone is larger than the whole cache (then key's old entry goes), and
// evicts what the bound requires before it returns.
func (c *cache) add(key string, e entry) { c.s.set(key, e, weight(key, e.value)) }

// maxBytes is the cache's bound.
func (c *cache) maxBytes() int64 { return c.s.max.Load() }

func (c *cache) remove(key string) { c.s.removeIf(key, nil) }

func (c *cache) purge() { c.s.clear() }

func (c *cache) setMaxBytes(n int64) { c.s.setMax(max(n, 1)) }

func (c *cache) stats(hits int64) CacheStats {
	return CacheStats{
		Bytes:       c.s.bytes.Load(),
		Items:       c.s.items.Load(),
		Hits:        hits,
		Evictions:   c.s.evictions.Load(),
		Expirations: c.expirations.Load(),
	}
}
