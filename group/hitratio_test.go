package group

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/golang/groupcache/lru"
)

// The hit-ratio benchmarks replay one deterministic trace of keys through our cache (the
// S3-FIFO store behind the group's own cache type) and through golang/groupcache's LRU, bounded by
// bytes the way golang/groupcache bounds it: evict the oldest entry while the bytes exceed the
// budget. Both charge an entry the same weight (key + value + EntryOverhead), so that with the
// same budget they hold the same number of entries and only the policy differs.

const (
	ratioKeys      = 1_000_000
	ratioValueSize = 100
	ratioRequests  = 2_000_000
)

// zipf draws ranks in [0, n) with P(rank k) proportional to 1/(k+1)^s, for any s > 0
// (math/rand's Zipf needs s > 1), by inverting the cumulative distribution with a binary search.
type zipf struct {
	cdf []float64
	rng *rand.Rand
}

func newZipf(n int, s float64, seed uint64) *zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range cdf {
		sum += 1 / math.Pow(float64(k+1), s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &zipf{cdf: cdf, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (z *zipf) next() int {
	u := z.rng.Float64()
	return sort.SearchFloat64s(z.cdf, u)
}

// ratioTrace is a sequence of keys. Zipf ranks are mapped to keys through a fixed random
// permutation, so that popularity has nothing to do with key order.
func zipfTrace(keys []string, s float64, requests int, seed uint64) []string {
	z := newZipf(len(keys), s, seed)
	perm := rand.New(rand.NewPCG(seed, 1)).Perm(len(keys))
	trace := make([]string, requests)
	for i := range trace {
		trace[i] = keys[perm[z.next()]]
	}
	return trace
}

// scanTrace is a Zipf trace into which, after every `every` requests, a scan of scanLen keys
// is inserted that are read once and never again (a batch job, a crawler, a cache warm-up).
func scanTrace(keys []string, s float64, requests, every, scanLen int, seed uint64) []string {
	zipfPart := zipfTrace(keys, s, requests, seed)
	trace := make([]string, 0, requests+requests/every*scanLen)
	scanned := 0
	for i, k := range zipfPart {
		if i > 0 && i%every == 0 {
			for range scanLen {
				trace = append(trace, fmt.Sprintf("scan-%08d", scanned))
				scanned++
			}
		}
		trace = append(trace, k)
	}
	return trace
}

// byteLRU is golang/groupcache's cache: lru.Cache with a byte count, evicting the oldest
// entry while the count exceeds the budget.
type byteLRU struct {
	lru          *lru.Cache
	bytes, limit int64
}

func newByteLRU(limit int64) *byteLRU {
	c := &byteLRU{lru: lru.New(0), limit: limit}
	c.lru.OnEvicted = func(key lru.Key, value any) {
		c.bytes -= int64(weight(key.(string), value.([]byte)))
	}
	return c
}

func (c *byteLRU) get(key string) bool {
	_, ok := c.lru.Get(key)
	return ok
}

func (c *byteLRU) add(key string, value []byte) {
	c.lru.Add(key, value)
	c.bytes += int64(weight(key, value))
	for c.bytes > c.limit {
		c.lru.RemoveOldest()
	}
}

// replay runs trace through a read-through cache and returns the hit ratio in percent over
// all requests and over the requests that are not part of a scan.
func replay(trace []string, value []byte, get func(string) bool, add func(string, []byte)) (all, zipfOnly float64) {
	hits, zipfHits, zipfRequests := 0, 0, 0
	for _, k := range trace {
		scan := strings.HasPrefix(k, "scan-")
		if !scan {
			zipfRequests++
		}
		if get(k) {
			hits++
			if !scan {
				zipfHits++
			}
			continue
		}
		add(k, value)
	}
	return 100 * float64(hits) / float64(len(trace)), 100 * float64(zipfHits) / float64(zipfRequests)
}

func reportRatio(b *testing.B, all, zipfOnly float64, scans bool) {
	b.ReportMetric(all, "hit%")
	if scans {
		b.ReportMetric(zipfOnly, "zipf-hit%")
	}
}

// BenchmarkHitRatio reports hit% for our policy and golang/groupcache's LRU on the same
// traces and byte budgets. The figure is the metric; ns/op is the time of one whole replay.
// Run it with -benchtime 1x: every replay of a trace gives the same ratio.
func BenchmarkHitRatio(b *testing.B) {
	keys := make([]string, ratioKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%07d", i)
	}
	value := make([]byte, ratioValueSize)
	perEntry := int64(weight(keys[0], value))

	cases := []struct {
		name     string
		capacity int // entries the budget holds
		trace    func() []string
	}{
		{"zipf=0.9/cache=1%", ratioKeys / 100, func() []string { return zipfTrace(keys, 0.9, ratioRequests, 1) }},
		{"zipf=0.9/cache=10%", ratioKeys / 10, func() []string { return zipfTrace(keys, 0.9, ratioRequests, 2) }},
		{"zipf=1.1/cache=1%", ratioKeys / 100, func() []string { return zipfTrace(keys, 1.1, ratioRequests, 3) }},
		{"zipf=1.1/cache=10%", ratioKeys / 10, func() []string { return zipfTrace(keys, 1.1, ratioRequests, 4) }},
		// Every 200,000 Zipf requests, a one-time scan of 1.5 times as many keys as the cache
		// holds: enough to flush an LRU.
		{"zipf=0.9+scans/cache=1%", ratioKeys / 100, func() []string {
			return scanTrace(keys, 0.9, ratioRequests, 200_000, 3*ratioKeys/200, 5)
		}},
		{"zipf=0.9+scans/cache=10%", ratioKeys / 10, func() []string {
			return scanTrace(keys, 0.9, ratioRequests, 200_000, 3*ratioKeys/20, 6)
		}},
	}
	for _, tc := range cases {
		trace := tc.trace()
		budget := int64(tc.capacity) * perEntry
		scans := strings.Contains(tc.name, "scans")
		b.Run(tc.name+"/groupcached", func(b *testing.B) {
			var all, zipfOnly float64
			for b.Loop() {
				c := newCache(budget, newClock())
				all, zipfOnly = replay(trace, value,
					func(k string) bool { var e entry; _, ok := c.get(k, &e); return ok },
					func(k string, v []byte) { c.add(k, entry{value: v}) })
			}
			reportRatio(b, all, zipfOnly, scans)
		})
		b.Run(tc.name+"/golang-groupcache-lru", func(b *testing.B) {
			var all, zipfOnly float64
			for b.Loop() {
				c := newByteLRU(budget)
				all, zipfOnly = replay(trace, value, c.get, c.add)
			}
			reportRatio(b, all, zipfOnly, scans)
		})
	}
}
