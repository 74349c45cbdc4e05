package httpapi

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
)

// HistoryConfig sets what the node remembers of its recent past for the status page's charts
// (requests, hit ratio and origin loads of each group over the last minutes): one goroutine,
// started by Node.Start and stopped by Node.Stop, samples every group's counters into a ring
// of fixed size. Its memory is fixed when the node is built: about 48 bytes per group per
// sample (5.7 KiB per group at the defaults).
type HistoryConfig struct {
	// Interval is the time between two samples, and so the charts' resolution. Zero: 5s.
	// Negative is invalid.
	Interval time.Duration

	// Samples is how many samples are kept: the charts span Interval × (Samples-1). Zero:
	// 121 (10 minutes at 5s). At least 2, at most 100,000.
	Samples int
}

// Default history: 10 minutes in 5-second steps.
const (
	defaultHistoryInterval = 5 * time.Second
	defaultHistorySamples  = 121
	maxHistorySamples      = 100_000
)

// withDefaults fills the zero fields.
func (c HistoryConfig) withDefaults() HistoryConfig {
	if c.Interval == 0 {
		c.Interval = defaultHistoryInterval
	}
	if c.Samples == 0 {
		c.Samples = defaultHistorySamples
	}
	return c
}

// Validate reports the fields out of range, as *group.FieldErrors; zero fields are valid
// (they mean the defaults).
func (c HistoryConfig) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, group.FieldErrorf("Interval", "must be >= 0s (0s: %v), got %v", defaultHistoryInterval, c.Interval))
	}
	if c.Samples != 0 && (c.Samples < 2 || c.Samples > maxHistorySamples) {
		errs = append(errs, group.FieldErrorf("Samples", "must be 0 (%d) or between 2 and %d, got %d", defaultHistorySamples, maxHistorySamples, c.Samples))
	}
	return errors.Join(errs...)
}

// history is the ring of samples. It is safe for concurrent use: the sampler writes, the
// status page reads.
type history struct {
	interval time.Duration
	groups   []*group.Group // sampled in this order

	mu      sync.Mutex
	samples []historySample // the ring; its counters are allocated once, in newHistory
	next    int             // where the next sample goes
	n       int             // samples held, up to len(samples)
}

// historySample is every group's counters at one moment.
type historySample struct {
	at     time.Time
	groups []groupCounters
}

// groupCounters are the cumulative counters of one group that the charts difference.
type groupCounters struct {
	requests int64 // Gets and peer requests served
	hits     int64 // answered from the main or hot cache
	misses   int64 // missed both caches
	origin   int64 // loader calls on this node, failed ones included
	peer     int64 // values fetched from their owner
	bytes    int64 // main + hot cache bytes now
}

func newHistory(cfg HistoryConfig, groups []*group.Group) *history {
	cfg = cfg.withDefaults()
	h := &history{interval: cfg.Interval, groups: groups, samples: make([]historySample, cfg.Samples)}
	counters := make([]groupCounters, cfg.Samples*len(groups))
	for i := range h.samples {
		h.samples[i].groups = counters[i*len(groups) : (i+1)*len(groups) : (i+1)*len(groups)]
	}
	return h
}

// record takes one sample at now.
func (h *history) record(now time.Time) {
	// Stats are read outside the lock: the status page must not wait for them.
	var buf [16]groupCounters
	counters := buf[:0]
	for _, g := range h.groups {
		st := g.Stats()
		counters = append(counters, groupCounters{
			requests: st.Gets + st.ServerRequests,
			hits:     st.CacheHits,
			misses:   st.Loads,
			origin:   st.LocalLoads + st.LocalLoadErrs,
			peer:     st.PeerLoads,
			bytes:    st.Main.Bytes + st.Hot.Bytes,
		})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.samples[h.next]
	s.at = now
	copy(s.groups, counters)
	h.next = (h.next + 1) % len(h.samples)
	h.n = min(h.n+1, len(h.samples))
}

// groupRates is what the charts of one group draw: one value per interval between two
// consecutive samples, oldest first, each at the later sample's time.
type groupRates struct {
	at       []time.Time
	requests []float64 // per second
	hitRatio []float64 // NaN for an interval without requests
	origin   []float64 // loader calls per second
}

// rates returns each group's rates over the samples held, in the order of h.groups.
func (h *history) rates() []groupRates {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]groupRates, len(h.groups))
	if h.n < 2 {
		return out
	}
	oldest := (h.next - h.n + len(h.samples)) % len(h.samples)
	for gi := range h.groups {
		r := &out[gi]
		for k := 1; k < h.n; k++ {
			prev := &h.samples[(oldest+k-1)%len(h.samples)]
			cur := &h.samples[(oldest+k)%len(h.samples)]
			secs := cur.at.Sub(prev.at).Seconds()
			if secs <= 0 {
				continue
			}
			p, c := prev.groups[gi], cur.groups[gi]
			ratio := math.NaN()
			// A purge or Remove does not lower the counters; a new group would, so
			// negative differences are read as no traffic.
			if hits, misses := c.hits-p.hits, c.misses-p.misses; hits >= 0 && misses >= 0 && hits+misses > 0 {
				ratio = float64(hits) / float64(hits+misses)
			}
			r.at = append(r.at, cur.at)
			r.requests = append(r.requests, max(float64(c.requests-p.requests), 0)/secs)
			r.hitRatio = append(r.hitRatio, ratio)
			r.origin = append(r.origin, max(float64(c.origin-p.origin), 0)/secs)
		}
	}
	return out
}

// window is the time the charts cover: the whole ring, Interval × (Samples-1).
func (h *history) window() time.Duration { return h.interval * time.Duration(len(h.samples)-1) }

// start runs the sampler: a sample now, then one every interval, until the returned stop
// is called; stop waits for the goroutine to end.
func (h *history) start() (stop func()) {
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		h.record(time.Now())
		t := time.NewTicker(h.interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				h.record(now)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}
