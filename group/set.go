package group

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Writes: a program that computes a value (a rendered page, a task, a session) puts it into
// the cluster with Set. The value is stored in its owner's main cache, where a fill would
// have put it, and every other node's copy is dropped as Remove drops it, so that a later Get
// anywhere asks the owner and gets the value written. Set is not a write to the origin: when
// the value expires or is evicted, the next Get loads the key from the origin again.

// SetPeer is a Peer that can store a value on the node it stands for: the peer wire's set
// message. The receiving node stores it with SetLocal and never forwards it again.
//
// Set may block (it crosses the network) and must honour ctx; it must be safe for concurrent
// use. v.Bytes is only read. Errors keep their meaning as for Fetch: ErrPeerUnavailable
// (wrapped) when the peer could not be reached.
type SetPeer interface {
	Set(ctx context.Context, group, key string, v Value) error
}

// ErrNotStored is returned (wrapped, with its cause) by Set when the key's owner did not store
// the value: it could not be reached, or it cannot store values. Any other error from Set is
// the Invalidator's: the value is stored, but some node may still serve an older copy.
var ErrNotStored = errors.New("value not stored on the key's owner")

// ErrSetUnsupported is returned (wrapped) by Set when the key's owner is a Peer that cannot
// store values (it does not implement SetPeer).
var ErrSetUnsupported = errors.New("the key's owner cannot store values")

// Set stores value as key's value for ttl (zero or less: the group's Config.TTL) on the key's
// owner, and drops every other node's copy through the Invalidator, as Remove does. A fill of
// key under way on this node or on the owner does not overwrite it: it is marked stale.
//
// It reports how many peers confirmed dropping their copies; the error says which did not
// (the value is stored all the same) or why the owner did not store it. Set keeps value: the
// caller must not modify it afterwards.
func (g *Group) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (confirmed int, err error) {
	return g.SetValue(ctx, key, Value{Bytes: value, TTL: ttl})
}

// SetValue is Set with the value's metadata: v.TTL as Set's ttl.
func (g *Group) SetValue(ctx context.Context, key string, v Value) (confirmed int, err error) {
	if key == "" {
		return 0, ErrInvalidKey
	}
	if v.TTL <= 0 {
		v.TTL = g.cfg.TTL
	}
	// Drop this node's copies and every other node's first, then store on the owner: a Get
	// that arrives after Set returns finds no copy of the old value anywhere and asks the
	// owner, which has the new one. (The other order would let the invalidation remove the
	// owner's new entry.)
	g.RemoveLocal(key)
	if inv := g.invalidator.Load(); inv != nil {
		confirmed, err = (*inv).InvalidateKey(ctx, g.name, key)
	}
	if p := g.peers.Load(); p != nil {
		if peer, ok := (*p).PickPeer(key); ok {
			sp, ok := peer.(SetPeer)
			if !ok {
				return confirmed, fmt.Errorf("setting %q: %w: %w", key, ErrNotStored, ErrSetUnsupported)
			}
			if serr := sp.Set(ctx, g.name, key, v); serr != nil {
				return confirmed, fmt.Errorf("setting %q: %w: %w", key, ErrNotStored, serr)
			}
			return confirmed, err
		}
	}
	if serr := g.SetLocal(key, v); serr != nil {
		return confirmed, fmt.Errorf("setting %q: %w: %w", key, ErrNotStored, serr)
	}
	return confirmed, err
}

// SetLocal stores v as key's value in this node's main cache, whatever this node's view of
// the ring: it serves a set that came from a peer (or a node without peers), and never asks
// another node. v.TTL zero or less means the group's Config.TTL. A fill of key under way here
// is marked stale, so that what it loaded does not overwrite v; a hot copy of key is dropped.
//
// A value that does not fit the main cache with its key (see MaxValueBytes) is not stored:
// SetLocal returns ErrValueTooLarge (wrapped), and drops key's old value all the same, which
// the write superseded.
func (g *Group) SetLocal(key string, v Value) error {
	if key == "" {
		return ErrInvalidKey
	}
	if err := g.tooLarge(key, v); err != nil {
		g.flights.supersede(key, func() { g.main.remove(key) })
		g.hot.remove(key)
		return err
	}
	ttl := v.TTL
	if ttl <= 0 {
		ttl = g.cfg.TTL
	}
	e := g.newEntry(v.Bytes, ttl)
	e.meta = newMeta(v)
	// Under the flights' lock, so that a fill settling at the same moment either stores
	// before (and is overwritten) or is marked stale first (and stores nothing).
	g.flights.supersede(key, func() { g.main.add(key, e) })
	g.hot.remove(key)
	return nil
}

// supersede marks the fills of key stale and forgets them, as invalidate does, and runs store
// under the same lock: a fill that settles at the same moment either stored before (and store
// overwrites it) or finds itself stale (see cacheUnlessStale) and stores nothing.
func (f *flights) supersede(key string, store func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range [...]flightKey{{key, false}, {key, true}} {
		if c, ok := f.m[k]; ok {
			c.stale = true
			delete(f.m, k)
		}
	}
	store()
}

// MaxValueBytes is the largest value this group's main cache can hold now (its bound is all of
// CacheBytes without peers, less the hot cache's share with them), less its key's length: a key of n bytes takes values of at most MaxValueBytes()-n bytes, and Set refuses a
// larger one with ErrValueTooLarge. The HTTP API answers a PUT above it 413.
func (g *Group) MaxValueBytes() int64 {
	return max(g.main.maxBytes()-EntryOverhead, 0)
}
