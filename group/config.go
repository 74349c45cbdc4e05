package group

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes one Group. The zero value is not usable (CacheBytes must be set); start from
// DefaultConfig and change what you need.
type Config struct {
	// CacheBytes bounds the memory of the group's main and hot caches together, counting keys,
	// values and a fixed per-entry bookkeeping cost (EntryOverhead), so that the process's heap
	// tracks it. While the group has peers, up to HotCacheFraction of it holds copies of other
	// nodes' keys; alone, the main cache gets all of it. Must be > 0.
	CacheBytes int64

	// HotCacheFraction is the share of CacheBytes given to the hot cache (copies of popular
	// keys owned by other nodes) while the group has peers. Zero disables the hot cache;
	// DefaultConfig uses 1/8, as golang/groupcache does. Must be in [0, 0.5].
	HotCacheFraction float64

	// TTL is how long a loaded value is served when its loader sets no TTL of its own.
	// Zero means loaded values never expire (they leave only by eviction or Remove).
	TTL time.Duration

	// NegativeTTL is how long an ErrNotFound answer is remembered, so that a storm of lookups
	// for a missing key does not reach the origin. Zero turns negative caching off.
	NegativeTTL time.Duration

	// LoadTimeout bounds one shared fill: the loader call, or the fetch from the owner. It is
	// independent of any caller's context, so a caller that gives up does not cancel the fill
	// for the others. Must be > 0.
	LoadTimeout time.Duration

	// HotCacheRate: a value fetched from a peer is copied into the hot cache once in this many
	// fetches, which keeps only popular keys there (golang/groupcache uses 10). 1 copies every
	// fetched value; 0 is treated as 1.
	HotCacheRate int

	// Sizing estimates, from the group's live traffic, the hit ratio it would have with ¼, ½,
	// 1, 2 and 4 times its cache (Group.Sizing; sizing.go has the method): miniature caches
	// with the group's own eviction policy, fed the requests of a hashed sample of at most
	// 1/128 of the keys. It costs every Get a hash and a compare (5-7 ns), a sampled Get a
	// lookup in each miniature (a store where one misses), and at most 1.25 MiB per group.
	// Precision grows with the cache: within about 0.02 for a cache of 100,000 entries,
	// rough for a few thousand (BENCHMARKS.md). The cache it multiplies is the main cache's
	// bound: CacheBytes alone, less the hot cache's share in a cluster.
	Sizing bool

	// Admission control and failure isolation (admit.go, errmemory.go, stale.go).

	// MaxConcurrentLoads bounds the loader calls in progress at once on this node for this
	// group (loads from the origin only: hits and fetches from the key's owner do not count).
	// A load past it waits in a queue of MaxQueuedLoads. Zero: unbounded.
	// DefaultConfig: 32, so a cluster of n nodes asks the origin at most 32n things at once.
	MaxConcurrentLoads int

	// MaxQueuedLoads bounds the loads waiting for one of MaxConcurrentLoads (or for the
	// MaxLoadingBytes budget). A queued load waits until a slot frees or its load timeout
	// ends; a load arriving at a full queue fails at once with ErrOverloaded (HTTP 503
	// "overloaded" with Retry-After). Zero: no queue, a load past the bound fails at once.
	// DefaultConfig: 128.
	MaxQueuedLoads int

	// MaxLoadingBytes bounds the memory of loads in progress, whose size is unknown until the
	// loader returns: each load in progress is charged the mean size of the values this group
	// loaded recently (nothing before the first load returns), and a load is admitted only
	// while the charges of those in progress plus its own stay within the budget; otherwise it
	// queues as above. One load is always admitted, so a single value larger than the budget
	// still loads. It bounds the bytes the loaders hold while reading values, not the copies
	// that clients' connections hold while their answers are written. Zero: no byte budget.
	// DefaultConfig: 64 MiB.
	MaxLoadingBytes int64

	// ErrorTTL is how long a failed load (a loader error, a timeout, a value larger than the
	// cache; not a panic) is remembered: meanwhile a Get of the key, or a peer's request for it,
	// gets the remembered error without calling the origin. A key that fails again is
	// remembered twice as long each time, up to MaxErrorTTL; a success forgets it. So a key
	// whose origin keeps failing costs the origin about one call per ErrorTTL (then less)
	// per cluster: only its owner loads it. ErrNotFound is not a failure (see NegativeTTL),
	// nor is ErrOverloaded. Zero: failures are not remembered. DefaultConfig: 1 s.
	ErrorTTL time.Duration

	// MaxErrorTTL caps the backoff of ErrorTTL for a key that keeps failing. At most
	// ErrorTTL (zero included): no backoff. DefaultConfig: 30 s.
	MaxErrorTTL time.Duration

	// StaleWhileRevalidate: for this long after a value in the main cache expires, a Get
	// answers it at once (Result.Stale) while one background load refreshes it. Zero: off.
	StaleWhileRevalidate time.Duration

	// StaleIfError: for this long after a value in the main cache expires, a Get whose load
	// fails (error, timeout, overload; not ErrNotFound) answers the expired value instead of
	// the error (Result.Stale). Expired values are kept, within CacheBytes, for the longer of
	// the two durations. Zero: off.
	StaleIfError time.Duration
}

// DefaultConfig returns production values: 64 MiB, no expiry, 1 s negative caching, a 30 s
// load timeout and a hot cache of 1/8 that takes one fetch in ten; at most 32 loads at once
// (128 more queued, 64 MiB being loaded), failures remembered for 1 s (up to 30 s when they
// repeat), no stale values served.
func DefaultConfig() Config {
	return Config{
		CacheBytes:       64 << 20,
		HotCacheFraction: 1.0 / 8,
		TTL:              0,
		NegativeTTL:      time.Second,
		LoadTimeout:      30 * time.Second,
		HotCacheRate:     10,

		MaxConcurrentLoads: 32,
		MaxQueuedLoads:     128,
		MaxLoadingBytes:    64 << 20,
		ErrorTTL:           time.Second,
		MaxErrorTTL:        30 * time.Second,
	}
}

// Validate reports every field that is out of range, each as a *FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	if c.CacheBytes <= 0 {
		errs = append(errs, FieldErrorf("CacheBytes", "must be > 0, got %d", c.CacheBytes))
	}
	if c.HotCacheFraction < 0 || c.HotCacheFraction > 0.5 {
		errs = append(errs, FieldErrorf("HotCacheFraction", "must be in [0, 0.5], got %v", c.HotCacheFraction))
	}
	if c.TTL < 0 {
		errs = append(errs, FieldErrorf("TTL", "must be >= 0s (0s: never expires), got %v", c.TTL))
	}
	if c.NegativeTTL < 0 {
		errs = append(errs, FieldErrorf("NegativeTTL", "must be >= 0s (0s: not remembered), got %v", c.NegativeTTL))
	}
	if c.LoadTimeout <= 0 {
		errs = append(errs, FieldErrorf("LoadTimeout", "must be > 0s, got %v", c.LoadTimeout))
	}
	if c.HotCacheRate < 0 {
		errs = append(errs, FieldErrorf("HotCacheRate", "must be >= 0, got %d", c.HotCacheRate))
	}
	errs = append(errs, c.validateIsolation()...)
	return errors.Join(errs...)
}

// FieldError is one field of a configuration struct that is missing or out of range. Every
// Validate in groupcached (group, peers, httpapi, loader) returns its faults as FieldErrors,
// joined with errors.Join, so that a program that filled the struct from a file, flags or the
// environment can say where the bad value came from: walk the joined errors (or use
// errors.As for the first) and map Field back to its source. A custom loader's Validate
// should do the same.
type FieldError struct {
	// Field is the Go name of the field, followed by an index for one element of a slice
	// ("Seeds[2]").
	Field string
	// Err says what is wrong, in words that follow the field's name: "must be > 0, got 0",
	// "required".
	Err error
}

// FieldErrorf returns a FieldError for field whose Err is fmt.Errorf(format, args...), so %w
// wraps as usual.
func FieldErrorf(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns Err, so that errors.Is sees through to a sentinel it wraps.
func (e *FieldError) Unwrap() error { return e.Err }
