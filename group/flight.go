package group

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
)

// flightKey names one fill: loading key here, or fetching it from its owner. The two are kept
// apart so that a fetch from a peer never joins a local load, and vice versa, while local Gets
// and requests from peers for the same key share one local load.
type flightKey struct {
	key    string
	remote bool
}

// call is one fill in progress. Its result fields are written once, before done is closed.
type call struct {
	done    chan struct{}
	res     Result
	err     error
	waiters int // callers sharing this fill, the first included (under flights.mu)

	// stale is set (under flights.mu) by Remove or Purge while the fill runs: its result is
	// still handed to the callers that were already waiting, but it is not cached.
	stale bool
}

// flights is a singleflight that, unlike golang/groupcache's, survives a panicking fill and
// lets each caller stop waiting when its own context ends. The fill runs in its own goroutine
// under its own context, so it goes on for the callers that remain.
type flights struct {
	mu sync.Mutex
	m  map[flightKey]*call
}

// do returns the result of fill for k, starting fill unless one is already running. The
// boolean reports whether this caller joined a fill that another caller started.
//
// fill receives its call so that it can consult stale (under mu) before caching. A panic in
// fill becomes ErrLoaderPanic for every waiter.
func (f *flights) do(ctx context.Context, k flightKey, fill func(c *call) (Result, error)) (Result, error, bool) {
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[flightKey]*call)
	}
	c, joined := f.m[k]
	if joined {
		c.waiters++
	} else {
		c = &call{done: make(chan struct{}), waiters: 1}
		f.m[k] = c
		go f.run(k, c, fill)
	}
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.res, c.err, joined
	case <-ctx.Done():
		return Result{}, ctx.Err(), joined
	}
}

func (f *flights) run(k flightKey, c *call, fill func(c *call) (Result, error)) {
	growStack(0) // see growStack
	defer func() {
		if r := recover(); r != nil {
			c.res, c.err = Result{}, &panicError{value: r, stack: debug.Stack()}
		}
		f.mu.Lock()
		if f.m[k] == c {
			delete(f.m, k)
		}
		f.mu.Unlock()
		close(c.done)
	}()
	c.res, c.err = fill(c)
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

// panicError carries a recovered panic. It matches ErrLoaderPanic; the stack is kept for the
// log, never sent to clients.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string        { return fmt.Sprintf("%v: %v", ErrLoaderPanic, e.value) }
func (e *panicError) Is(target error) bool { return target == ErrLoaderPanic }

func debugStack() []byte { return debug.Stack() }

// growStack grows the calling goroutine's stack to about 16 KiB while it is one frame deep.
// A fill goroutine starts with a small stack and otter's write path is deep: grown there, the
// stack is copied several times, frame by frame, which was half the cost of a miss
// (BenchmarkGetMiss: 8.7 µs before, 4.2 µs after).
//
//go:noinline
func growStack(i int) byte {
	var pad [8 << 10]byte
	pad[i] = 1
	return pad[(i+1)%len(pad)]
}
