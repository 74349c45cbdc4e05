package group

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cespare/xxhash/v2"
)

// The Group's side of a fill (see filler): flights decides who drives it, bounds it and
// recovers its panics; the Group says what to call and what to keep.

var _ filler = (*Group)(nil)

// cached looks where the fill would store: a local load in the main cache only (a hot copy
// is no answer to a peer that asks the owner, nor to a fetch that fell back), a fetch in both.
func (g *Group) cached(k flightKey) (Result, error, bool) {
	var e entry
	var ttl time.Duration
	src, hit := SourceMain, false
	if k.remote {
		ttl, src, hit = g.lookup(k.key, &e)
	} else if ttl, hit = g.main.get(k.key, &e); !hit {
		if err, ok := g.failures.recall(k.key); ok { // errmemory.go
			return Result{}, err, true
		}
	}
	if hit {
		// Not counted as a hit: the caller has counted its miss.
		res, err := e.result(ttl, src)
		return res, err, true
	}
	g.stats.loadsDeduped.Add(1)
	return Result{}, nil, false
}

func (g *Group) slow(ctx context.Context, c *call) (Value, error) {
	if c.peer != nil {
		return c.peer.Fetch(ctx, g.name, c.key.key)
	}
	if v, ok := g.peekPrevious(ctx, c); ok { // the previous owner's memory first (peek.go)
		return v, nil
	}
	return g.load(ctx, c) // the loader's Load, once admitted (admit.go)
}

func (g *Group) settle(ctx context.Context, c *call, v Value, err error) (Result, error, bool) {
	if c.key.remote {
		return g.settleFetch(ctx, c, v, err)
	}
	res, err := g.settleLoad(ctx, c, v, err)
	return res, err, false
}

// settleLoad counts a loader call and caches its value, or its ErrNotFound for NegativeTTL.
// ctx is the loader's, whose deadline tells a timeout from the loader's own errors.
func (g *Group) settleLoad(ctx context.Context, c *call, v Value, err error) (Result, error) {
	key := c.key.key
	if errors.Is(err, ErrOverloaded) { // refused before the loader was called (admit.go)
		return Result{}, err
	}
	g.stats.loadDuration.observe(time.Since(c.started))
	if err == nil {
		err = g.tooLarge(key, v)
	}
	switch {
	case err == nil:
		g.failures.forget(key)
		if !c.peeked.Load() { // a peek's hit is no load (peek.go counts it)
			g.stats.localLoads.Add(1)
		}
		ttl := v.TTL
		if ttl <= 0 {
			ttl = g.cfg.TTL
		}
		e := g.newEntry(v.Bytes, ttl)
		e.meta = newMeta(v)
		g.flights.cacheUnlessStale(c, func() { g.main.add(key, e) })
		return e.result(ttl, SourceLoader)
	case errors.Is(err, ErrNotFound):
		g.failures.forget(key)
		g.stats.localLoads.Add(1)
		if g.cfg.NegativeTTL > 0 {
			g.flights.cacheUnlessStale(c, func() { g.main.add(key, g.negativeEntry(g.cfg.NegativeTTL)) })
		}
		return Result{}, err
	default:
		g.stats.localLoadErrs.Add(1)
		if errors.Is(err, ErrLoaderPanic) {
			g.stats.loaderPanics.Add(1)
			var pe *panicError
			if errors.As(err, &pe) {
				g.log.Error("loader panicked", "key", key, "panic", pe.value, "stack", string(pe.stack))
			}
		} else if pastDeadline(ctx) {
			err = fmt.Errorf("%w after %v: %w", ErrLoadTimeout, g.cfg.LoadTimeout, err)
		}
		err = fmt.Errorf("loading %q: %w", key, err)
		g.rememberFailure(c, err) // errmemory.go
		return Result{}, err
	}
}

// settleFetch counts a fetch from the key's owner and keeps a copy of its answer in the hot
// cache, for one fetch in HotCacheRate. Only when the owner could not be reached does it ask
// for the fallback: a local load, once for all the callers sharing the fetch. ctx is the
// fetch's.
func (g *Group) settleFetch(ctx context.Context, c *call, v Value, err error) (Result, error, bool) {
	key := c.key.key
	switch {
	case err == nil && v.Stale:
		// The owner served its expired value (stale.go): answered as such, never kept.
		g.stats.peerLoads.Add(1)
		e := g.newEntry(v.Bytes, 0)
		e.meta = newMeta(v)
		res, err := e.result(0, SourcePeer)
		res.Stale, res.Age = true, v.Age
		return res, err, false
	case err == nil:
		g.stats.peerLoads.Add(1)
		e := g.newEntry(v.Bytes, v.TTL)
		e.meta = newMeta(v)
		if g.keepHot() {
			g.flights.cacheUnlessStale(c, func() { g.hot.add(key, e) })
		}
		res, err := e.result(v.TTL, SourcePeer)
		return res, err, false
	case errors.Is(err, ErrNotFound):
		g.stats.peerLoads.Add(1)
		if g.cfg.NegativeTTL > 0 && g.keepHot() {
			g.flights.cacheUnlessStale(c, func() { g.hot.add(key, g.negativeEntry(g.cfg.NegativeTTL)) })
		}
		return Result{}, err, false
	case errors.Is(err, ErrPeerUnavailable):
		g.stats.peerErrors.Add(1)
		g.stats.fallbackLoads.Add(1)
		g.log.Warn("owner unreachable; loading locally", "key", key, "err", err)
		return Result{}, nil, true
	default:
		g.stats.peerErrors.Add(1)
		if pastDeadline(ctx) && !errors.Is(err, ErrLoadTimeout) {
			err = fmt.Errorf("%w after %v: %w", ErrLoadTimeout, g.cfg.LoadTimeout, err)
		}
		return Result{}, fmt.Errorf("fetching %q from its owner: %w", key, err), false
	}
}

// pastDeadline reports whether the fill's time is up, so that the error it ends with is a
// timeout. It reads the clock rather than ctx.Err(): the deadline timer may deliver the
// timeout a moment before the timer of a context the slow call derived has fired.
func pastDeadline(ctx context.Context) bool {
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

func (g *Group) keepHot() bool {
	return g.cfg.HotCacheFraction > 0 && rand.IntN(g.cfg.HotCacheRate) == 0
}

func (g *Group) newEntry(value []byte, ttl time.Duration) entry {
	e := entry{value: value, hash: xxhash.Sum64(value)}
	if ttl > 0 {
		e.expires = g.clock.deadline(ttl)
	}
	return e
}

func (g *Group) negativeEntry(ttl time.Duration) entry {
	return entry{negative: true, expires: g.clock.deadline(ttl)}
}
