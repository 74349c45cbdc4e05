package group

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// flightKey names one fill: loading key here, or fetching it from its owner. The two are kept
// apart so that a fetch from a peer never joins a local load, and vice versa, while local Gets
// and requests from peers for the same key share one local load.
type flightKey struct {
	key    string
	remote bool
}

// filler is the Group's side of a fill: what to call and what to do with the answer. flights
// owns the rest (who drives, the timeout, the goroutine, panics) so that loads and fetches
// share it.
type filler interface {
	// cached looks in the caches again for the key of a fill about to start: a fill that
	// ended between the caller's miss and its joining the flights has stored it, and loading
	// it again would make the origin pay twice (golang/groupcache looks again too). When it
	// finds nothing, it counts the fill as started.
	cached(k flightKey) (res Result, err error, found bool)

	// slow is the call that may block: the loader's Load, or the owner's Fetch (c.peer set).
	// It runs under ctx, which carries the load timeout, on a goroutine of its own or, for a
	// first caller whose context never ends, on that caller's (see inline); it may ignore
	// ctx, and it may panic.
	slow(ctx context.Context, c *call) (Value, error)

	// settle turns the outcome of the slow call (or, past the deadline, a timeout error)
	// into what every waiter gets: it counts it and caches what it may, through
	// cacheUnlessStale. ctx is the slow call's. fallback asks for the key's local fill
	// instead, whose result the waiters then get.
	settle(ctx context.Context, c *call, v Value, err error) (res Result, _ error, fallback bool)
}

// call is one fill. Its first caller drives it (see lead); the others wait for done.
type call struct {
	key  flightKey
	peer Peer // the owner a remote fill fetches from; nil for a local load
	// peeked: a local load's value came from the key's previous owner (peek.go), not from
	// the loader; set by the slow call, read when it settles (atomic: a timeout settles
	// while the slow call may still run).
	peeked atomic.Bool

	// done is closed once res and err are final. It is made when a second caller joins: the
	// first one, which drives the fill, does not wait for it, and most fills have no other.
	done chan struct{}
	res  Result
	err  error

	// Under flights.mu:
	waiters   int     // callers sharing this fill, the first included
	completed bool    // res and err are final (complete ran)
	chained   []*call // remote fills whose owner was unreachable, waiting for this local one
	// stale is set by Remove or Purge while the fill runs: its result is still handed to the
	// callers that were already waiting, but it is not cached.
	stale bool

	// The slow call, once started: its context (detached from every caller's, ending at the
	// load timeout), and its outcome, set once (see deliver): the answer, or a timeout from
	// the group's deadline timer, whichever comes first.
	ctx       fillContext
	started   time.Time
	inline    bool // the slow call runs on the first caller's goroutine (see inline)
	delivered atomic.Bool
	outcome   outcome
	answered  chan struct{} // receives once outcome is set

	// Under flights.mu: the slow calls in progress, oldest first (see deadlines).
	prev, next *call
	tracked    bool
}

type outcome struct {
	v   Value
	err error
}

// flights is a singleflight that, unlike golang/groupcache's, survives a panicking fill, bounds
// every fill by the load timeout whether or not the slow call honours its context, and lets
// each caller stop waiting when its own context ends.
//
// A fill costs one goroutine, for the slow call, which may block past every deadline (none for
// a fetch from an AsyncPeer, see below, and none when the first caller's context never ends:
// that caller makes the call itself, see inline); and no timer of its own (see deadlines). The
// first caller waits for the slow call's outcome directly and settles the fill on its own
// goroutine, whose stack the deep cache write finds
// already grown. If that caller leaves, a goroutine takes over the wait, so that the fill
// goes on for the others. A fetch from an AsyncPeer (a multiplexed peer transport) signals its
// completion instead of blocking, and delivers its outcome the same way without a goroutine.
type flights struct {
	fill    filler
	timeout time.Duration // Config.LoadTimeout
	log     *slog.Logger

	mu        sync.Mutex
	m         map[flightKey]*call
	deadlines deadlines
}

// do returns the result of k's fill, starting the fill unless one is running. peer is the
// owner a remote fill fetches from.
func (f *flights) do(ctx context.Context, k flightKey, peer Peer) (Result, error) {
	f.mu.Lock()
	if c, ok := f.m[k]; ok {
		done := c.join()
		f.mu.Unlock()
		return c.wait(ctx, done)
	}
	c := f.add(k, peer)
	f.mu.Unlock()
	return f.lead(ctx, c)
}

// add registers a new fill of k. f.mu must be held.
func (f *flights) add(k flightKey, peer Peer) *call {
	if f.m == nil {
		f.m = make(map[flightKey]*call)
	}
	c := &call{key: k, peer: peer, waiters: 1}
	f.m[k] = c
	return c
}

// join counts one more caller of c and returns the channel closed when c's result is final.
// f.mu must be held.
func (c *call) join() <-chan struct{} {
	c.waiters++
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

// wait returns c's result once done is closed, or ctx.Err() as soon as ctx ends.
func (c *call) wait(ctx context.Context, done <-chan struct{}) (Result, error) {
	select {
	case <-done:
		return c.res, c.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// lead drives the fill c on its first caller's goroutine: it looks in the cache again, starts
// the slow call, waits for its outcome (the answer, or a timeout at the deadline) and settles
// it. If ctx ends first, the caller leaves with ctx.Err() and the fill goes on (see await). A
// panic anywhere in the fill completes it with an error matching ErrLoaderPanic.
func (f *flights) lead(ctx context.Context, c *call) (res Result, err error) {
	defer f.recoverFill(c, &res, &err)
	if res, err, found := f.fill.cached(c.key); found {
		return f.complete(c, res, err)
	}
	if ctx.Done() == nil && !isAsync(c.peer) {
		return f.inline(ctx, c)
	}
	f.start(ctx, c)
	return f.await(ctx, c)
}

// inline makes c's slow call on its first caller's own goroutine, for a caller whose context
// never ends (context.Background, or a drive): such a caller can never leave early, so the
// fill needs no goroutine of its own, nor the two thread wake-ups of handing the call to one
// and back (most of the cost of a miss on an idle machine: BENCHMARKS.md). The load timeout
// still ends the slow call's context and, if the call ignores it, still releases every other
// waiter at the deadline (see expire); only this caller, whose goroutine is the one making the
// call, stays until the call returns, then gets the same timeout. That is golang/groupcache's
// behaviour for every caller; here it is that of a caller that asked for no cancellation.
func (f *flights) inline(ctx context.Context, c *call) (Result, error) {
	c.inline = true
	f.prepare(ctx, c)
	o := f.slowCall(c)
	if c.delivered.CompareAndSwap(false, true) {
		return f.settle(ctx, c, o)
	}
	// The deadline came first: the timer handed the fill a timeout and a goroutine settles
	// it (expire). Take the fill's result when that is done; the answer is dropped.
	f.mu.Lock()
	if c.completed {
		f.mu.Unlock()
		return c.res, c.err
	}
	if c.done == nil {
		c.done = make(chan struct{})
	}
	done := c.done
	f.mu.Unlock()
	<-done
	return c.res, c.err
}

// settleDelivered settles the inline fill c with the outcome delivered to it from elsewhere,
// on a goroutine of its own: the timeout the deadline timer delivered while c's first caller
// is still in the slow call, or the error of a slow call that ended that caller's goroutine.
func (f *flights) settleDelivered(c *call) {
	var res Result
	var err error
	defer f.recoverFill(c, &res, &err)
	res, err = f.settle(context.Background(), c, c.outcome)
}

func isAsync(p Peer) bool {
	_, ok := p.(AsyncPeer)
	return ok
}

// start makes c's slow call on a goroutine of its own, under a context that keeps ctx's values
// but not its cancellation and ends at the load timeout; or, for a fetch from an AsyncPeer,
// sends it without a goroutine (asyncpeer.go).
func (f *flights) start(ctx context.Context, c *call) {
	c.answered = make(chan struct{}, 1)
	f.prepare(ctx, c)
	if f.startAsync(c) {
		return
	}
	go f.callSlow(c)
}

// prepare sets c's slow call's context and tracks its deadline.
func (f *flights) prepare(ctx context.Context, c *call) {
	c.started = time.Now()
	c.ctx.values = ctx
	c.ctx.deadline = c.started.Add(f.timeout)
	f.mu.Lock()
	f.track(c)
	f.mu.Unlock()
}

// callSlow makes c's slow call on the goroutine that start made for it, and delivers its
// outcome.
func (f *flights) callSlow(c *call) { c.deliver(f.slowCall(c)) }

// slowCall makes c's slow call and returns its outcome; a panic in it becomes an error
// matching ErrLoaderPanic. This is the one place where the fill calls the Loader (or a
// blocking Peer) and recovers from it, inline or on a goroutine of its own. A call that ends
// its goroutine instead (runtime.Goexit, as a test's t.Fatal does) never returns: the error
// is delivered from here, and settled on a goroutine of its own when the fill is inline, whose
// first caller, the goroutine that ended, was to settle it.
func (f *flights) slowCall(c *call) (o outcome) {
	returned := false
	defer func() {
		if r := recover(); r != nil {
			o = outcome{err: newPanicError(r)}
		} else if !returned && c.deliver(outcome{err: newPanicError("runtime.Goexit was called")}) && c.inline {
			go f.settleDelivered(c)
		}
		c.ctx.release()
	}()
	o.v, o.err = f.fill.slow(&c.ctx, c)
	returned = true
	return o
}

// deliver hands o to whoever drives c, unless an outcome came first, and reports whether it
// did. An inline fill (see inline) has no answered channel: its first caller takes the
// outcome of its own call, and expire settles a timeout.
func (c *call) deliver(o outcome) bool {
	if !c.delivered.CompareAndSwap(false, true) {
		return false
	}
	c.outcome = o
	if c.answered != nil {
		c.answered <- struct{}{}
	}
	return true
}

// await waits for the slow call's outcome and settles the fill. A slow call that ignores its
// context is cut off at the deadline all the same: the deadline timer delivers a timeout, and
// the call goes on alone, its answer dropped. If ctx ends first, await returns ctx.Err() at
// once and leaves the wait to a goroutine of its own.
func (f *flights) await(ctx context.Context, c *call) (Result, error) {
	done := ctx.Done()
	if done == nil {
		// A context that never ends (context.Background, or a drive): a plain receive is
		// cheaper than a select.
		<-c.answered
		return f.settle(ctx, c, c.outcome)
	}
	select {
	case <-c.answered:
		return f.settle(ctx, c, c.outcome)
	case <-done:
		go f.drive(c)
		return Result{}, ctx.Err()
	}
}

// drive takes over the wait for c's slow call from a first caller that left.
func (f *flights) drive(c *call) {
	var res Result
	var err error
	defer f.recoverFill(c, &res, &err)
	res, err = f.await(context.Background(), c)
}

// settle hands the slow call's outcome to the Group and completes the fill with what it
// makes of it, or falls back to the key's local fill.
func (f *flights) settle(ctx context.Context, c *call, o outcome) (Result, error) {
	res, err, fallback := f.fill.settle(&c.ctx, c, o.v, o.err)
	if fallback {
		return f.fallBack(ctx, c)
	}
	return f.complete(c, res, err)
}

// fallBack chains the remote fill c to the local fill of its key, which it joins or starts:
// c's waiters get that fill's result, and the local load is shared with the local Gets of the
// key and with the other fetches that fell back. The local fill has its own timeout.
func (f *flights) fallBack(ctx context.Context, c *call) (Result, error) {
	k := flightKey{key: c.key.key}
	f.mu.Lock()
	f.untrack(c)
	if lc, ok := f.m[k]; ok {
		lc.chained = append(lc.chained, c)
		done := lc.join()
		f.mu.Unlock()
		return lc.wait(ctx, done)
	}
	lc := f.add(k, nil)
	lc.chained = append(lc.chained, c)
	f.mu.Unlock()
	return f.lead(ctx, lc)
}

// complete makes res and err c's result and that of the fills chained to it, releases their
// waiters and forgets them, so that the next caller starts a new fill. Only its first call
// for c counts; later ones return the result already given.
func (f *flights) complete(c *call, res Result, err error) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.untrack(c)
	if c.completed {
		return c.res, c.err
	}
	f.release(c, res, err)
	for _, d := range c.chained {
		if !d.completed {
			f.release(d, res, err)
		}
	}
	return res, err
}

// release gives c its result and wakes its waiters. f.mu must be held.
func (f *flights) release(c *call, res Result, err error) {
	if f.m[c.key] == c {
		delete(f.m, c.key)
	}
	c.res, c.err, c.completed = res, err, true
	if c.done != nil {
		close(c.done)
	}
}

// recoverFill, deferred by whoever drives c, turns a panic in the fill's own steps (looking
// in the cache, settling, storing) into c's result: every waiter is released with an error
// matching ErrLoaderPanic and the next caller starts a new fill. A panic in the slow call is
// the slow call's outcome instead (see callSlow), which the Group counts as a loader panic.
func (f *flights) recoverFill(c *call, res *Result, err *error) {
	r := recover()
	if r == nil {
		return
	}
	pe := newPanicError(r)
	pe.outsideLoader = true
	*res, *err = f.complete(c, Result{}, fmt.Errorf("filling %q: %w", c.key.key, pe))
	f.log.Error("fill panicked", "key", c.key.key, "remote", c.key.remote, "panic", r, "stack", string(pe.stack))
}

// invalidate marks the fills of key (or of every key, when all is set) stale and forgets
// them, so that later callers start a fresh fill and the running one caches nothing.
func (f *flights) invalidate(key string, all bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !all {
		for _, k := range [...]flightKey{{key, false}, {key, true}} {
			if c, ok := f.m[k]; ok {
				c.stale = true
				delete(f.m, k)
			}
		}
		return
	}
	for k, c := range f.m {
		c.stale = true
		delete(f.m, k)
	}
}

// cacheUnlessStale runs store while holding mu, unless the call went stale: a Remove either
// happens before (and store is skipped) or after (and removes what store wrote).
func (f *flights) cacheUnlessStale(c *call, store func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !c.stale {
		store()
	}
}

// panicError carries a recovered panic. It matches ErrLoaderPanic, wherever in the fill the
// panic happened; the stack is kept for the log, never sent to clients.
type panicError struct {
	value         any
	stack         []byte
	outsideLoader bool // in the fill's own code, not in the loader's Load or the peer's Fetch
}

func newPanicError(r any) *panicError { return &panicError{value: r, stack: debug.Stack()} }

func (e *panicError) Error() string {
	if e.outsideLoader {
		return fmt.Sprintf("fill panicked outside the loader: %v", e.value)
	}
	return fmt.Sprintf("%v: %v", ErrLoaderPanic, e.value)
}

func (e *panicError) Is(target error) bool { return target == ErrLoaderPanic }
