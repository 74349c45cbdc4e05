package group

import (
	"context"
	"sync/atomic"
	"time"
)

// Warm ownership changes: when a key's owner changes (a node joins, leaves or restarts), the
// value is usually still in some node's memory, and asking the origin again is what the cache
// exists to avoid. Two mechanisms keep it (vimeo/galaxycache's previous-owner peeking is the
// model for the first):
//
//   - peek: the new owner's local load first asks the member that owned the key before the
//     last ring change for the value it holds in memory (Peek: never its loader), within a
//     short timeout, and only then calls the loader. The peers package says who that member
//     is, and only for a while after each change (PreviousOwnerPicker).
//   - push: a node that leaves hands its most valuable entries to their next owners (Hottest
//     chooses them, Push stores them there).
//
// A value obtained either way is stored as a normal entry, with its remaining TTL and its
// metadata, and is never newer than what the receiver holds: see Push.

// Peeker asks another node for the value of a key it holds in memory, without loading it.
// The peers package implements it over the peer wire's peek message, bounded by a short
// timeout. Peek must honour ctx and be safe for concurrent use; ErrNotFound (or any other
// error) means "not there", and the Group then calls its loader.
type Peeker interface {
	Peek(ctx context.Context, group, key string) (Value, error)
}

// PeekerFunc adapts an ordinary function to the Peeker interface.
type PeekerFunc func(ctx context.Context, group, key string) (Value, error)

// Peek calls f(ctx, group, key).
func (f PeekerFunc) Peek(ctx context.Context, group, key string) (Value, error) {
	return f(ctx, group, key)
}

// PreviousOwnerPicker is a PeerPicker that also knows who owned a key before the last
// change of ownership. A Group whose PeerPicker implements it asks that member (Peek) before
// it loads a key itself.
//
// PreviousOwner returns the member that owned key before the last ring change, when that
// change is recent (a warm window, such as peers.Config.WarmTime), that member is not this
// node and is still alive; ok is false otherwise. It must not block: it runs on every local
// load.
type PreviousOwnerPicker interface {
	PickPeer(key string) (peer Peer, ok bool)
	PreviousOwner(key string) (prev Peeker, ok bool)
}

// pushRemovalWindow: a pushed value is refused while a removal or purge of the group on this
// node is that recent, so that a value read by the sender before the removal reached it, and
// delivered after the removal reached this node, does not bring the removed value back. It
// exceeds the age of any push (the sender reads each value just before sending it, and a
// push times out within a second).
const pushRemovalWindow = 2 * time.Second

// warmState is the Group's side of peeks and pushes: the time of the last removal (for
// Push) and the counters.
type warmState struct {
	lastRemoval atomic.Int64 // clock.now() of the last RemoveLocal or PurgeLocal; 0: none

	peeks, peekHits, peekNanos   atomic.Int64 // peeks this node sent as a new owner
	peeksServed, peeksServedHits atomic.Int64 // peeks other nodes sent here
	pushesReceived, pushesStored atomic.Int64
}

// WarmStats counts the peeks and pushes of a Group (see PreviousOwnerPicker and Push).
type WarmStats struct {
	// Peeks is how many local loads asked a previous owner first; PeekHits how many got the
	// value that way (the loader was not called); PeekTime their total time, hits and misses.
	Peeks, PeekHits int64
	PeekTime        time.Duration
	// PeeksServed is how many peeks other nodes sent here, PeeksServedHits how many found
	// the value.
	PeeksServed, PeeksServedHits int64
	// PushesReceived is how many values other nodes handed here as they left,
	// PushesStored how many were kept (the others found a value here, or a recent removal).
	PushesReceived, PushesStored int64
}

// WarmStats returns the group's peek and push counters.
func (g *Group) WarmStats() WarmStats {
	w := &g.warm
	return WarmStats{
		Peeks: w.peeks.Load(), PeekHits: w.peekHits.Load(), PeekTime: time.Duration(w.peekNanos.Load()),
		PeeksServed: w.peeksServed.Load(), PeeksServedHits: w.peeksServedHits.Load(),
		PushesReceived: w.pushesReceived.Load(), PushesStored: w.pushesStored.Load(),
	}
}

// Peek returns the value of key this node holds in memory (main cache, then hot cache) with
// its remaining TTL and metadata, and ok == false when it holds none (a remembered
// ErrNotFound counts as none). It never loads and never asks another node: it answers a new
// owner's peek.
func (g *Group) Peek(key string) (Result, bool) {
	g.warm.peeksServed.Add(1)
	var e entry
	ttl, src, hit := g.lookup(key, &e)
	if !hit || e.negative {
		return Result{}, false
	}
	res, err := e.result(ttl, src)
	if err != nil {
		return Result{}, false
	}
	g.warm.peeksServedHits.Add(1)
	return res, true
}

// Push stores v, handed over by a node that is leaving, as key's value in the main cache for
// v.TTL (zero or less: Config.TTL), and reports whether it did. It stores it only where this
// node holds no value for key, and no removal or purge of the group happened here in the
// last pushRemovalWindow: a value already here is never older than the pushed one, because
// every write (Set, Remove, Purge) drops the copies on every node before it stores, so what
// a node still holds was loaded, fetched or written after (or is the same version as) the
// value the leaving node read. A Set that arrives after the push overwrites it; one that
// arrived before keeps its value.
func (g *Group) Push(key string, v Value) bool {
	if key == "" {
		return false
	}
	g.warm.pushesReceived.Add(1)
	ttl := v.TTL
	if ttl <= 0 {
		ttl = g.cfg.TTL
	}
	e := g.newEntry(v.Bytes, ttl)
	e.meta = newMeta(v)
	stored := false
	// Under the flights' lock, as SetLocal stores: a Set either stored first (and the push
	// finds its entry) or comes after (and overwrites the pushed value).
	g.flights.mu.Lock()
	defer g.flights.mu.Unlock()
	if last := g.warm.lastRemoval.Load(); last != 0 && g.clock.now()-last < int64(pushRemovalWindow) {
		return false
	}
	var old entry
	if _, hit := g.main.get(key, &old); !hit {
		g.main.add(key, e)
		stored = true
		g.warm.pushesStored.Add(1)
	}
	return stored
}

// removed records a removal or purge on this node, which refuses pushes for a while (Push).
func (w *warmState) removed(now int64) { w.lastRemoval.Store(max(now, 1)) }

// peekPrevious asks the previous owner of the key of the local fill c for its value in
// memory, when the group's PeerPicker knows one (PreviousOwnerPicker). It reports a hit,
// which the fill then stores as if the loader had returned it (without counting a load).
func (g *Group) peekPrevious(ctx context.Context, c *call) (Value, bool) {
	p := g.peers.Load()
	if p == nil {
		return Value{}, false
	}
	pp, ok := (*p).(PreviousOwnerPicker)
	if !ok {
		return Value{}, false
	}
	prev, ok := pp.PreviousOwner(c.key.key)
	if !ok {
		return Value{}, false
	}
	start := time.Now()
	// A peek takes at most a quarter of what is left of the load's time (and the Peeker's
	// own bound): a slow previous owner must leave the loader its time.
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(deadline.Sub(start)/4))
		defer cancel()
	}
	v, err := prev.Peek(ctx, g.name, c.key.key)
	g.warm.peeks.Add(1)
	g.warm.peekNanos.Add(int64(time.Since(start)))
	if err != nil {
		return Value{}, false
	}
	g.warm.peekHits.Add(1)
	c.peeked.Store(true)
	return v, true
}
