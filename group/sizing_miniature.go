package group

import (
	"math"

	"github.com/maypok86/otter/v2"
)

// The miniature caches of the sizing estimator (sizing.go): each simulates one cache size on
// the sampled keys, with the group's own eviction policy and entry weights.

// sample is one sampled request.
type sample struct {
	hash      uint64
	weight    uint32
	cacheable bool
}

// miniature simulates one cache size on the keys whose hash is at most its threshold.
type miniature struct {
	ratio     float64
	shift     uint    // the miniature samples a share 2^-shift of the keys
	threshold uint64  // MaxUint64 >> shift: a key is sampled when its hash is at most this
	scale     float64 // 2^shift: the real requests one sampled request stands for
	bound     uint64  // the miniature's bytes: its size's bytes times its rate
	cache     *otter.Cache[uint64, uint32]
	// writing is set while the miniature stores or drops keys: otter's maintenance runs only
	// then, never on a read, as in the group's own cache (cache.go), so that the miniature's
	// policy sees reads the way the real one does.
	writing bool
	misses  int64   // sampled misses
	scaled  float64 // sum of scale over sampled misses: the estimated real misses
}

// rateShift is the k of the largest rate 2^-k that is at most rate. Rates are powers of two
// so that a miniature's entry count sits where the real cache's does between two powers of
// two, which is where otter grows its frequency sketch (and so sets how fast it ages).
func rateShift(rate float64) uint {
	k := uint(0)
	for k < 62 && math.Ldexp(1, -int(k)) > rate {
		k++
	}
	return k
}

// setShift sets the miniature's rate to 2^-shift and its bytes to those of its size at that
// rate for a cache of base bytes; the caller applies the bound to the cache.
func (m *miniature) setShift(shift uint, base int64) {
	m.shift = shift
	m.threshold = math.MaxUint64 >> shift
	m.scale = math.Ldexp(1, int(shift))
	m.bound = max(uint64(m.ratio*float64(base)/m.scale), 1)
}

// newCache returns an empty cache of m's bound, on the group's policy as the group's cache
// (cache.go) configures it.
func (m *miniature) newCache() *otter.Cache[uint64, uint32] {
	return otter.Must(&otter.Options[uint64, uint32]{
		MaximumWeight: m.bound,
		Weigher:       func(_ uint64, w uint32) uint32 { return w },
		Executor: func(maintain func()) {
			if m.writing {
				maintain()
			}
		},
	})
}

// access looks the key up as the group's cache would and stores it on a miss, as the group's
// fill would (unless the request failed, or the entry alone exceeds the bound, which the
// group's cache refuses too). It returns the number of entries after a store, 0 otherwise.
func (m *miniature) access(r sample) int {
	if _, hit := m.cache.GetIfPresent(r.hash); hit {
		return 0
	}
	m.misses++
	m.scaled += m.scale
	if !r.cacheable || uint64(r.weight) > m.bound {
		return 0
	}
	m.writing = true
	m.cache.Set(r.hash, r.weight)
	// As in cache.add: a Set may leave its write in otter's buffer; CleanUp replays it and
	// evicts what the bound requires.
	m.cache.CleanUp()
	m.writing = false
	return m.cache.EstimatedSize()
}

// halve halves m's rate and its bytes, so that it models the same size on half the keys
// (SHARDS' fixed-size variant): the keys above the new threshold leave it. The survivors are
// moved to a new cache, inserted from the coldest to the hottest: otter's frequency sketch
// grows with the entries but never shrinks, and a sketch sized for twice the entries would age
// the frequencies at half the pace of the real cache's. Their frequencies start again.
func (s *sizer) halve(m *miniature) {
	if m.shift >= 62 {
		return
	}
	m.setShift(m.shift+1, s.base)
	survivors := make([]sample, 0, s.maxEntries)
	for e := range m.cache.Coldest() {
		if e.Key <= m.threshold {
			survivors = append(survivors, sample{hash: e.Key, weight: e.Value})
		}
	}
	m.cache = m.newCache()
	m.writing = true
	for _, r := range survivors {
		m.cache.Set(r.hash, r.weight)
	}
	m.cache.CleanUp()
	m.writing = false
}
