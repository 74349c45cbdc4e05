package group

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"weak"
)

// The load timeout costs a fill no timer of its own. Arming a runtime timer wakes an idle
// thread's network poller whenever no earlier timer is pending (a system call and a thread
// woken per fill): with context.WithTimeout per fill, that cost more than the rest of a miss
// (BENCHMARKS.md). Instead, the fills of a group share one timer (deadlines), and a fill's
// context (fillContext) makes a timer only if its slow call asks for a Done channel, as a
// call that does I/O will.

// fillContext is the context a slow call runs under: the first caller's values, the fill's
// deadline, and no cancellation from any caller, as context.WithDeadline(
// context.WithoutCancel(ctx), deadline) would give. That context is made only when Done is
// first called (derived); until then Err compares the clock with the deadline, and Value
// looks through context.WithoutCancel (which hides the caller's cancellation from
// context.Cause and from contexts derived from this one), made only when asked.
type fillContext struct {
	values   context.Context // the first caller's context: only its values count
	deadline time.Time
	made     atomic.Pointer[derivedContext]
	res      reservation // a local load's byte reservation (admit.go), found by Value
}

type derivedContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *fillContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *fillContext) Done() <-chan struct{} { return c.derived().Done() }

func (c *fillContext) Err() error {
	if d := c.made.Load(); d != nil {
		return d.ctx.Err()
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the derived context once there is one, so that a context derived from
// this one finds its cancelCtx there and is cancelled with it without a goroutine of its own.
func (c *fillContext) Value(key any) any {
	if _, ok := key.(reserveKey); ok {
		return &c.res
	}
	if d := c.made.Load(); d != nil {
		return d.ctx.Value(key)
	}
	return context.WithoutCancel(c.values).Value(key)
}

func (c *fillContext) String() string {
	return fmt.Sprintf("group fill context (deadline %v)", c.deadline)
}

func (c *fillContext) derived() context.Context {
	if d := c.made.Load(); d != nil {
		return d.ctx
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(c.values), c.deadline)
	if !c.made.CompareAndSwap(nil, &derivedContext{ctx: ctx, cancel: cancel}) {
		cancel()
		return c.made.Load().ctx
	}
	return ctx
}

// release stops the derived context's timer, if there is one, once the slow call has returned.
func (c *fillContext) release() {
	if d := c.made.Load(); d != nil {
		d.cancel()
	}
}

// deadlines is the one timer of a group's fills. The slow calls in progress are kept in the
// order they started, which, all having the same timeout, is the order of their deadlines:
// the timer is armed for the first one and, when it fires, hands each expired call a timeout
// for outcome. A fill that ends leaves the timer as it is, so that a steady stream of fills
// arms it once per timeout. The timer holds its flights by a weak pointer: while a fill runs,
// its goroutines keep the group reachable; afterwards a pending timer does not, and a group
// nobody uses any more is collected without waiting for it. All fields are under flights.mu.
type deadlines struct {
	timer      *time.Timer
	armed      bool
	head, tail *call // slow calls in progress, oldest first (linked through call.prev, call.next)
}

// track adds c, whose slow call starts now, and arms the timer if it is not.
func (f *flights) track(c *call) {
	d := &f.deadlines
	c.prev, c.next, c.tracked = d.tail, nil, true
	if d.tail != nil {
		d.tail.next = c
	} else {
		d.head = c
	}
	d.tail = c
	if !d.armed {
		f.arm(time.Until(d.head.ctx.deadline))
	}
}

// untrack forgets c once its outcome is taken. It may be called more than once.
func (f *flights) untrack(c *call) {
	if !c.tracked {
		return
	}
	d := &f.deadlines
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		d.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		d.tail = c.prev
	}
	c.prev, c.next, c.tracked = nil, nil, false
}

func (f *flights) arm(after time.Duration) {
	d := &f.deadlines
	d.armed = true
	if d.timer == nil {
		wf := weak.Make(f)
		d.timer = time.AfterFunc(after, func() {
			if f := wf.Value(); f != nil {
				f.expire()
			}
		})
		return
	}
	d.timer.Reset(after)
}

// expire runs when the timer fires: every slow call past its deadline gets a timeout as its
// outcome (unless its answer came first) and is forgotten, and the timer is armed for the
// next deadline, if any.
func (f *flights) expire() {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := &f.deadlines
	d.armed = false
	now := time.Now()
	for d.head != nil && !now.Before(d.head.ctx.deadline) {
		c := d.head
		f.untrack(c)
		if c.deliver(outcome{err: fmt.Errorf("no answer: %w", context.DeadlineExceeded)}) && c.inline {
			go f.settleDelivered(c)
		}
	}
	if d.head != nil {
		f.arm(d.head.ctx.deadline.Sub(now))
	}
}
