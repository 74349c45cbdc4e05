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
}

// DefaultConfig returns production values: 64 MiB, no expiry, 1 s negative caching, a 30 s
// load timeout and a hot cache of 1/8 that takes one fetch in ten.
func DefaultConfig() Config {
	return Config{
		CacheBytes:       64 << 20,
		HotCacheFraction: 1.0 / 8,
		TTL:              0,
		NegativeTTL:      time.Second,
		LoadTimeout:      30 * time.Second,
		HotCacheRate:     10,
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
