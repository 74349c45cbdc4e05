package group

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// EntryOverhead is the bookkeeping cost of one cached entry beyond its key and value bytes:
// otter's node (policy links, frequency and weight fields), its hash-table slot, its share of
// the frequency sketch, the group's entry struct (value slice header, hash, deadline) and the
// size-class rounding of the key. It is charged to the byte bound so that the heap tracks
// CacheBytes (golang/groupcache counts key and value only, and a cache of small values then
// grows far past its bound: BenchmarkFullHeap measures 2.5x at 100-byte values).
//
// Measured by BenchmarkEntryOverhead: a Group is filled through Get exactly to its bound,
// without evicting, with 100,000 to 300,000 entries (keys made by the caller, values by the
// loader), and the growth of the live heap after a full GC, less the keys' and values'
// lengths, is divided by the count. It came to 131-141 bytes per entry (the table and the
// sketch grow by powers of two), more where a value's length is rounded up to an allocation
// size class (1000-byte values: 155-165). 144 covers the structure; scripts/memcheck confirms
// it from the other side: a 256 MiB group full of 1 KiB values holds 0.99x 256 MiB of live heap.
const EntryOverhead = 144

// entry is what the caches hold. It is stored by value: a hit copies it out without
// allocating.
type entry struct {
	value    []byte
	hash     uint64 // xxhash64 of value, computed once when the entry is made
	expires  int64  // clock.now() at which it expires; 0 means never
	negative bool   // a remembered ErrNotFound
	meta     *meta  // content type and date; nil when the value has none
}

// cache is one byte-bounded cache on otter's W-TinyLFU policy.
//
// Two measured choices keep a hit cheap (BenchmarkGetHit):
//   - Expiry is ours, not otter's. Every entry records its deadline and get treats a passed
//     deadline as a miss (and drops the entry), so an expired entry is never served. Otter's
//     own expiration puts each read through its timer wheel and made a hit cost about 300 ns
//     instead of 40-60 ns; an expired entry that nobody asks for again holds its bytes, still
//     within the bound, until the policy evicts it as unused.
//   - Otter's maintenance (replaying buffered reads and writes into the policy, evicting) runs
//     only on the goroutine of a write or a removal, never because of a read. Reads are
//     recorded in otter's lossy read buffers and reach the policy at the next write; while the
//     buffers are full, further reads are not recorded, as otter intends. Maintenance run by
//     the reader that fills a buffer cost about 400 ns per hit; run on a new goroutine, it
//     took a second core's time from the readers.
//
// A write or a removal replays everything pending once it is done (CleanUp), so the weighted
// size is within the bound from then on, and the policy has seen the reads since the last
// write before it picks a victim (BenchmarkHitRatio). Otter's own scheduling of maintenance
// (its executor) is never used: it ran a first pass inside Set that the CleanUp after it
// repeated, and a store into a full cache cost about 15% more.
type cache struct {
	c           *otter.Cache[string, entry]
	clock       clock
	maxBytes    atomic.Int64
	evictions   atomic.Int64
	expirations atomic.Int64

	// grace keeps an expired value (not a negative entry) this long past its deadline, for
	// serving stale (stale.go): get still reports it as a miss, but leaves it in place, where
	// it keeps counting against the byte bound, for stale to find. Set once, by New, for the
	// main cache only; zero drops expired entries as soon as get finds them.
	grace int64
}

func newCache(maxBytes int64, clk clock) *cache {
	c := &cache{clock: clk}
	c.maxBytes.Store(max(maxBytes, 1))
	c.c = otter.Must(&otter.Options[string, entry]{
		MaximumWeight: uint64(max(maxBytes, 1)),
		Weigher:       func(key string, e entry) uint32 { return weight(key, e.value) },
		// Otter hands the maintenance it schedules to the executor only. Skipping it leaves
		// otter's drain status "processing", so reads stop asking until a write's or a
		// removal's CleanUp runs it.
		Executor: func(func()) {},
		// Called under otter's bucket lock: it only counts, which is why it is allowed there
		// (OnDeletion would start a goroutine per evicted entry on the default executor).
		OnAtomicDeletion: func(ev otter.DeletionEvent[string, entry]) {
			if ev.Cause == otter.CauseOverflow {
				c.evictions.Add(1)
			}
		},
	})
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
// if it is present and has not expired. An expired entry found here is dropped and counted.
// The entry is written through e, not returned: on the hit path every copy of it shows.
func (c *cache) get(key string, e *entry) (time.Duration, bool) {
	var ok bool
	if *e, ok = c.c.GetIfPresent(key); !ok {
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
	var ok bool
	if *e, ok = c.c.GetIfPresent(key); !ok || e.negative || e.expires == 0 {
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
	c.c.ComputeIfPresent(key, func(old entry) (entry, otter.ComputeOp) {
		if c.kept(&old, now) {
			return old, otter.CancelOp
		}
		c.expirations.Add(1)
		return old, otter.InvalidateOp
	})
}

// add stores e unless it alone is larger than the whole cache, and evicts what the bound
// requires before it returns.
func (c *cache) add(key string, e entry) {
	if int64(weight(key, e.value)) > c.maxBytes.Load() {
		return
	}
	c.c.Set(key, e)
	// Set leaves the write in otter's write buffer. CleanUp takes the policy lock and replays
	// whatever is pending, so the bound holds from here on.
	c.c.CleanUp()
}

func (c *cache) remove(key string) {
	c.c.Invalidate(key)
	c.c.CleanUp()
}

func (c *cache) purge() {
	c.c.InvalidateAll()
	c.c.CleanUp()
}

func (c *cache) setMaxBytes(n int64) {
	c.maxBytes.Store(max(n, 1))
	c.c.SetMaximum(uint64(max(n, 1)))
}

func (c *cache) stats(hits int64) CacheStats {
	return CacheStats{
		Bytes:       int64(c.c.WeightedSize()),
		Items:       int64(c.c.EstimatedSize()),
		Hits:        hits,
		Evictions:   c.evictions.Load(),
		Expirations: c.expirations.Load(),
	}
}
