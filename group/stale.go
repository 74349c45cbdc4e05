package group

import (
	"context"
	"errors"
	"time"
)

// Serving stale (RFC 5861's stale-while-revalidate and stale-if-error, Varnish's grace): when
// Config.StaleWhileRevalidate or Config.StaleIfError is set, the main cache keeps an expired
// value for the longer of the two past its deadline (cache.grace), still within the byte
// bound. A Get that misses because the value expired then
//   - within StaleWhileRevalidate: answers the expired value at once and starts one
//     background load of the key (one per key at a time; it shares the key's singleflight
//     with the Gets that miss meanwhile), which replaces the value when it succeeds;
//   - within StaleIfError: loads the key as usual, and answers the expired value if that
//     load fails (an error, a timeout, an overload, a remembered failure; not ErrNotFound,
//     which says the key is gone, nor the caller's own context ending).
//
// Only the main cache keeps expired values: they are served by the node that loaded them,
// the key's owner (or a node that loaded it because the owner was unreachable). A node that
// fetches a key from its owner gets the owner's stale value marked so (Value.Stale and Age,
// carried by the peer wire): it keeps no hot copy of it and answers it as a stale Result, with
// the owner's Age (settleFetch).

// staleResult is e as a stale answer, past its deadline by past.
func (e *entry) staleResult(past time.Duration) Result {
	res, _ := e.result(0, SourceMain)
	res.Stale, res.Age = true, past
	return res
}

// fillOrStale fills a missed key, or answers its expired value as the stale settings allow.
func (g *Group) fillOrStale(ctx context.Context, key string, fromPeer bool) (Result, error) {
	var e entry
	past, ok := g.main.stale(key, &e)
	if !ok {
		return g.fillMiss(ctx, key, fromPeer)
	}
	if past < g.cfg.StaleWhileRevalidate {
		g.revalidate(key)
		g.stats.staleRevalidating.Add(1)
		return e.staleResult(past), nil
	}
	res, err := g.fillMiss(ctx, key, fromPeer)
	if err != nil && past < g.cfg.StaleIfError && staleCovers(ctx, err) {
		g.stats.staleOnError.Add(1)
		return e.staleResult(past), nil
	}
	return res, err
}

// staleCovers reports whether a failed fill may be answered with a stale value.
func staleCovers(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidKey) {
		return false
	}
	return true
}

// revalidate starts the background load of key unless one is running. It loads locally, as
// a peer's request would: the expired value lives in this node's main cache, where a local
// load stores the new one. Its context can end (though nothing ends it) so that the slow call
// runs on a goroutine of its own, not inline (flight.go): do then returns at the load timeout
// even if the Load ignores its context, and the next stale Get may start a new refresh.
func (g *Group) revalidate(key string) {
	if _, running := g.refreshing.LoadOrStore(key, struct{}{}); running {
		return
	}
	g.stats.staleRefreshes.Add(1)
	go func() {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		defer g.refreshing.Delete(key)
		_, _ = g.flights.do(ctx, flightKey{key: key}, nil)
	}()
}
