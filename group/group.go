// Package group is groupcached's read-through cache engine: a Group answers Get(key) from its
// main cache (keys this node owns), then its hot cache (copies of popular keys other nodes
// own), and otherwise fills the key exactly once, however many callers ask at the same time.
// The fill asks the key's owner through a PeerPicker, or calls the group's Loader when this
// node owns the key or has no peers; only an owner that cannot be reached makes it load the
// key here instead.
//
// The first caller to miss drives the fill: it makes that slow call under Config.LoadTimeout,
// detached from every caller's context, waits for its answer (or for the deadline, if the call
// ignores its context) and stores it. A caller whose context can end starts the call on a
// separate goroutine (or, for an owner that is an AsyncPeer, sends the fetch and is called
// back, with no goroutine), so that it can leave at once and the fill goes on without it. A
// caller whose context never ends makes a blocking call on its own goroutine, as
// golang/groupcache does for every caller, and returns when the call does. The others wait for
// the result, each until its own context ends, and a call that ignores its context holds none
// of them past the deadline. A panic in the fill, in the loader or not, becomes an error for
// every waiter.
//
// GetMany reads many keys at once with the same rules, key by key (getmany.go); what it adds is
// that the keys one owner must fill travel to it in one request when the owner is a BatchPeer.
//
// Compared with golang/groupcache, a Group is a value (no global registry: many groups and many
// nodes live in one process), entries carry TTLs, ErrNotFound is remembered for a short while,
// keys can be removed and groups purged (cluster-wide through an Invalidator), a panicking
// loader fails its waiters instead of hanging them, a caller whose context ends stops waiting
// at once, and the byte bound counts each entry's bookkeeping so that memory tracks it.
//
// A failure stays small: loader calls are bounded per node (Config.MaxConcurrentLoads, a
// queue, a byte budget; past them ErrOverloaded, admit.go), a failed load is remembered for
// Config.ErrorTTL with backoff so that a failing key costs the origin about one call per
// ErrorTTL (errmemory.go), and an expired value can be served while it is refreshed or when
// its load fails (Config.StaleWhileRevalidate, Config.StaleIfError; stale.go).
//
// When a key's owner changes, the value need not come from the origin again (peek.go): a
// local load first asks the key's previous owner (a PreviousOwnerPicker says who) for the value
// in its memory (Peek, which never loads), and a node that leaves hands its hottest entries
// (Hottest) to their next owners, which keep them only where they hold none (Push).
//
// Eviction is S3-FIFO (store.go): a small queue that one-time keys pass through, a main queue
// that keeps the keys read again, and a ghost of recently dropped keys; it keeps frequently
// used keys through one-time scans that flush an LRU. A hit takes no lock (each shard's index
// is a table of atomic pointers, storetable.go) and writes at most a small counter. BENCHMARKS.md has the hit ratios measured against golang/groupcache's LRU
// (and against the W-TinyLFU of github.com/maypok86/otter/v2 that this package used before).
//
// The package knows nothing of HTTP, gossip or configuration files: the peers package
// implements PeerPicker and Invalidator, and the httpapi package turns errors into statuses.
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Source says where a Get's value came from.
type Source uint8

const (
	SourceMain   Source = iota // this node's main cache
	SourceHot                  // this node's hot cache (a copy of a peer's key)
	SourcePeer                 // fetched from the key's owner just now
	SourceLoader               // loaded from the origin by this node just now
)

var sourceNames = [...]string{"main", "hot", "peer", "loader"}

func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return fmt.Sprintf("Source(%d)", s)
}

// Result is a value returned by Get.
type Result struct {
	// Bytes is shared with the cache and with every other reader: it must not be modified.
	Bytes []byte
	// Hash is a 64-bit xxhash of Bytes, computed once when the value was cached, fit for an
	// HTTP ETag.
	Hash uint64
	// TTL is the value's remaining lifetime; zero means it never expires.
	TTL time.Duration
	// Source says which cache answered, or who filled the key.
	Source Source
	// Stale says the value has expired and is served under Config.StaleWhileRevalidate or
	// Config.StaleIfError (stale.go); TTL is then zero, and the value must not be kept.
	Stale bool
	// ContentType and LastModified are the value's metadata (see Value), empty when unknown.
	ContentType  string
	LastModified time.Time
	// Age is, for a stale value, how long ago it expired; zero otherwise.
	Age time.Duration
}

// Group is a named, byte-bounded read-through cache over one Loader. It is safe for
// concurrent use. Build it with New; link it to a cluster with SetPeers and SetInvalidator.
type Group struct {
	name   string
	loader Loader
	cfg    Config
	log    *slog.Logger

	// main holds keys this node owns; hot holds copies of keys fetched from their owners, so
	// that a popular key does not cross the network on every Get. They share cfg.CacheBytes.
	main, hot *cache
	// clock stamps entries' deadlines; both caches read the same one.
	clock clock

	// peers and invalidator are set after construction, once the cluster exists; reading them
	// on every miss must not take a lock.
	peers       atomic.Pointer[PeerPicker]
	invalidator atomic.Pointer[Invalidator]
	// peersMu orders SetPeers calls, which move the two caches' bounds in several steps.
	peersMu sync.Mutex

	// flights folds concurrent misses of one key into one fill, bounds it by LoadTimeout,
	// and lets Remove and Purge stop a fill that is under way from caching what it loaded.
	flights flights

	stats counters

	// admit bounds the loader calls in progress (admit.go); failures remembers failed loads
	// (errmemory.go); refreshing holds the keys whose stale value is being revalidated in the
	// background (stale.go).
	admit      *admission
	failures   *failureMemory
	refreshing sync.Map

	// warm holds the peek and push counters and the time of the last removal (peek.go).
	warm warmState

	// sizer estimates the hit ratio at other cache sizes (Config.Sizing; sizing.go). Nil when
	// sizing is off: the Get path then pays one nil check.
	sizer *sizer
}

// New returns a Group named name that fills misses with loader. logger receives recovered
// panics with their stacks, and the fetches that fell back to a local load; nil means
// slog.Default().
func New(name string, loader Loader, cfg Config, logger *slog.Logger) (*Group, error) {
	if name == "" {
		return nil, errors.New("group: empty name")
	}
	if loader == nil {
		return nil, fmt.Errorf("group %q: nil loader", name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("group %q: %w", name, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.HotCacheRate == 0 {
		cfg.HotCacheRate = 1
	}
	clk := newClock()
	g := &Group{
		name:   name,
		loader: loader,
		cfg:    cfg,
		log:    logger.With("group", name),
		clock:  clk,
		main:   newCache(cfg.CacheBytes, clk),
		hot:    newCacheShards(0, clk, storeShards(cfg.CacheBytes)), // sized by SetPeers: without peers nothing is fetched
	}
	g.flights = flights{fill: g, timeout: cfg.LoadTimeout, log: g.log}
	g.admit = newAdmission(cfg)
	g.failures = newFailureMemory(cfg, clk)
	g.main.grace = int64(max(cfg.StaleWhileRevalidate, cfg.StaleIfError))
	if cfg.Sizing {
		// Every Get and GetLocal is counted on the stripes before the sizer sees it: their sum
		// is the sizer's request count, and the hot path pays for no counter of its own.
		s, err := newSizer(DefaultSizingConfig(), cfg.CacheBytes, g.stats.requests)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", name, err)
		}
		g.sizer = s
	}
	return g, nil
}

func hotBytes(cfg Config) int64 { return int64(float64(cfg.CacheBytes) * cfg.HotCacheFraction) }

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// Config returns the configuration the group was built with.
func (g *Group) Config() Config { return g.cfg }

// SetPeers links the group to a cluster (nil unlinks it). While linked, the hot cache takes
// its share of CacheBytes from the main cache.
//
// The two bounds are moved so that main plus hot never exceeds CacheBytes, even while a fetch
// that started before the change is still storing into the hot cache: unlinked, the hot cache
// holds nothing (its bound is below the weight of any entry); linked, the main cache shrinks
// before the hot cache grows.
func (g *Group) SetPeers(p PeerPicker) {
	g.peersMu.Lock()
	defer g.peersMu.Unlock()
	if p == nil {
		g.peers.Store(nil)
		g.hot.setMaxBytes(0)
		g.hot.purge()
		g.main.setMaxBytes(g.cfg.CacheBytes)
		g.sizer.resize(g.cfg.CacheBytes)
		return
	}
	g.main.setMaxBytes(g.cfg.CacheBytes - hotBytes(g.cfg))
	g.hot.setMaxBytes(hotBytes(g.cfg))
	g.sizer.resize(g.cfg.CacheBytes - hotBytes(g.cfg))
	g.peers.Store(&p)
}

// SetInvalidator makes Remove and Purge cluster-wide (nil makes them local).
func (g *Group) SetInvalidator(inv Invalidator) {
	if inv == nil {
		g.invalidator.Store(nil)
		return
	}
	g.invalidator.Store(&inv)
}

// Get returns the value of key: from the main or hot cache, or else from one fill shared by
// every concurrent Get of key on this node. If ctx ends first, Get returns ctx.Err() at once
// and the fill goes on for the callers that remain, under Config.LoadTimeout. A Get whose ctx
// never ends (Done returns nil, as context.Background's does) and that starts the fill makes
// the loader's Load, or a blocking Peer's Fetch, on its own goroutine: it returns when that
// call returns, with ErrLoadTimeout if the call outlived the timeout, while every other caller
// of the fill is released at the timeout.
//
// Errors: ErrInvalidKey, ErrNotFound, ErrLoaderPanic, ErrLoadTimeout, a loader's own error
// (wrapped), or ctx.Err().
func (g *Group) Get(ctx context.Context, key string) (Result, error) {
	return g.get(ctx, key, false)
}

// GetLocal serves a request that came from a peer: like Get, but it never asks another node,
// whatever this node's view of the ring, so a request crosses the network at most once.
func (g *Group) GetLocal(ctx context.Context, key string) (Result, error) {
	return g.get(ctx, key, true)
}

// get is Get, or GetLocal when fromPeer is set: such a request is counted as a peer's and
// filled here.
func (g *Group) get(ctx context.Context, key string, fromPeer bool) (Result, error) {
	if key == "" {
		return Result{}, ErrInvalidKey
	}
	s := g.stats.stripe()
	counts := &s.get
	if fromPeer {
		counts = &s.local
	}
	var e entry
	if ttl, src, hit := g.lookup(key, &e); hit {
		counts[src].Add(1)
		g.sizer.observe(key, len(e.value)) // a negative entry has no value: 0
		return g.answer(s, &e, ttl, src)
	}
	counts[miss].Add(1)
	var res Result
	var err error
	if g.main.grace > 0 {
		res, err = g.fillOrStale(ctx, key, fromPeer)
	} else {
		res, err = g.fillMiss(ctx, key, fromPeer)
	}
	g.sizer.observe(key, observedLen(res, err))
	return res, err
}

// fillMiss fills a key that both caches missed: from its owner, or from this node's loader
// when this node owns it, has no peers, or serves a peer's request.
func (g *Group) fillMiss(ctx context.Context, key string, fromPeer bool) (Result, error) {
	if !fromPeer {
		if p := g.peers.Load(); p != nil {
			if peer, ok := (*p).PickPeer(key); ok {
				return g.flights.do(ctx, flightKey{key: key, remote: true}, peer)
			}
		}
	}
	return g.flights.do(ctx, flightKey{key: key}, nil)
}

// lookup finds key in the main cache, then the hot cache, and stores it in *e. It returns
// the entry's remaining TTL and the cache that had it (SourceMain or SourceHot).
func (g *Group) lookup(key string, e *entry) (ttl time.Duration, src Source, hit bool) {
	if ttl, hit = g.main.get(key, e); hit {
		return ttl, SourceMain, true
	}
	// Unlinked, the hot cache holds nothing (see SetPeers): a miss need not ask it.
	if g.peers.Load() != nil {
		if ttl, hit = g.hot.get(key, e); hit {
			return ttl, SourceHot, true
		}
	}
	return 0, 0, false
}

// answer turns a cached entry into Get's result, counting a remembered ErrNotFound.
func (g *Group) answer(s *stripe, e *entry, ttl time.Duration, src Source) (Result, error) {
	if e.negative {
		s.negativeHits.Add(1)
	}
	return e.result(ttl, src)
}

// result is the entry as Get returns it: its value, or ErrNotFound for a negative entry.
func (e *entry) result(ttl time.Duration, src Source) (Result, error) {
	if e.negative {
		return Result{}, ErrNotFound
	}
	// Each branch returns a literal, which the compiler builds in the caller's result: a
	// Result assembled in a variable was copied once more on every hit.
	if e.meta == nil {
		return Result{Bytes: e.value, Hash: e.hash, TTL: ttl, Source: src}, nil
	}
	return Result{
		Bytes: e.value, Hash: e.hash, TTL: ttl, Source: src,
		ContentType: e.meta.contentType, LastModified: e.meta.lastModified,
	}, nil
}

// RemoveLocal drops key from this node's caches and keeps a fill under way from caching it.
func (g *Group) RemoveLocal(key string) {
	g.warm.removed(g.clock.now()) // a push read before this removal is refused (Push)
	g.flights.invalidate(key, false)
	g.failures.forget(key)
	g.main.remove(key)
	g.hot.remove(key)
}

// PurgeLocal drops every entry of this node's caches.
func (g *Group) PurgeLocal() {
	g.warm.removed(g.clock.now()) // a push read before this purge is refused (Push)
	g.flights.invalidate("", true)
	g.failures.forgetAll()
	g.main.purge()
	g.hot.purge()
}

// Remove drops key here and, through the Invalidator, on every other node (the owner's copy
// and every hot copy) before it returns. It reports how many peers confirmed; the error says
// which did not.
func (g *Group) Remove(ctx context.Context, key string) (confirmed int, err error) {
	if key == "" {
		return 0, ErrInvalidKey
	}
	g.RemoveLocal(key)
	if inv := g.invalidator.Load(); inv != nil {
		return (*inv).InvalidateKey(ctx, g.name, key)
	}
	return 0, nil
}

// Purge drops every entry of the group here and on every other node.
func (g *Group) Purge(ctx context.Context) (confirmed int, err error) {
	g.PurgeLocal()
	if inv := g.invalidator.Load(); inv != nil {
		return (*inv).InvalidateGroup(ctx, g.name)
	}
	return 0, nil
}
