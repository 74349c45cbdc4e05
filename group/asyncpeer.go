package group

import "time"

// AsyncPeer is a Peer whose transport can complete a fetch without a goroutine blocked on it,
// as a multiplexed connection's reader can. When a key's owner implements it, the fill sends
// the fetch with FetchFunc and its first caller waits for the answer directly: the fetch
// costs no goroutine of its own, where a Peer's blocking Fetch costs one whenever the first
// caller's context can end. Singleflight, the
// load timeout and a caller that leaves on its context work as with Fetch (if the first
// caller leaves, a goroutine takes over the wait for the others, as for any fill).
//
// The contract, for an implementation:
//   - FetchFunc must not block: it sends the request, or fails at once;
//   - done is called exactly once, with what Fetch would return (the same errors keep the
//     same meaning: ErrNotFound, ErrPeerUnavailable only when the owner could not be reached,
//     anything else the owner's verdict), and at the latest shortly after deadline;
//   - done runs on the transport's goroutine (or on FetchFunc's caller's, when the request
//     fails before it is sent): it must not block, and it does not call back into the
//     transport; the Group only hands the outcome over (and a Value's bytes pass to the
//     Group, as Fetch's do);
//   - deadline is the fill's (its LoadTimeout from the start): an answer that has not come by
//     then is reported as that deadline's end (an error wrapping context.DeadlineExceeded),
//     not as ErrPeerUnavailable, so that a slow origin is not asked twice.
//
// FetchFunc carries no context: the first caller's context values do not reach the
// transport, which a blocking Fetch's context would carry.
type AsyncPeer interface {
	Peer
	FetchFunc(group, key string, deadline time.Time, done func(Value, error))
}

// asyncFiller is a filler that can start a slow call without blocking: the Group, for a fetch
// from an AsyncPeer.
type asyncFiller interface {
	// slowAsync starts c's slow call and reports whether it could; c.deliverAsync receives
	// the outcome, once. It makes no closure when it cannot: most fills are not async.
	slowAsync(c *call) bool
}

func (g *Group) slowAsync(c *call) bool {
	p, ok := c.peer.(AsyncPeer)
	if !ok {
		return false
	}
	p.FetchFunc(g.name, c.key.key, c.ctx.deadline, c.deliverAsync)
	return true
}

// deliverAsync is an AsyncPeer's done callback for c.
func (c *call) deliverAsync(v Value, err error) { c.deliver(outcome{v: v, err: err}) }

// startAsync starts c's slow call without a goroutine when the filler can, and reports
// whether it did; the outcome is delivered like callSlow's, a panic in FetchFunc included.
func (f *flights) startAsync(c *call) (started bool) {
	af, ok := f.fill.(asyncFiller)
	if !ok {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			c.deliver(outcome{err: newPanicError(r)})
			started = true
		}
	}()
	return af.slowAsync(c)
}
