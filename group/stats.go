package group

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Stats is a snapshot of a Group's counters. All counters only grow. Fields are read in an
// order that keeps the snapshot's invariants (CacheHits <= Gets+ServerRequests, NegativeHits <=
// CacheHits, LocalLoads+LocalLoadErrs <= LoadsDeduped) even while Gets run, so the snapshot can
// be exported as a whole.
type Stats struct {
	Gets           int64 // Get calls and GetMany keys (peer requests count in ServerRequests, not here)
	CacheHits      int64 // Gets and peer requests answered from the main or hot cache
	NegativeHits   int64 // cache hits on a remembered ErrNotFound (included in CacheHits)
	Loads          int64 // Gets and peer requests that missed both caches
	LoadsDeduped   int64 // fills started after singleflight folded concurrent misses: fetches from owners and local loads
	LocalLoads     int64 // loader calls that returned a value or ErrNotFound
	LocalLoadErrs  int64 // loader calls that failed, timed out or panicked
	LoaderPanics   int64 // loader calls that panicked (included in LocalLoadErrs)
	PeerLoads      int64 // values (or ErrNotFound) fetched from the key's owner
	PeerErrors     int64 // fetches from the owner that failed, whatever the reason
	FallbackLoads  int64 // local loads made because the owner could not be reached
	ServerRequests int64 // requests that arrived from peers (GetLocal)

	RememberedErrors      int64 // fills answered with a remembered failure, without a load (ErrorTTL)
	FailureLogsSuppressed int64 // "load failed" log lines held back by the rate limit
	StaleRevalidating     int64 // Gets answered with an expired value while it is reloaded (StaleWhileRevalidate)
	StaleOnError          int64 // Gets answered with an expired value because the load failed (StaleIfError)
	StaleRefreshes        int64 // background loads started to revalidate an expired value

	Admission AdmissionStats // loads in progress, queued and refused (MaxConcurrentLoads)

	Main CacheStats // keys this node owns (or loaded as a fallback)
	Hot  CacheStats // copies of popular keys owned by other nodes

	LoadDuration Histogram // duration of loader calls on this node
}

// CacheStats describes one of a Group's two caches.
type CacheStats struct {
	Bytes       int64 // weighted size: keys + values + EntryOverhead per entry
	Items       int64 // entries, negative ones and expired ones not yet dropped included
	Hits        int64
	Evictions   int64 // entries dropped to stay within the byte bound, expired ones included
	Expirations int64 // expired entries found by a Get, and dropped there
}

// Histogram is a fixed-bucket histogram of durations in seconds, shaped for Prometheus.
type Histogram struct {
	Bounds []float64 // upper bounds of the buckets, in seconds, ascending
	Counts []uint64  // observations per bucket (not cumulative); the last one is +Inf
	Count  uint64
	Sum    float64 // seconds
}

// loadBounds are the load-duration buckets: from a local file (sub-millisecond) to a slow
// origin at the default timeout.
var loadBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

type histogram struct {
	counts [len(loadBounds) + 1]atomic.Uint64
	count  atomic.Uint64
	sumNs  atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(loadBounds) && s > loadBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
	h.count.Add(1)
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: append([]float64(nil), loadBounds[:]...), Counts: make([]uint64, len(h.counts))}
	out.Count = h.count.Load()
	out.Sum = time.Duration(h.sumNs.Load()).Seconds()
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	return out
}

// counterStripes spreads the hot-path counters over several cache lines so that Gets on
// different cores do not fight over one line: 32 stripes of 128 bytes, 4 KiB per group.
const (
	stripeBits     = 5
	counterStripes = 1 << stripeBits
)

// miss indexes a stripe's counters of lookups that found nothing; SourceMain and SourceHot
// index the hits.
const miss = 2

// stripe holds the counters bumped on every Get, one per outcome, so that a hit costs one
// atomic add: Gets, hits and loads are sums of them. Padded to its own 128-byte block.
type stripe struct {
	get          [3]atomic.Int64 // Get: main hits, hot hits, misses
	local        [3]atomic.Int64 // GetLocal (requests from peers): the same
	negativeHits atomic.Int64
	_            [128 - 7*8]byte
}

type counters struct {
	stripes [counterStripes]stripe

	loadsDeduped, localLoads, localLoadErrs, loaderPanics atomic.Int64
	peerLoads, peerErrors, fallbackLoads                  atomic.Int64
	staleRevalidating, staleOnError, staleRefreshes       atomic.Int64

	loadDuration histogram
}

// stripe picks the calling goroutine's stripe from a hash of its stack address, which stays
// the same for a goroutine calling Get from the same place (otter, whose cache this package used
// before, picks its read buffers the same way), so a goroutine keeps writing the same cache line. A stripe picked at random on every call had
// each core write every stripe's line in turn: at 2 CPUs a counter add went from 11 to 19 ns
// instead of staying put.
func (c *counters) stripe() *stripe {
	var onStack byte
	// The low 11 bits depend on the call depth rather than the goroutine (stacks are at least
	// 2 KiB); the multiplication mixes the upper bits, where neighbouring stacks differ.
	h := uint64(uintptr(unsafe.Pointer(&onStack))>>11) * 0x9e3779b97f4a7c15
	return &c.stripes[h>>(64-stripeBits)]
}

// requests is the number of Get and GetLocal calls that reached a cache lookup: the sum of
// every stripe's outcomes. The sizer divides by it.
func (c *counters) requests() int64 {
	var n int64
	for i := range c.stripes {
		s := &c.stripes[i]
		for j := range s.get {
			n += s.get[j].Load() + s.local[j].Load()
		}
	}
	return n
}

// Stats returns a snapshot of the group's counters.
func (g *Group) Stats() Stats {
	c := &g.stats
	// Outcomes before attempts: a Get that lands between two reads is then counted in the
	// attempt but not yet in its outcome, never the other way round.
	var st Stats
	st.RememberedErrors = g.failures.recalled.Load()
	st.FailureLogsSuppressed = g.failures.suppressed.Load()
	st.StaleRevalidating = c.staleRevalidating.Load()
	st.StaleOnError = c.staleOnError.Load()
	st.StaleRefreshes = c.staleRefreshes.Load()
	st.Admission = g.admit.stats()
	st.FallbackLoads = c.fallbackLoads.Load()
	st.PeerErrors = c.peerErrors.Load()
	st.PeerLoads = c.peerLoads.Load()
	st.LoaderPanics = c.loaderPanics.Load()
	st.LocalLoadErrs = c.localLoadErrs.Load()
	st.LocalLoads = c.localLoads.Load()
	st.LoadsDeduped = c.loadsDeduped.Load()
	// NegativeHits before the hits that include them; Gets, Loads, CacheHits and
	// ServerRequests are sums of the same reads, so they agree with each other.
	for i := range c.stripes {
		st.NegativeHits += c.stripes[i].negativeHits.Load()
	}
	var get, local [3]int64
	for i := range c.stripes {
		s := &c.stripes[i]
		for j := range get {
			get[j] += s.get[j].Load()
			local[j] += s.local[j].Load()
		}
	}
	mainHits := get[SourceMain] + local[SourceMain]
	hotHits := get[SourceHot] + local[SourceHot]
	st.Gets = get[SourceMain] + get[SourceHot] + get[miss]
	st.ServerRequests = local[SourceMain] + local[SourceHot] + local[miss]
	st.CacheHits = mainHits + hotHits
	st.Loads = get[miss] + local[miss]
	st.Main = g.main.stats(mainHits)
	st.Hot = g.hot.stats(hotHits)
	st.LoadDuration = c.loadDuration.snapshot()
	return st
}
