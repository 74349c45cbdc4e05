package group

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Sizing answers "what would the hit ratio be if the cache were half as big, or twice?" from
// live traffic, for the group's own eviction policy. It runs miniature simulations (Waldspurger
// et al., "Cache Modeling and Optimization using Miniature Simulations", ATC'17) on a spatially
// hashed sample of the keys (SHARDS, Waldspurger et al., FAST'15): a request is simulated when a
// hash of its key falls under a threshold, that is for a fixed share R of the keys and every
// request to them; a cache of S bytes is then modelled by an S3-FIFO store (store.go) of R×S
// bytes, as the group's cache uses it, that sees only those requests and weighs entries as the
// group does (key + value + EntryOverhead). One miniature runs per simulated size.
//
// Each miniature samples at its own rate, a power of two. The first 512 sampled requests
// (taken at MaxRate) give the mean weight of an entry; each size then gets the highest rate,
// at most MaxRate, at which its miniature holds at most MaxEntries entries, and the 512 are
// replayed into the miniatures. Large sizes get low rates and small ones keep the high rates
// that their precision needs. Should the weights shrink later, a miniature that outgrows
// MaxEntries halves its rate (keeping the keys that the lower rate still samples), so memory
// is bounded whatever the traffic.
//
// A miss counted at rate R stands for 1/R misses; the estimated hit ratio at a size is one
// minus those scaled misses over every request offered. Dividing by the true request count
// rather than by the scaled sampled requests is SHARDS' adjustment: a very popular key that
// happens to be sampled (or not) moves the sampled request count far from R times the real
// one, and such a key hits at every size, so only the misses are scaled.
//
// Precision depends on how many entries the miniatures hold, R times the entries of each
// size: at the default MaxRate of 1/128, a cache of 100,000 entries at 1x is modelled at ½x by
// about 400 entries, and the estimate is then within about 0.02 of the real hit ratio
// (BENCHMARKS.md); smaller caches need a higher MaxRate for that precision.
//
// The estimate covers everything since the estimator was made (warm-up misses included); the
// counts only grow, so a monitoring system can take the hit ratio over any window from
// differences of Requests and Misses. It ignores TTLs (an entry that expires in the real
// cache stays in the miniature) and removals.

// SizingConfig tunes a group's sizing estimator.
type SizingConfig struct {
	// Ratios are the cache sizes simulated, as multiples of the group's configured bytes,
	// e.g. 0.5 for half. Each costs one miniature cache. Nil: ¼, ½, 1, 2 and 4. At most 16,
	// each in (0, 64].
	Ratios []float64

	// MaxEntries bounds the entries of each miniature cache, and so the estimator's memory:
	// a miniature keeps a 64-bit hash and a weight per entry, never the key, and costs at most
	// 128 bytes per entry whatever the keys' and values' lengths (84 measured), so the
	// defaults stay under 1.25 MiB. More entries make small sizes more precise, where
	// MaxRate allows them. Zero: 2048. At least 64.
	MaxEntries int

	// MaxRate is the largest share of keys sampled, and so of the Gets that pay for a
	// simulation (a lookup in each miniature, and a store where it misses) rather than only
	// a hash and a compare. A higher rate gives small caches more precision and costs the
	// Get path more. Rounded down to a power of two. Zero: 1/128. In (0, 1].
	MaxRate float64
}

// DefaultSizingConfig returns the ratios ¼x to 4x, 2048 entries per miniature, and a
// sampling rate of at most 1/128.
func DefaultSizingConfig() SizingConfig {
	return SizingConfig{
		Ratios:     []float64{0.25, 0.5, 1, 2, 4},
		MaxEntries: 2048,
		MaxRate:    1.0 / 128,
	}
}

// withDefaults fills the zero fields with DefaultSizingConfig's values.
func (c SizingConfig) withDefaults() SizingConfig {
	d := DefaultSizingConfig()
	if c.Ratios == nil {
		c.Ratios = d.Ratios
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = d.MaxEntries
	}
	if c.MaxRate == 0 {
		c.MaxRate = d.MaxRate
	}
	return c
}

// Validate reports the fields that are out of range; zero fields are valid (they mean the
// defaults).
func (c SizingConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Ratios) == 0 || len(c.Ratios) > 16 {
		errs = append(errs, fmt.Errorf("want 1 to 16 Ratios, got %d", len(c.Ratios)))
	}
	for _, r := range c.Ratios {
		if !(r > 0 && r <= 64) {
			errs = append(errs, fmt.Errorf("ratio %v is not in (0, 64]", r))
		}
	}
	if c.MaxEntries < 64 {
		errs = append(errs, fmt.Errorf("MaxEntries must be >= 64, got %d", c.MaxEntries))
	}
	if !(c.MaxRate > 0 && c.MaxRate <= 1) {
		errs = append(errs, fmt.Errorf("MaxRate must be in (0, 1], got %v", c.MaxRate))
	}
	return errors.Join(errs...)
}

// SizingEstimate is what a sizing estimator has learnt since it was made.
type SizingEstimate struct {
	// Requests is the number of requests offered to the estimator: the denominator of every
	// size's hit ratio.
	Requests int64
	// Sampled is the number of requests that were simulated (their key was sampled by at
	// least one size). With fewer than a few thousand the estimates are rough.
	Sampled int64
	// Dropped is the number of sampled requests not simulated because another request held
	// the simulation; the estimates are corrected for them, as long as they are few.
	Dropped int64
	// Warming is true until the first sampled requests (512) have chosen the sampling rates:
	// until then the sizes carry no estimate (HitRatio, Misses and Entries are 0).
	Warming bool
	// Sizes has one estimate per simulated size, in the order of SizingConfig.Ratios.
	Sizes []SizeEstimate
}

// SizeEstimate is the estimated hit ratio of one cache size.
type SizeEstimate struct {
	Ratio    float64 // the size as a multiple of the configured bytes
	Bytes    int64   // the size simulated
	HitRatio float64 // estimated share of Requests that would have been hits, in [0, 1]
	Misses   float64 // estimated misses among Requests (sampled misses scaled by their rate)
	Rate     float64 // share of keys this size samples now
	Entries  int     // entries in its miniature cache now
}

// DefaultSizingSeed picks which keys a sizer samples. Every node samples the same keys, so
// their estimates are comparable.
const DefaultSizingSeed uint64 = 0x9e3779b97f4a7c15

// sizer is a group's sizing estimator. observe is its one hook on the Get path; estimate
// reads it. A nil *sizer is valid and does nothing, so a group without sizing pays one
// comparison. It is safe for concurrent use and runs no goroutine.
type sizer struct {
	// limit is the highest threshold of any miniature: observe rejects a key whose hash is
	// above it with one load and one compare. Written under mu, read without it.
	limit atomic.Uint64
	// seed picks which keys are sampled (see sampleHash).
	seed uint64
	// requests counts the calls of observe; the estimator reads it only in estimate. The
	// group already counts every Get and GetLocal on its striped counters, so the hot path
	// pays for no counter of its own.
	requests func() int64
	// dropped counts sampled requests that found mu held and were not simulated.
	dropped atomic.Int64

	// mu serialises the simulation: observe takes it with TryLock, so a Get never waits.
	mu         sync.Mutex
	sampled    int64 // requests simulated (or kept in warmup), under mu
	maxEntries int
	maxShift   uint  // log2(1/MaxRate), rounded up
	base       int64 // the configured bytes that Ratios multiply
	minis      []miniature
	// warmup holds the first sampled requests, taken at MaxRate, until there are enough of
	// them to choose each miniature's rate from the entries' weights; they are then replayed
	// into the miniatures. Nil afterwards.
	warmup []sample
}

// warmupSamples is how many sampled requests choose the rates: 8 KiB while they wait.
const warmupSamples = 512

// newSizer returns an estimator for a cache of baseBytes. requests must return the number of
// calls of observe so far (for a group: the sum of its Get and GetLocal counters); estimate
// calls it under the estimator's lock, so it must not call back into the sizer.
func newSizer(cfg SizingConfig, baseBytes int64, requests func() int64) (*sizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sizing: %w", err)
	}
	if baseBytes <= 0 {
		return nil, fmt.Errorf("sizing: cache size must be > 0, got %d", baseBytes)
	}
	if requests == nil {
		return nil, errors.New("sizing: nil request count")
	}
	cfg = cfg.withDefaults()
	s := &sizer{
		seed:       DefaultSizingSeed,
		requests:   requests,
		maxEntries: cfg.MaxEntries,
		maxShift:   rateShift(cfg.MaxRate),
		base:       baseBytes,
		minis:      make([]miniature, len(cfg.Ratios)),
		warmup:     make([]sample, 0, warmupSamples),
	}
	for i, r := range cfg.Ratios {
		m := &s.minis[i]
		m.ratio = r
		m.setShift(s.maxShift, baseBytes)
	}
	s.limit.Store(math.MaxUint64 >> s.maxShift)
	return s, nil
}

// sampleHash is the key's position in the sample: xxhash with the seed mixed in, its halves
// swapped. The ring assigns a key's owner by the top bits of the plain xxhash; a threshold on
// them would sample the keys of one owner. Swapped, the comparison is decided by the low
// bits, which xxhash mixes as well and nothing else reads (a finaliser such as murmur3's would
// do too, for 1-2 ns more on every Get). A sample at rate 2^-k is then the keys whose xxhash
// has bits 31 to 32-k equal to the seed's: the seed chooses among 2^k disjoint samples.
func sampleHash(key string, seed uint64) uint64 {
	return sampleMix(xxhash.Sum64String(key), seed)
}

// sampleMix is sampleHash from the key's xxhash. The Get path calls the two halves itself, so
// that both inline: one call (to xxhash) when a key is not sampled.
func sampleMix(h, seed uint64) uint64 { return bits.RotateLeft64(h^seed, 32) }

// observe is the hook on the Get path: key was requested, and its value is valueLen bytes long
// (0 for a remembered ErrNotFound; negative when the request failed and nothing was cached).
// Call it once per Get or GetLocal, once the outcome is known. For most keys it costs a hash
// and a compare; a sampled key is simulated at once unless another request is being
// simulated, in which case it is dropped and counted. It never blocks, and allocates only
// when the simulation stores a key. On a nil sizer it is an inlined nil check.
func (s *sizer) observe(key string, valueLen int) {
	if s != nil {
		s.offer(key, valueLen)
	}
}

// offer is observe's body, out of line so that observe inlines.
func (s *sizer) offer(key string, valueLen int) {
	if h := sampleMix(xxhash.Sum64String(key), s.seed); h <= s.limit.Load() {
		s.simulate(sample{hash: h, weight: weightOf(len(key), max(valueLen, 0)), cacheable: valueLen >= 0})
	}
}

// weightOf is weight (cache.go) from lengths: what an entry costs against the byte bound.
func weightOf(keyLen, valueLen int) uint32 {
	w := uint64(keyLen) + uint64(valueLen) + EntryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// simulate runs one sampled request through every miniature that samples its key.
func (s *sizer) simulate(r sample) {
	if !s.mu.TryLock() {
		s.dropped.Add(1)
		return
	}
	defer s.mu.Unlock()
	s.sampled++
	if s.warmup != nil {
		s.warmup = append(s.warmup, r)
		if len(s.warmup) == warmupSamples {
			s.start()
		}
		return
	}
	s.run(r)
}

// run passes r to the miniatures that sample it, halving the rate of any that outgrows
// maxEntries.
func (s *sizer) run(r sample) {
	halved := false
	for i := range s.minis {
		m := &s.minis[i]
		if r.hash <= m.threshold && m.access(r) > s.maxEntries {
			s.halve(m)
			halved = true
		}
	}
	if halved {
		s.updateLimit()
	}
}

func (s *sizer) updateLimit() {
	var limit uint64
	for i := range s.minis {
		limit = max(limit, s.minis[i].threshold)
	}
	s.limit.Store(limit)
}

// start ends the warm-up: it gives each miniature the highest rate (at most MaxRate) at which
// it should hold no more than maxEntries entries of the mean weight seen so far, builds the
// miniatures and replays the warm-up's requests into them. If the weights change later, a
// miniature that outgrows maxEntries halves its rate.
func (s *sizer) start() {
	// The mean weight of the distinct keys, which is what fills a cache.
	sorted := append([]sample(nil), s.warmup...)
	slices.SortFunc(sorted, func(a, b sample) int { return cmp.Compare(a.hash, b.hash) })
	var sum, n float64
	for i, r := range sorted {
		if r.cacheable && (i == 0 || r.hash != sorted[i-1].hash) {
			sum += float64(r.weight)
			n++
		}
	}
	mean := float64(EntryOverhead)
	if n > 0 {
		mean = sum / n
	}
	for i := range s.minis {
		m := &s.minis[i]
		shift := s.maxShift
		for shift < 62 && m.ratio*float64(s.base)/math.Ldexp(mean, int(shift)) > float64(s.maxEntries) {
			shift++
		}
		m.setShift(shift, s.base)
		m.cache = m.newCache()
	}
	s.updateLimit()
	warmup := s.warmup
	s.warmup = nil
	for _, r := range warmup {
		s.run(r)
	}
}

// resize changes the configured bytes that the ratios multiply, for a group whose cache bound
// moves (the main cache shrinks by the hot cache's share when the group joins a cluster). The
// counts so far are kept.
func (s *sizer) resize(baseBytes int64) {
	if s == nil || baseBytes <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = baseBytes
	for i := range s.minis {
		m := &s.minis[i]
		m.setShift(m.shift, baseBytes)
		if m.cache == nil {
			continue
		}
		m.cache.setMax(int64(m.bound))
	}
}

// estimate returns the hit ratio estimated for each size over the requests seen so far. It
// waits for a simulation under way, not for Gets.
func (s *sizer) estimate() SizingEstimate {
	if s == nil {
		return SizingEstimate{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped := s.dropped.Load()
	est := SizingEstimate{
		Requests: s.requests(),
		Sampled:  s.sampled,
		Dropped:  dropped,
		Warming:  s.warmup != nil,
		Sizes:    make([]SizeEstimate, len(s.minis)),
	}
	// A dropped request is missing from the miniatures that would have sampled it, at random
	// as far as its key goes: scale the misses by the share of sampled requests simulated.
	correction := 1.0
	if s.sampled > 0 {
		correction = float64(s.sampled+dropped) / float64(s.sampled)
	}
	for i := range s.minis {
		m := &s.minis[i]
		z := SizeEstimate{
			Ratio: m.ratio,
			Bytes: int64(m.ratio * float64(s.base)),
			Rate:  1 / m.scale,
		}
		if !est.Warming {
			z.Misses = m.scaled * correction
			if est.Requests > 0 {
				z.HitRatio = min(max(1-z.Misses/float64(est.Requests), 0), 1)
			}
			z.Entries = int(m.cache.items.Load())
		}
		est.Sizes[i] = z
	}
	return est
}

// Sizing returns what the group's sizing estimator has learnt (Config.Sizing): the hit ratio
// estimated at each simulated size over the requests since the group was made. ok is false
// when the group does not estimate sizing.
func (g *Group) Sizing() (est SizingEstimate, ok bool) {
	if g.sizer == nil {
		return SizingEstimate{}, false
	}
	return g.sizer.estimate(), true
}

// observedLen is what a miss tells the sizer once its fill is over (see observe): the value's
// length, 0 for ErrNotFound (remembered like a value), -1 for a failure (nothing cached).
func observedLen(res Result, err error) int {
	switch {
	case err == nil:
		return len(res.Bytes)
	case errors.Is(err, ErrNotFound):
		return 0
	}
	return -1
}
