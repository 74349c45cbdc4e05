package group

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Admission control: a flood of distinct cold keys must not reach the origin with the
// clients' concurrency. Every loader call on this node (a local Get's, a peer's request's, a
// fallback's or a background refresh's) first takes one of Config.MaxConcurrentLoads slots;
// past them it waits in a FIFO queue of Config.MaxQueuedLoads, and past the queue it fails at
// once with ErrOverloaded. Hits never pass here, nor do fetches from a key's owner: the owner
// admits (or refuses) its own loads, and its refusal travels back over the peer wire as
// ErrOverloaded, which the asking node hands to its client instead of loading the key itself.
//
// Config.MaxLoadingBytes adds a byte budget. A value's size is often unknown until the loader
// returns it, so each load is admitted with an estimate, the moving mean of the sizes this
// group loaded recently, and only while the charges fit the budget. A loader that learns the
// size first (the http loader from Content-Length, the file loader from the file's size, both
// as a buffer of unknown size grows) raises its load's charge with ReserveBytes before it
// allocates, and stops with ErrOverloaded when that does not fit: the bytes of values being
// loaded then stay within the budget even on a fresh node whose estimate knows nothing.

// ErrOverloaded means the group refused to start a load: Config.MaxConcurrentLoads loads were
// in progress and Config.MaxQueuedLoads more were waiting. Nothing was asked of the origin;
// the client should retry later (HTTP 503 "overloaded" with Retry-After). It is never
// remembered (ErrorTTL) and never counted as a load error.
var ErrOverloaded = errors.New("too many loads in progress")

// AdmissionStats is a snapshot of a group's admission control.
type AdmissionStats struct {
	InFlight     int64 // loader calls in progress on this node
	Queued       int64 // loads waiting for a slot or for the byte budget
	LoadingBytes int64 // bytes charged to the loads in progress (their estimated sizes)
	Rejected     int64 // loads refused with ErrOverloaded since start
	Waited       int64 // loads that had to queue before they started, since start
}

// admission is one group's bound on its loader calls. Its zero value admits everything.
type admission struct {
	maxLoads  int   // 0: unbounded
	maxQueued int   // 0: no queue
	maxBytes  int64 // 0: no byte budget

	mu       sync.Mutex
	inFlight int
	charged  int64          // sum of the charges of the loads in progress
	queue    []*admitWaiter // oldest first

	// estimate is the charge of a new load: a moving mean (1/8 weight to the newest) of
	// the sizes of the values loaded so far, zero before the first.
	estimate atomic.Int64
	// loading mirrors inFlight for Stats when the admission is off and takes no lock.
	loading          atomic.Int64
	rejected, waited atomic.Int64
}

type admitWaiter struct {
	ready   chan struct{} // closed when granted
	granted bool          // under admission.mu
	charge  int64         // set when granted
}

func newAdmission(cfg Config) *admission {
	return &admission{maxLoads: cfg.MaxConcurrentLoads, maxQueued: cfg.MaxQueuedLoads, maxBytes: cfg.MaxLoadingBytes}
}

func (a *admission) off() bool { return a.maxLoads == 0 && a.maxBytes == 0 }

// fits reports whether one more load, charged charge, may start now. a.mu must be held.
func (a *admission) fits(charge int64) bool {
	if a.maxLoads > 0 && a.inFlight >= a.maxLoads {
		return false
	}
	return a.maxBytes == 0 || a.inFlight == 0 || a.charged+charge <= a.maxBytes
}

// acquire admits one load, waiting in the queue while the bounds are reached and ctx lasts.
// It returns the load's charge, to hand back to release, or ErrOverloaded (wrapped) when the
// queue is full or ctx ended before a slot freed.
func (a *admission) acquire(ctx context.Context) (charge int64, err error) {
	if a.off() {
		a.loading.Add(1)
		return 0, nil
	}
	charge = a.estimate.Load()
	a.mu.Lock()
	if len(a.queue) == 0 && a.fits(charge) {
		a.inFlight++
		a.charged += charge
		a.mu.Unlock()
		a.loading.Add(1)
		return charge, nil
	}
	if len(a.queue) >= a.maxQueued {
		a.mu.Unlock()
		a.rejected.Add(1)
		return 0, fmt.Errorf("%w (%d loading, %d queued)", ErrOverloaded, a.maxLoads, a.maxQueued)
	}
	w := &admitWaiter{ready: make(chan struct{})}
	a.queue = append(a.queue, w)
	a.mu.Unlock()
	a.waited.Add(1)

	select {
	case <-w.ready:
		a.loading.Add(1)
		return w.charge, nil
	case <-ctx.Done():
	}
	a.mu.Lock()
	if w.granted { // granted while ctx ended: the slot is ours, use it
		a.mu.Unlock()
		a.loading.Add(1)
		return w.charge, nil
	}
	for i, q := range a.queue {
		if q == w {
			a.queue = append(a.queue[:i], a.queue[i+1:]...)
			break
		}
	}
	a.mu.Unlock()
	a.rejected.Add(1)
	return 0, fmt.Errorf("%w: no load slot freed in time: %w", ErrOverloaded, ctx.Err())
}

// release ends a load admitted with charge, whose value was size bytes (0 if it failed), and
// admits the queued loads that now fit, oldest first.
func (a *admission) release(charge int64, size int, loaded bool) {
	a.loading.Add(-1)
	if a.off() {
		return
	}
	if loaded {
		est := a.estimate.Load()
		if est == 0 {
			est = int64(size)
		} else {
			est += (int64(size) - est) / 8
		}
		a.estimate.Store(est)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inFlight--
	a.charged -= charge
	est := a.estimate.Load()
	for len(a.queue) > 0 && a.fits(est) {
		w := a.queue[0]
		a.queue[0] = nil
		a.queue = a.queue[1:]
		w.granted, w.charge = true, est
		a.inFlight++
		a.charged += est
		close(w.ready)
	}
}

func (a *admission) stats() AdmissionStats {
	a.mu.Lock()
	queued, charged := len(a.queue), a.charged
	a.mu.Unlock()
	return AdmissionStats{
		InFlight:     a.loading.Load(),
		Queued:       int64(queued),
		LoadingBytes: charged,
		Rejected:     a.rejected.Load(),
		Waited:       a.waited.Load(),
	}
}

// load is a local fill's slow call: the loader's Load, once admitted. ctx is the fill's, so a
// queued load waits at most until the load timeout. The loader finds the load's reservation
// through ctx (ReserveBytes).
func (g *Group) load(ctx context.Context, c *call) (v Value, err error) {
	charge, err := g.admit.acquire(ctx)
	if err != nil {
		return Value{}, err
	}
	c.ctx.res = reservation{a: g.admit, charge: charge}
	defer func() { g.admit.release(c.ctx.res.charge, len(v.Bytes), err == nil) }()
	return g.loader.Load(ctx, c.key.key)
}

// reservation is one admitted load's charge against MaxLoadingBytes: the estimate it was
// admitted with, raised by its loader when it learns the value's size (ReserveBytes).
type reservation struct {
	a      *admission
	charge int64 // under a.mu once the load runs
}

// reserveKey finds a load's reservation in its context (fillContext.Value).
type reserveKey struct{}

// ReserveBytes tells the group that the load running under ctx is about to hold n bytes: a
// loader calls it when it learns a value's size before reading it (an HTTP origin's
// Content-Length, a file's size) and as a buffer of unknown final size grows. It raises the
// load's charge against Config.MaxLoadingBytes to n, so that the bytes of values being loaded
// are bounded by what they really are, not only by the estimate a load is admitted with. When
// n does not fit the budget beside the other loads in progress, it returns ErrOverloaded
// (wrapped) and the loader should stop and return that error: the client gets 503
// "overloaded" and retries, rather than the node holding more than the budget. A load alone
// is always allowed its bytes (up to the loader's own limit). Outside a group's load, or
// without a byte budget, it does nothing and returns nil.
func ReserveBytes(ctx context.Context, n int64) error {
	r, _ := ctx.Value(reserveKey{}).(*reservation)
	if r == nil || r.a == nil {
		return nil
	}
	return r.a.grow(r, n)
}

// grow raises r's charge to n if it fits the byte budget (see ReserveBytes).
func (a *admission) grow(r *reservation, n int64) error {
	if a.maxBytes == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if n <= r.charge {
		return nil
	}
	if a.inFlight > 1 && a.charged-r.charge+n > a.maxBytes {
		a.rejected.Add(1)
		return fmt.Errorf("%w: a value of %d bytes does not fit max_loading_bytes (%d) beside the %d bytes of %d other loads",
			ErrOverloaded, n, a.maxBytes, a.charged-r.charge, a.inFlight-1)
	}
	a.charged += n - r.charge
	r.charge = n
	return nil
}

// validateIsolation checks the admission, failure-memory and stale fields of c.
func (c Config) validateIsolation() []error {
	var errs []error
	if c.MaxConcurrentLoads < 0 {
		errs = append(errs, FieldErrorf("MaxConcurrentLoads", "must be >= 0 (0: unbounded), got %d", c.MaxConcurrentLoads))
	}
	if c.MaxQueuedLoads < 0 {
		errs = append(errs, FieldErrorf("MaxQueuedLoads", "must be >= 0 (0: no queue), got %d", c.MaxQueuedLoads))
	}
	if c.MaxLoadingBytes < 0 {
		errs = append(errs, FieldErrorf("MaxLoadingBytes", "must be >= 0 (0: no byte budget), got %d", c.MaxLoadingBytes))
	}
	if c.ErrorTTL < 0 {
		errs = append(errs, FieldErrorf("ErrorTTL", "must be >= 0s (0s: failures not remembered), got %v", c.ErrorTTL))
	}
	if c.MaxErrorTTL < 0 {
		errs = append(errs, FieldErrorf("MaxErrorTTL", "must be >= 0s (at most ErrorTTL: no backoff), got %v", c.MaxErrorTTL))
	}
	if c.StaleWhileRevalidate < 0 {
		errs = append(errs, FieldErrorf("StaleWhileRevalidate", "must be >= 0s (0s: off), got %v", c.StaleWhileRevalidate))
	}
	if c.StaleIfError < 0 {
		errs = append(errs, FieldErrorf("StaleIfError", "must be >= 0s (0s: off), got %v", c.StaleIfError))
	}
	return errs
}
