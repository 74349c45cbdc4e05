package group

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// EntryOverhead is the bookkeeping cost of one cached entry beyond its key and value bytes:
// the policy's node (list links, frequency, expiry and weight fields), the hash-table slot,
// the key's string header and the value's slice header. It is charged to the byte bound so
// that the heap tracks CacheBytes (golang/groupcache counts key and value only, and a cache
// of small values then grows far past its bound). Measured by BenchmarkEntryOverhead.
const EntryOverhead = 192

// entry is what the caches hold. It is stored by value: a hit copies it out without
// allocating.
type entry struct {
	value    []byte
	hash     uint64 // xxhash64 of value, computed once when the entry is made
	expires  int64  // unix nanoseconds; 0 means never
	negative bool   // a remembered ErrNotFound
}

// remaining returns the entry's remaining lifetime at now (0: never expires) and whether it
// may still be served.
func (e *entry) remaining(now int64) (time.Duration, bool) {
	if e.expires == 0 {
		return 0, true
	}
	left := e.expires - now
	return time.Duration(left), left > 0
}

// cache is one byte-bounded, TTL-aware cache on otter's W-TinyLFU policy. Otter is built with
// a synchronous executor so that eviction runs inside the write that needs it: the weighted
// size is back under the bound when add returns.
type cache struct {
	c           *otter.Cache[string, entry]
	maxBytes    atomic.Int64
	evictions   atomic.Int64
	expirations atomic.Int64
}

func newCache(maxBytes int64) *cache {
	c := &cache{}
	c.maxBytes.Store(max(maxBytes, 1))
	c.c = otter.Must(&otter.Options[string, entry]{
		MaximumWeight:    uint64(max(maxBytes, 1)),
		Weigher:          func(key string, e entry) uint32 { return weight(key, e.value) },
		ExpiryCalculator: otter.ExpiryWritingFunc(expiresAfter),
		OnDeletion: func(ev otter.DeletionEvent[string, entry]) {
			switch ev.Cause {
			case otter.CauseOverflow:
				c.evictions.Add(1)
			case otter.CauseExpiration:
				c.expirations.Add(1)
			}
		},
		Executor: func(fn func()) { fn() },
	})
	return c
}

// expiresAfter tells otter how long an entry it is writing may live. math.MaxInt64 is otter's
// "never" (it saturates the deadline instead of overflowing). A deadline that has already
// passed (a peer's value that arrived with a few nanoseconds left) must become the shortest
// positive lifetime: otter reads a duration <= 0 as "keep the current deadline", which for a new
// entry is never, and the dead entry would then hold its bytes until evicted.
func expiresAfter(en otter.Entry[string, entry]) time.Duration {
	if en.Value.expires == 0 {
		return math.MaxInt64
	}
	return max(time.Duration(en.Value.expires-en.SnapshotAtNano), 1)
}

// weight is what one entry costs against the byte bound. Entries too large to express are
// given the largest weight, which no cache of a realistic size can hold, so they are dropped.
func weight(key string, value []byte) uint32 {
	w := uint64(len(key)) + uint64(len(value)) + EntryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// get returns the entry for key if it is present and unexpired at now.
func (c *cache) get(key string) (entry, bool) {
	return c.c.GetIfPresent(key)
}

// add stores e unless it alone is larger than the whole cache.
func (c *cache) add(key string, e entry) {
	if int64(weight(key, e.value)) > c.maxBytes.Load() {
		return
	}
	c.c.Set(key, e)
}

func (c *cache) remove(key string) { c.c.Invalidate(key) }
func (c *cache) purge()            { c.c.InvalidateAll() }

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
