package peers

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// The ring view. memberlist's callbacks copy each event into an eventQueue and return; once
// membership has been quiet for RebuildQuiet, rebuildLoop takes the queued events and
// view.next applies them, in order, to the current view: the member table first, then a
// Ring of the alive members and a peer for each. The result is swapped in atomically, so
// PickPeer reads it without a lock.

// departedRetention is how long a member that left or died stays listed by Members, so that an
// operator looking at /cluster sees what just happened.
const departedRetention = 5 * time.Minute

// nodeEvent is a copy of what memberlist reported about a node.
type nodeEvent struct {
	left bool   // NotifyLeave: the node left or died; otherwise NotifyJoin or NotifyUpdate
	name string // memberlist's node name, which is the ring's member name
	addr string // gossip host:port
	meta []byte // the node's nodeMeta, as it gossips it
}

// view is one immutable snapshot of the ring and the members: what PickPeer, Members and the
// seed joins read, and what the next rebuild starts from.
type view struct {
	ring     *Ring
	peers    []*wirePeer          // by ring index; nil for this node
	members  []Member             // every known member, sorted by name, Share filled
	departed map[string]time.Time // when each listed member that is not Alive left or died
	boots    map[string]string    // the boot identifier each listed member gossips, if any

	// The ring before the last change of ownership, or prevWithoutSelf: this ring less this
	// node; and when it changed (zero: never). Who may still hold a key in memory (warm.go).
	prevRing        *Ring
	prevWithoutSelf bool
	changedAt       time.Time
}

// startView is the view New begins from: this node is the only member, and there is no ring
// until the first rebuild builds it.
func startView(self Member) *view {
	self.State, self.Self = Alive, true
	return &view{ring: NewRing(nil), members: []Member{self}}
}

// next applies events, in the order memberlist reported them, to v and returns the view that
// follows: v itself is not modified. It reports whether ownership changed (the ring's members,
// or the address of a member's peer), and the members it kept out of the ring because their
// metadata is unusable. newPeer builds the peer of a member whose address is new; peers whose
// member kept its address are carried over, with their pooled connections.
//
// The rules, per event:
//   - about this node: only its addresses change; it stays Alive in its own ring until it
//     stops, even once its own Leave has been gossiped;
//   - NotifyLeave: the member is Dead, or stays Left if it announced its departure;
//   - NotifyJoin or NotifyUpdate whose metadata says "leaving": Left, out of the ring;
//   - NotifyJoin or NotifyUpdate without an HTTP address: Dead, and reported as rejected;
//   - any other NotifyJoin or NotifyUpdate: Alive at the advertised HTTP address, whatever
//     came before (a member that died or left and came back, perhaps from a new address).
//
// A member that left or died is listed for departedRetention after its last event, then
// forgotten. memberlist delivers its events one at a time, in the order it applied them to its
// own table; no event ever says "suspect" (see MemberState).
func (v *view) next(events []nodeEvent, now time.Time, newPeer func(name, addr string) *wirePeer) (
	next *view, changed bool, rejected []error,
) {
	known := make(map[string]Member, len(v.members)+len(events))
	for _, m := range v.members {
		known[m.Name] = m
	}
	departed := maps.Clone(v.departed)
	if departed == nil {
		departed = make(map[string]time.Time)
	}
	boots := maps.Clone(v.boots)
	if boots == nil {
		boots = make(map[string]string)
	}
	for _, ev := range events {
		m, ok := known[ev.name]
		if !ok {
			m = Member{Name: ev.name}
		}
		m.GossipAddr = ev.addr
		meta, err := decodeMeta(ev.meta)
		if err == nil && !ev.left {
			boots[m.Name] = meta.Boot
		}
		switch {
		case m.Self:
			if err == nil {
				m.HTTPAddr = meta.HTTPAddr
			}
		case ev.left:
			if m.State != Left {
				m.State = Dead
			}
			departed[m.Name] = now
		case err != nil:
			rejected = append(rejected, fmt.Errorf("member %s kept out of the ring: %w", m.Name, err))
			m.State = Dead
			departed[m.Name] = now
		case meta.Leaving:
			m.State = Left
			departed[m.Name] = now
		default:
			m.HTTPAddr, m.State = meta.HTTPAddr, Alive
			delete(departed, m.Name)
		}
		known[m.Name] = m
	}
	for name, at := range departed {
		if now.Sub(at) > departedRetention {
			delete(departed, name)
			delete(known, name)
			delete(boots, name)
		}
	}

	var alive []string
	for name, m := range known {
		if m.State == Alive {
			alive = append(alive, name)
		}
	}
	slices.Sort(alive)
	ring := v.ring
	if !slices.Equal(alive, ring.Names()) {
		ring, changed = NewRing(alive), true
	}
	next = &view{ring: ring, peers: make([]*wirePeer, ring.Len()), departed: departed, boots: boots}
	for i, name := range ring.Names() {
		m := known[name]
		if m.Self {
			continue
		}
		if p := v.peer(name); p != nil && p.addr == m.HTTPAddr {
			next.peers[i] = p
			continue
		}
		next.peers[i] = newPeer(name, m.HTTPAddr)
		changed = true
	}
	next.members = make([]Member, 0, len(known))
	for _, m := range known {
		m.Share = ring.Share(m.Name)
		next.members = append(next.members, m)
	}
	slices.SortFunc(next.members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return next, changed, rejected
}

// decodeMeta reads the metadata a member gossips. A member without an HTTP address cannot be
// asked for its keys.
func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("metadata %q: %w", b, err)
	}
	if m.HTTPAddr == "" {
		return m, errors.New("no HTTP address in its metadata")
	}
	return m, nil
}

// peer returns the view's peer of that name, or nil.
func (v *view) peer(name string) *wirePeer {
	if i, ok := slices.BinarySearch(v.ring.Names(), name); ok {
		return v.peers[i]
	}
	return nil
}

// eventQueue carries memberlist's events from its callbacks to the rebuild goroutine.
type eventQueue struct {
	// mu guards events and last. The callbacks append under memberlist's node lock, so the
	// critical sections are a few assignments: a callback never waits on a rebuild.
	mu     sync.Mutex
	events []nodeEvent
	last   time.Time // when the newest queued event arrived; zero when none is queued

	signal chan struct{} // capacity 1: wakes rebuildLoop; a full channel already will
}

func newEventQueue() *eventQueue { return &eventQueue{signal: make(chan struct{}, 1)} }

// push records an event. It runs inside memberlist's callbacks: it never blocks.
func (q *eventQueue) push(ev nodeEvent) {
	q.mu.Lock()
	q.events = append(q.events, ev)
	q.last = time.Now()
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// take returns the queued events, oldest first, and when the newest arrived, and empties the
// queue.
func (q *eventQueue) take() ([]nodeEvent, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	events, last := q.events, q.last
	q.events, q.last = nil, time.Time{}
	return events, last
}

// notify records a membership event. It runs inside memberlist's callbacks: it must not block
// or call memberlist.
func (c *Cluster) notify(ev nodeEvent) { c.events.push(ev) }

// rebuildLoop rebuilds the ring once membership has been quiet for RebuildQuiet (at most
// 10x RebuildQuiet after the first event of a burst).
func (c *Cluster) rebuildLoop() {
	quiet := max(c.cfg.RebuildQuiet, 0)
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.events.signal:
		}
		deadline := time.Now().Add(10 * quiet)
		timer := time.NewTimer(quiet)
	wait:
		for {
			select {
			case <-c.life.Done():
				timer.Stop()
				return
			case <-c.events.signal:
				timer.Reset(max(0, min(quiet, time.Until(deadline))))
			case <-timer.C:
				break wait
			}
		}
		c.rebuild()
	}
}

// rebuild applies the queued events and swaps in the next view.
//
// It runs on one goroutine at a time, which is why it needs no lock: New's, then Start's
// before Start launches rebuildLoop, then rebuildLoop's alone. Two rebuilds at once would
// each take part of the queue and the later swap would drop the other's events.
func (c *Cluster) rebuild() {
	events, last := c.events.take()
	now := time.Now()
	prev := c.view.Load()
	next, changed, rejected := prev.next(events, now, func(name, addr string) *wirePeer {
		return newWirePeer(c, name, addr)
	})
	for _, err := range rejected {
		c.log.Warn("membership event", "err", err)
	}
	// Who owned each key before the change: a new owner asks it first (warm.go).
	next.keepHistory(prev, c.cfg.NodeName, changed, now)
	readmitRestarted(prev, next)   // a new process behind a kept peer starts with a clean record
	c.retire(prev, next)           // before the swap: no Get of the new view finds a departed member's copy
	c.resendBeforeSwap(prev, next) // and none is routed to a returning member still holding a removed value
	c.view.Store(next)
	if !changed {
		return
	}
	select {
	case c.ident.viewChanged <- struct{}{}: // a seed may have gone missing, or come back
	default:
	}
	c.rebuilds.Add(1)
	c.lastRebuild.Store(now.UnixNano())
	if !last.IsZero() {
		c.rebuildLatency.Store(int64(now.Sub(last)))
	}
	c.log.Info("ring rebuilt", "members", next.ring.Names())
}
