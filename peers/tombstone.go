package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Tombstones: removals that did not reach a member, kept on the node that issued them and
// sent again when the member is back. A member cut off by a partition still holds what it
// owned; without them, the removed value would come back from it after the heal, for good
// when the group has no TTL.
//
// A tombstone is kept per member name until the member confirms it or Config.TombstoneTTL
// passes. rebuild sends a member's tombstones before the view that brings it back into the
// ring is swapped in (within tombstoneSendTimeout), so no Get of the new view is routed to an
// owner that still holds a removed value, unless it did not answer in time; retryLoop then
// keeps trying, with a backoff from tombstoneFirstRetry doubling to tombstoneMaxRetry.

const (
	// tombstonesPerMember bounds the key removals kept for one member; beyond it, the member's
	// keys of a group collapse into a purge of that group, which removes at least as much.
	tombstonesPerMember = 1024
	// tombstoneKeyBytesPerMember bounds the bytes of the keys kept for one member, collapsed
	// in the same way.
	tombstoneKeyBytesPerMember = 1 << 20
	// tombstoneMembers bounds the members with tombstones; beyond it, the oldest member's are
	// dropped (and counted as expired).
	tombstoneMembers = 1024

	tombstoneSendTimeout = 2 * time.Second
	tombstoneFirstRetry  = 100 * time.Millisecond
	tombstoneMaxRetry    = 5 * time.Second
)

// tombstone is one removal a member has not confirmed.
type tombstone struct {
	group   string
	key     string // "" for a purge of the group
	expires time.Time
}

// tombstones holds the unconfirmed removals of every member. It is safe for concurrent use.
type tombstones struct {
	ttl time.Duration

	mu       sync.Mutex
	byMember map[string]*memberTombstones

	wake chan struct{} // capacity 1: wakes retryLoop

	recorded, resent, expired, collapsed uint64 // read by stats; mu guards them
}

type memberTombstones struct {
	items    []tombstone
	keyBytes int
	since    time.Time // when the oldest tombstone kept was recorded
	retryAt  time.Time
	backoff  time.Duration
}

func newTombstones(ttl time.Duration) *tombstones {
	return &tombstones{ttl: ttl, byMember: make(map[string]*memberTombstones), wake: make(chan struct{}, 1)}
}

// record remembers that member did not confirm the removal of key from groupName (a purge
// when key is "").
func (t *tombstones) record(member, groupName, key string, now time.Time) {
	if t.ttl <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byMember[member]
	if m == nil {
		if len(t.byMember) >= tombstoneMembers {
			t.dropOldestLocked()
		}
		m = &memberTombstones{since: now, backoff: tombstoneFirstRetry}
		t.byMember[member] = m
	}
	m.retryAt = now // a new removal to send: try soon
	t.recorded++
	expires := now.Add(t.ttl)
	if key != "" {
		for i, x := range m.items {
			if x.group == groupName && (x.key == key || x.key == "") {
				m.items[i].expires = expires // a purge still pending covers it; refresh it
				return
			}
		}
		if len(m.items) < tombstonesPerMember && m.keyBytes+len(key) <= tombstoneKeyBytesPerMember {
			m.items = append(m.items, tombstone{group: groupName, key: key, expires: expires})
			m.keyBytes += len(key)
			return
		}
		t.collapsed++
	}
	// A purge subsumes every key removal of its group, and an older purge.
	m.items = slices.DeleteFunc(m.items, func(x tombstone) bool {
		if x.group == groupName {
			m.keyBytes -= len(x.key)
			return true
		}
		return false
	})
	m.items = append(m.items, tombstone{group: groupName, expires: expires})
}

func (t *tombstones) dropOldestLocked() {
	var oldest string
	var at time.Time
	for name, m := range t.byMember {
		if oldest == "" || m.since.Before(at) {
			oldest, at = name, m.since
		}
	}
	t.expired += uint64(len(t.byMember[oldest].items))
	delete(t.byMember, oldest)
}

// pending returns the tombstones of member that have not expired, dropping the expired
// ones. due reports only members whose retry time has come.
func (t *tombstones) pending(member string, now time.Time, due bool) []tombstone {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byMember[member]
	if m == nil {
		return nil
	}
	t.expireLocked(member, m, now)
	if t.byMember[member] == nil || (due && now.Before(m.retryAt)) {
		return nil
	}
	return slices.Clone(m.items)
}

func (t *tombstones) expireLocked(member string, m *memberTombstones, now time.Time) {
	n := len(m.items)
	m.items = slices.DeleteFunc(m.items, func(x tombstone) bool {
		if now.After(x.expires) {
			m.keyBytes -= len(x.key)
			return true
		}
		return false
	})
	t.expired += uint64(n - len(m.items))
	if len(m.items) == 0 {
		delete(t.byMember, member)
	}
}

// settle drops the tombstones of member that were sent and confirmed (ok[i] for sent[i]) and
// resets its backoff; a failure pushes its next retry back.
func (t *tombstones) settle(member string, sent []tombstone, ok []bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.byMember[member]
	if m == nil {
		return
	}
	failed := false
	for i, s := range sent {
		if !ok[i] {
			failed = true
			continue
		}
		t.resent++
		m.items = slices.DeleteFunc(m.items, func(x tombstone) bool {
			// One recorded again since it was sent (a later expiry) stays: the value may
			// have been removed again after the member confirmed.
			if x == s {
				m.keyBytes -= len(x.key)
				return true
			}
			return false
		})
	}
	if len(m.items) == 0 {
		delete(t.byMember, member)
		return
	}
	if failed {
		m.retryAt = now.Add(jitter(m.backoff))
		m.backoff = min(2*m.backoff, tombstoneMaxRetry)
	} else {
		m.backoff = tombstoneFirstRetry
	}
}

// members returns the names of the members with tombstones.
func (t *tombstones) members() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.byMember))
	for name := range t.byMember {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (t *tombstones) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// TombstoneStats is a snapshot of the tombstones' counters (Stats.Tombstones).
type TombstoneStats struct {
	Pending   int    // removals waiting for a member to come back
	Members   int    // members they are waiting for
	Recorded  uint64 // removals recorded because a member did not confirm them
	Resent    uint64 // removals re-sent and confirmed
	Expired   uint64 // removals dropped unconfirmed after TombstoneTTL (or the member bound)
	Collapsed uint64 // key removals turned into a purge of their group by the bounds
}

func (t *tombstones) stats() TombstoneStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := TombstoneStats{Members: len(t.byMember), Recorded: t.recorded, Resent: t.resent,
		Expired: t.expired, Collapsed: t.collapsed}
	for _, m := range t.byMember {
		st.Pending += len(m.items)
	}
	return st
}

// resend sends p's tombstones to it and settles them; it reports whether all were confirmed.
func (c *Cluster) resend(ctx context.Context, p *wirePeer, items []tombstone) bool {
	if len(items) == 0 {
		return true
	}
	ok := make([]bool, len(items))
	var errs []error
	for i, ts := range items {
		err := p.invalidate(ctx, ts.key == "", ts.group, ts.key)
		if err == nil || errors.Is(err, ErrUnknownGroup) {
			ok[i] = true
			continue
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	c.tombs.settle(p.name, items, ok, time.Now())
	if err := errors.Join(errs...); err != nil {
		c.log.Warn("re-sending removals to a member that missed them", "member", p.name,
			"pending", len(errs), "err", err)
		return false
	}
	c.log.Info("removals re-sent to a member that missed them", "member", p.name, "removals", len(items))
	return true
}

// resendBeforeSwap sends their tombstones to the members that next brings back into the
// ring, before rebuild swaps it in, within tombstoneSendTimeout. It runs on rebuild's
// goroutine; a member that does not confirm in time is left to retryLoop.
func (c *Cluster) resendBeforeSwap(prev, next *view) {
	now := time.Now()
	var wg sync.WaitGroup
	for _, p := range next.peers {
		if p == nil || prev.peer(p.name) == p {
			continue
		}
		items := c.tombs.pending(p.name, now, false)
		if len(items) == 0 {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.life, tombstoneSendTimeout)
			defer cancel()
			c.resend(ctx, p, items)
		})
	}
	wg.Wait()
}

// retryLoop re-sends the tombstones of the alive members whose retry time has come, until
// Leave or Shutdown. It polls every tombstoneFirstRetry while some are kept, and sleeps
// until a new one is recorded otherwise.
func (c *Cluster) retryLoop() {
	timer := time.NewTimer(tombstoneFirstRetry)
	defer timer.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-timer.C:
		case <-c.tombs.wake:
		}
		v := c.view.Load()
		now := time.Now()
		var wg sync.WaitGroup
		members := c.tombs.members()
		for _, name := range members {
			p := v.peer(name)
			items := c.tombs.pending(name, now, true)
			if p == nil || len(items) == 0 {
				continue // not alive in the view: it has to come back first
			}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(c.life, c.cfg.FetchTimeout)
				defer cancel()
				c.resend(ctx, p, items)
			})
		}
		wg.Wait()
		timer.Stop()
		if len(members) > 0 {
			timer.Reset(tombstoneFirstRetry)
		}
	}
}

// IncompleteError is the error of an InvalidateKey or InvalidateGroup that some members did
// not confirm: members the view holds as dead (cut off or crashed, within the five minutes a
// departed member stays listed) count, as do alive members whose wire call failed. Their
// removals are kept as tombstones and re-sent when they are back (Config.TombstoneTTL).
type IncompleteError struct {
	Confirmed   int      // members that confirmed
	Unconfirmed []string // members that did not, sorted
	Err         error    // why the alive ones among them did not
}

func (e *IncompleteError) Error() string {
	msg := fmt.Sprintf("%d of %d peers did not confirm (%v)", len(e.Unconfirmed),
		len(e.Unconfirmed)+e.Confirmed, e.Unconfirmed)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Peers is how many other members the removal was meant for.
func (e *IncompleteError) Peers() int { return e.Confirmed + len(e.Unconfirmed) }
