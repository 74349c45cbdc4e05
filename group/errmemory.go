package group

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Failure memory: a load that failed (not one that panicked) is remembered for Config.ErrorTTL, doubled for each
// consecutive failure up to Config.MaxErrorTTL, so that a key whose origin is failing costs
// the origin about one call per ErrorTTL instead of one per request. The memory is consulted
// where a local fill starts (Group.cached): concurrent requests share the failing fill
// anyway, and the following ones get the remembered error until it ends. Only the node that
// loads a key remembers: a node that fetched the key from its owner gets the owner's
// remembered error over the wire, and does not load the key itself after it.
//
// The failures are also logged here, at most a few lines a second per group (a token
// bucket), each with the number of lines held back since the last one.

// ErrValueTooLarge means the loader returned a value larger than the group's main cache
// (CacheBytes, less the hot cache's share in a cluster): it cannot be cached, so it is not
// served either; serving it would make every request load it again. It is remembered like
// any failure (ErrorTTL).
var ErrValueTooLarge = errors.New("value larger than the group's cache")

// maxRememberedKeys bounds the failure memory of one group. Past it, records whose streak
// has been forgotten are swept, then any one is dropped.
const maxRememberedKeys = 4096

// Log rate: a burst of failureLogBurst lines, then one per failureLogEvery.
const (
	failureLogBurst = 5
	failureLogEvery = time.Second
)

// failureMemory is one group's memory of failed loads. Its zero value remembers nothing (and
// still rate-limits the log).
type failureMemory struct {
	ttl, maxTTL time.Duration // Config.ErrorTTL; Config.MaxErrorTTL (>= ttl)
	clock       clock

	// n is len(m), so that a fill with nothing remembered takes no lock.
	n  atomic.Int64
	mu sync.Mutex
	m  map[string]*failure

	// The log's token bucket, under mu: tokens left at logAt (clock time).
	logTokens  float64
	logAt      int64
	held       int64        // lines held back since the last one logged
	suppressed atomic.Int64 // lines held back since start
	recalled   atomic.Int64 // fills answered with a remembered failure
}

// failure is one key's memory.
type failure struct {
	err    error
	until  int64 // clock time the memory ends
	forget int64 // clock time after which the streak starts again
	streak int   // consecutive failures
}

func newFailureMemory(cfg Config, clk clock) *failureMemory {
	f := &failureMemory{ttl: cfg.ErrorTTL, maxTTL: max(cfg.MaxErrorTTL, cfg.ErrorTTL), clock: clk}
	f.logTokens = failureLogBurst
	return f
}

// rememberedError is a failure answered from memory. It unwraps to the failure, so that it
// maps to the same status as the original.
type rememberedError struct {
	err     error
	retryIn time.Duration
}

func (e *rememberedError) Error() string {
	return fmt.Sprintf("%v (remembered failure; the origin is asked again in %v)", e.err, e.retryIn.Round(time.Millisecond))
}

func (e *rememberedError) Unwrap() error { return e.err }

// recall returns the remembered failure of key, if its memory has not ended.
func (f *failureMemory) recall(key string) (error, bool) {
	if f.n.Load() == 0 {
		return nil, false
	}
	now := f.clock.now()
	f.mu.Lock()
	r := f.m[key]
	if r == nil || now >= r.until {
		f.mu.Unlock()
		return nil, false
	}
	err := &rememberedError{err: r.err, retryIn: time.Duration(r.until - now)}
	f.mu.Unlock()
	f.recalled.Add(1)
	return err, true
}

// remember records a failure of key and returns how long it is remembered and how many
// consecutive failures the key has had. With ErrorTTL zero it records nothing.
func (f *failureMemory) remember(key string, err error) (ttl time.Duration, streak int) {
	if f.ttl <= 0 {
		return 0, 1
	}
	now := f.clock.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.m[key]
	if r == nil || now >= r.forget {
		if f.m == nil {
			f.m = make(map[string]*failure)
		}
		if r == nil && len(f.m) >= maxRememberedKeys {
			f.makeRoom(now)
		}
		r = &failure{}
		f.m[key] = r
		f.n.Store(int64(len(f.m)))
	}
	r.streak++
	ttl = backoff(f.ttl, f.maxTTL, r.streak)
	r.err, r.until, r.forget = err, now+int64(ttl), now+int64(ttl)+int64(f.maxTTL)
	return ttl, r.streak
}

// backoff is the memory of the streak-th consecutive failure: ttl doubled streak-1 times,
// capped at maxTTL.
func backoff(ttl, maxTTL time.Duration, streak int) time.Duration {
	for i := 1; i < streak && ttl < maxTTL; i++ {
		ttl *= 2
	}
	return min(ttl, maxTTL)
}

// makeRoom drops the records whose streak is over, or, if none is, one record. f.mu must be
// held.
func (f *failureMemory) makeRoom(now int64) {
	for k, r := range f.m {
		if now >= r.forget {
			delete(f.m, k)
		}
	}
	if len(f.m) < maxRememberedKeys {
		return
	}
	for k := range f.m {
		delete(f.m, k)
		return
	}
}

// forget drops key's memory: it loaded, it was removed, or it was set.
func (f *failureMemory) forget(key string) {
	if f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	delete(f.m, key)
	f.n.Store(int64(len(f.m)))
	f.mu.Unlock()
}

// forgetAll drops every key's memory (a purge).
func (f *failureMemory) forgetAll() {
	f.mu.Lock()
	clear(f.m)
	f.n.Store(0)
	f.mu.Unlock()
}

// allowLog takes a token from the log's bucket. It returns whether a line may be written,
// and how many were held back since the last one.
func (f *failureMemory) allowLog() (ok bool, held int64) {
	now := f.clock.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logTokens = min(failureLogBurst, f.logTokens+float64(now-f.logAt)/float64(failureLogEvery))
	f.logAt = now
	if f.logTokens < 1 {
		f.held++
		f.suppressed.Add(1)
		return false, 0
	}
	f.logTokens--
	held, f.held = f.held, 0
	return true, held
}

// rememberFailure remembers the failed load of c (unless a Remove or a Purge made it stale)
// and logs it, rate-limited. err is what the waiters get.
func (g *Group) rememberFailure(c *call, err error) {
	key := c.key.key
	ttl, streak := time.Duration(0), 1
	if errors.Is(err, ErrLoaderPanic) {
		// A bug in the loader rather than the origin's failure: not remembered, so that a
		// fixed loader (or a panic that depends on timing) is called again at once; logged
		// with its stack already.
		return
	}
	g.flights.cacheUnlessStale(c, func() { ttl, streak = g.failures.remember(key, err) })
	if ok, held := g.failures.allowLog(); ok {
		g.log.Error("load failed", "key", key, "err", err, "remembered_for", ttl, "consecutive_failures", streak,
			"log_lines_suppressed", held)
	}
}

// tooLarge returns ErrValueTooLarge (wrapped) when v cannot be cached in the main cache.
func (g *Group) tooLarge(key string, v Value) error {
	if w, limit := int64(weight(key, v.Bytes)), g.main.maxBytes(); w > limit {
		return fmt.Errorf("%w: %d bytes with its key and bookkeeping, the cache holds %d", ErrValueTooLarge, w, limit)
	}
	return nil
}
