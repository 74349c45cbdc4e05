package group

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// Batch reads: GetMany answers many keys as one Get per key would, with one difference that
// matters on a cluster: the keys an owner must fill travel to it in one request (a BatchPeer's
// FetchBatch), not one per key. Each key still has its own fill in the singleflight, shared
// with the Gets of that key on this node, its own timeout, hot-cache copy and fallback: the
// batch is only how the fetches of the fills GetMany starts cross the network.

// BatchPeer is a Peer that can fetch many keys of one group in one request: the peer wire's
// batch message. GetMany sends the keys that one owner must fill in one FetchBatch; to an
// owner that is a plain Peer it sends one Fetch per key.
//
// The contract, for an implementation:
//   - FetchBatch returns exactly one BatchResult per key, in the order of keys, whatever
//     happens: a request that failed as a whole fails each of its keys;
//   - each error keeps its meaning as for Fetch: ErrNotFound; ErrPeerUnavailable (wrapped)
//     only when the owner could not be reached, and then the asking Group loads that key
//     itself; anything else is the owner's verdict on that key;
//   - it may block; it honours ctx, whose deadline is the fills' (LoadTimeout): a key not
//     answered by then gets an error wrapping context.DeadlineExceeded, not
//     ErrPeerUnavailable, so that a slow origin is not asked twice;
//   - it may split keys over several requests when its transport bounds a batch;
//   - it is safe for concurrent use, and the Values' bytes pass to the Group;
//   - it is comparable (a pointer, typically): GetMany groups keys by owner with ==. Keys of
//     a BatchPeer of a type that is not comparable are fetched one by one.
type BatchPeer interface {
	Peer
	FetchBatch(ctx context.Context, group string, keys []string) []BatchResult
}

// BatchResult is one key's answer in FetchBatch: a Value, or Err.
type BatchResult struct {
	Value Value
	Err   error
}

// Item is one key's answer in GetMany: what Get would have returned for it.
type Item struct {
	Result
	Err error
}

// getManyWorkers bounds the goroutines of one GetMany that make its local loads (and fetches
// from plain Peers), and, apart, those that wait for its other fills: a slow key holds one of
// them, and a thousand cold keys do not start a thousand loads at once (the peer wire serves
// a batch with 8 goroutines; this is the same bound for the keys this node fills itself).
const getManyWorkers = 16

// GetMany returns the values of keys, in order: items[i] is what Get(ctx, keys[i]) would
// return (a stale value included, under the group's stale settings). Keys found in the main or hot cache are answered at once; each other key has one
// fill, shared with every concurrent Get of it on this node (a key listed twice is filled
// once and answered twice). The keys this node owns are loaded here; those owned by a peer
// that is a BatchPeer are fetched with one FetchBatch per owner, the rest with a fetch each.
// An owner that cannot be reached makes this node load its keys, each as Get would.
//
// If ctx ends first, the keys not answered yet get ctx.Err(), and the fills already started
// go on for their other callers, as Get's do. Per-key errors are those of Get.
func (g *Group) GetMany(ctx context.Context, keys []string) []Item {
	items := make([]Item, len(keys))
	m := manyGet{g: g, ctx: ctx, items: items}
	m.lookup(keys)
	if ctx.Err() != nil {
		for _, i := range m.missed {
			items[i].Err = ctx.Err()
		}
	} else {
		m.plan(keys)
		m.run()
	}
	for _, i := range m.missed {
		g.sizer.observe(keys[i], observedLen(items[i].Result, items[i].Err))
	}
	for _, d := range m.dups {
		items[d.dup] = items[d.first]
	}
	return items
}

// manyGet is one GetMany under way.
type manyGet struct {
	g     *Group
	ctx   context.Context
	items []Item

	missed []int // the keys (first of each) that missed both caches
	dups   []struct{ dup, first int }
	// The blocking steps, each setting its item: fills are the local loads and the fetches
	// from plain Peers; waits are the fills a batch started and those another caller drives.
	// Each list has getManyWorkers goroutines of its own, so that slow local loads do not hold
	// back the settling of a batch that has been answered, which concurrent Gets of its keys
	// may be waiting for, nor the other way round.
	fills, waits []manyTask
}

// manyTask is one blocking step of a GetMany. A task that must run drives a fill that
// GetMany started, and runs even after ctx ended (it then hands the fill to a goroutine);
// the others are skipped then.
type manyTask struct {
	item int
	must bool
	do   func() (Result, error)
}

// lookup answers the keys found in the caches, counts each distinct key as a Get, and
// records the misses and the keys listed twice.
func (m *manyGet) lookup(keys []string) {
	g, s := m.g, m.g.stats.stripe()
	first := make(map[string]int, len(keys))
	for i, key := range keys {
		if key == "" {
			m.items[i].Err = ErrInvalidKey
			continue
		}
		if j, seen := first[key]; seen {
			m.dups = append(m.dups, struct{ dup, first int }{i, j})
			continue
		}
		first[key] = i
		var e entry
		if ttl, src, hit := g.lookup(key, &e); hit {
			s.get[src].Add(1)
			g.sizer.observe(key, len(e.value))
			m.items[i].Result, m.items[i].Err = g.answer(s, &e, ttl, src)
			continue
		}
		s.get[miss].Add(1)
		m.missed = append(m.missed, i)
	}
}

// plan sorts the missed keys by owner: a task per local load and per fetch from a plain
// Peer, and per owner that is a BatchPeer, fills started now whose fetches go in one batch.
func (m *manyGet) plan(keys []string) {
	g := m.g
	var batches []*ownerBatch
	byOwner := map[BatchPeer]*ownerBatch{}
	picker := g.peers.Load()
	for _, i := range m.missed {
		key := keys[i]
		var peer Peer
		if picker != nil {
			if p, ok := (*picker).PickPeer(key); ok {
				peer = p
			}
		}
		if g.main.grace > 0 && m.hasStale(key) {
			// An expired value kept for the stale settings: the key is answered as Get
			// answers it (stale.go), on its own.
			ctx := m.ctx
			m.fills = append(m.fills, manyTask{item: i, do: func() (Result, error) { return g.fillOrStale(ctx, key, false) }})
			continue
		}
		if bp, ok := peer.(BatchPeer); ok && reflect.TypeOf(bp).Comparable() {
			b := byOwner[bp]
			if b == nil {
				b = &ownerBatch{peer: bp}
				byOwner[bp] = b
				batches = append(batches, b)
			}
			b.items = append(b.items, i)
			continue
		}
		m.addFill(i, key, peer)
	}
	for _, b := range batches {
		if len(b.items) == 1 { // a batch of one is a fetch
			m.addFill(b.items[0], keys[b.items[0]], b.peer)
			continue
		}
		m.startBatch(b, keys)
	}
}

// hasStale reports whether the main cache keeps an expired value of key that the group's
// stale settings may serve.
func (m *manyGet) hasStale(key string) bool {
	var e entry
	_, ok := m.g.main.stale(key, &e)
	return ok
}

// addFill adds a task that fills key as Get does: from peer, or locally when peer is nil.
func (m *manyGet) addFill(i int, key string, peer Peer) {
	f, ctx := &m.g.flights, m.ctx
	k := flightKey{key: key, remote: peer != nil}
	m.fills = append(m.fills, manyTask{item: i, do: func() (Result, error) { return f.do(ctx, k, peer) }})
}

// startBatch joins or starts the fills of b's keys. The fills it starts fetch through b (as
// an AsyncPeer), which collects them and sends them to the owner in one FetchBatch; the fills
// already running (another Get's) are only waited for.
func (m *manyGet) startBatch(b *ownerBatch, keys []string) {
	f := &m.g.flights
	led := make([]*call, 0, len(b.items))
	ledItems := make([]int, 0, len(b.items))
	f.mu.Lock()
	for _, i := range b.items {
		k := flightKey{key: keys[i], remote: true}
		if c, ok := f.m[k]; ok {
			done := c.join()
			m.waits = append(m.waits, manyTask{item: i, do: func() (Result, error) { return c.wait(m.ctx, done) }})
			continue
		}
		led = append(led, f.add(k, b))
		ledItems = append(ledItems, i)
	}
	f.mu.Unlock()
	for j, c := range led {
		res, err, settled := f.begin(m.ctx, c)
		if settled {
			m.items[ledItems[j]].Result, m.items[ledItems[j]].Err = res, err
			continue
		}
		m.waits = append(m.waits, manyTask{item: ledItems[j], must: true, do: func() (Result, error) {
			return f.finish(m.ctx, c)
		}})
	}
	if len(b.keys) > 0 {
		b.values = context.WithoutCancel(m.ctx)
		go b.send(m.g.name)
	}
}

// run runs the fills and the waits, each list on up to getManyWorkers goroutines.
func (m *manyGet) run() {
	var wg sync.WaitGroup
	for _, tasks := range [2][]manyTask{m.fills, m.waits} {
		var next atomic.Int64
		for range min(len(tasks), getManyWorkers) {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(len(tasks)); i = next.Add(1) - 1 {
					m.runTask(tasks[i])
				}
			})
		}
	}
	wg.Wait()
}

// runTask runs t and sets its item, unless ctx has ended and t need not run.
func (m *manyGet) runTask(t manyTask) {
	it := &m.items[t.item]
	if !t.must && m.ctx.Err() != nil {
		it.Err = m.ctx.Err()
		return
	}
	it.Result, it.Err = t.do()
}

// begin is the start of lead for a fill that GetMany drives: it looks in the cache again and
// starts the slow call. settled reports that the fill is complete already (found in the
// cache, or a panic), with its result; otherwise finish waits for it.
func (f *flights) begin(ctx context.Context, c *call) (res Result, err error, settled bool) {
	settled = true // what a panic leaves, with its error (recoverFill)
	defer f.recoverFill(c, &res, &err)
	if res, err, found := f.fill.cached(c.key); found {
		res, err = f.complete(c, res, err)
		return res, err, true
	}
	f.start(ctx, c)
	return Result{}, nil, false
}

// finish is the rest of lead for a fill begin started: it waits for the slow call's outcome
// and settles it, or leaves the wait to a goroutine once ctx ends.
func (f *flights) finish(ctx context.Context, c *call) (res Result, err error) {
	defer f.recoverFill(c, &res, &err)
	return f.await(ctx, c)
}

// ownerBatch gathers the fetches from one owner that a GetMany started and sends them in one
// FetchBatch. The fills see it as their owner, an AsyncPeer: their fetch is registered by
// FetchFunc (on the GetMany's goroutine, before send runs) and answered when the batch is.
type ownerBatch struct {
	peer  BatchPeer
	items []int // the GetMany items of the keys this owner owns

	keys     []string             // the keys whose fetch was started
	dones    []func(Value, error) // their fills' completions, in the order of keys
	deadline time.Time            // the latest of their deadlines
	values   context.Context      // the GetMany's context values, without its cancellation
}

var _ AsyncPeer = (*ownerBatch)(nil)

// Fetch is the owner's: a fill that fetches through the batch does so with FetchFunc.
func (b *ownerBatch) Fetch(ctx context.Context, group, key string) (Value, error) {
	return b.peer.Fetch(ctx, group, key)
}

// FetchFunc adds key to the batch; done receives its answer when the batch is answered.
func (b *ownerBatch) FetchFunc(_, key string, deadline time.Time, done func(Value, error)) {
	b.keys = append(b.keys, key)
	b.dones = append(b.dones, done)
	if deadline.After(b.deadline) {
		b.deadline = deadline
	}
}

// send asks the owner for the batch's keys and hands each fill its answer; a panic in
// FetchBatch fails the keys it did not answer with an error matching ErrLoaderPanic, as a
// panic in Fetch would. (A fill's completion takes only its first outcome.)
func (b *ownerBatch) send(group string) {
	ctx, cancel := context.WithDeadline(b.values, b.deadline)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err := newPanicError(r)
			for _, done := range b.dones {
				done(Value{}, err)
			}
		}
	}()
	results := b.peer.FetchBatch(ctx, group, b.keys)
	for i, done := range b.dones {
		if i < len(results) {
			done(results[i].Value, results[i].Err)
			continue
		}
		done(Value{}, fmt.Errorf("%w: the owner's batch answered %d of %d keys", ErrPeerUnavailable, len(results), len(b.keys)))
	}
}
