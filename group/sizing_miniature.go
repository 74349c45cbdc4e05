package group

import "math"

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
	cache     *store[uint64, struct{}]
	misses    int64   // sampled misses
	scaled    float64 // sum of scale over sampled misses: the estimated real misses
}

// rateShift is the k of the largest rate 2^-k that is at most rate.
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

// newCache returns an empty cache of m's bound, on the group's policy (store.go) in one shard.
// The sampled keys are hashes already: the store uses them as its hashes.
func (m *miniature) newCache() *store[uint64, struct{}] {
	return newStore[uint64, struct{}](int64(m.bound), 1, func(h uint64) uint64 { return h })
}

// access looks the key up as the group's cache would and stores it on a miss, as the group's
// fill would (unless the request failed, or the entry alone exceeds the bound, which the
// group's cache refuses too). It returns the number of entries after a store, 0 otherwise.
func (m *miniature) access(r sample) int {
	var v struct{}
	if m.cache.get(r.hash, &v) {
		return 0
	}
	m.misses++
	m.scaled += m.scale
	if !r.cacheable || uint64(r.weight) > m.bound {
		return 0
	}
	m.cache.set(r.hash, v, r.weight)
	return int(m.cache.items.Load())
}

// halve halves m's rate and its bytes, so that it models the same size on half the keys
// (SHARDS' fixed-size variant): the keys above the new threshold leave it, the others keep
// their place in the policy's queues.
func (s *sizer) halve(m *miniature) {
	if m.shift >= 62 {
		return
	}
	m.setShift(m.shift+1, s.base)
	for _, n := range m.cache.ranked() {
		if n.key > m.threshold {
			m.cache.removeIf(n.key, nil)
		}
	}
	m.cache.setMax(int64(m.bound))
}
