package peers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// Outlier detection (Envoy's, passive, with an active probe to end it): a peer whose fetches
// fail as unreachable PeerEjectAfter times in a row is ejected from this node's routing.
// PickPeer then answers "this node" for its keys, which the Group loads itself, with no wait
// at all, where each fetch to the peer would first pay a dial timeout or a ping timeout; the
// fetches still in flight to it are failed at once (their callers load the keys themselves,
// one load per key). After PeerEjectFor a probe (a ping over the peer wire, which dials when
// needed) asks the peer; if it answers, the peer takes its keys back (one more failure
// ejects it again at once, as a circuit breaker's half-open state would); if not, it stays
// ejected for twice as long, up to 10x PeerEjectFor. Requests are never the probe: no
// client waits on a peer that is known to be down.
//
// Only "unreachable" counts: refused, reset, a dial or upgrade timeout, no pong, a protocol
// violation, shutting_down. An owner's verdict (not found, its load failed or timed out)
// proves it is alive and resets the count, and so does a fetch that outlives the caller's
// own deadline while the owner keeps answering pings: that is a slow origin, which loading
// here would ask twice. overloaded does not count either: the owner sheds load, and moving
// all its keys onto every other node's origin would make the overload worse.
//
// Ejection is this node's view alone, never gossiped: memberlist still decides membership,
// and a member it declares dead leaves the ring whatever its ejection (its peer, and the
// record, go with it). A member that restarts at the same address before it is declared dead
// gossips a new boot identifier, and is readmitted at once.

// outlier is one peer's failure count and ejection. Its fields are atomics: the fetch paths
// of many goroutines update it, and PickPeer reads ejected on every miss.
type outlier struct {
	failures  atomic.Int32  // consecutive fetches that found the peer unreachable
	ejected   atomic.Bool   // PickPeer routes the peer's keys to this node
	until     atomic.Int64  // Unix nanoseconds of the next probe while ejected
	ejections atomic.Int32  // ejections in a row, with no answered fetch between: the backoff
	gen       atomic.Uint64 // bumped by each ejection and readmission: a probe of an older one stops
}

// maxEjectFactor caps the backoff of a peer that stays unreachable: at most 10x PeerEjectFor
// between probes.
const maxEjectFactor = 10

// observe counts the outcome of a fetch from p: err is what result returns to the Group
// (nil, a verdict, ErrPeerUnavailable or the caller's own deadline), wireErr the wire's.
func (p *wirePeer) observe(err, wireErr error) {
	after := p.c.cfg.PeerEjectAfter
	if after < 0 {
		return
	}
	switch {
	case err == nil || !errors.Is(err, group.ErrPeerUnavailable):
		if p.out.failures.Load() != 0 {
			p.out.failures.Store(0)
		}
		if err == nil || errors.As(err, new(*RemoteError)) {
			if p.out.ejections.Load() != 0 {
				p.out.ejections.Store(0)
			}
		}
	case wire.CodeOf(wireErr) == wire.CodeOverloaded || errors.Is(wireErr, wire.ErrOverload):
	default:
		if n := p.out.failures.Add(1); int(n) >= after && p.out.ejected.CompareAndSwap(false, true) {
			p.eject(int(n), err)
		}
	}
}

// eject stops routing to p, fails its fetches in flight and starts the probe that ends the
// ejection. p.out.ejected has just been set by this caller.
func (p *wirePeer) eject(failures int, cause error) {
	k := p.out.ejections.Add(1)
	d := p.c.cfg.PeerEjectFor * time.Duration(min(1<<min(k-1, 8), maxEjectFactor))
	p.out.until.Store(time.Now().Add(d).UnixNano())
	p.c.ejections.Add(1)
	p.c.log.Warn("peer ejected: its keys are loaded here until it answers again",
		"member", p.name, "addr", p.addr, "consecutive_failures", failures, "for", d, "err", cause)
	// observe runs in the wire's completion callback, often on a reader or the monitor
	// goroutine: Abort is safe there (no wire lock is held while calls complete, and a
	// connection fails once), and it does not block.
	if p.client != nil {
		p.client.Abort(fmt.Errorf("peer %s ejected after %d consecutive failures", p.name, failures))
	}
	go p.probe(d, p.out.gen.Add(1))
}

// probe waits d, pings p, and ends the ejection if it answers; otherwise it waits twice as
// long (up to 10x PeerEjectFor) and tries again. It ends with p (closed when its member
// leaves the view), the Cluster, or the ejection it was started for (gen).
func (p *wirePeer) probe(d time.Duration, gen uint64) {
	for {
		t := time.NewTimer(d)
		select {
		case <-p.done:
			t.Stop()
			return
		case <-p.c.life.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if p.out.gen.Load() != gen {
			return
		}
		err := p.ping()
		if p.out.gen.Load() != gen {
			return
		}
		if err == nil {
			// Half-open: one more failure ejects it again at once.
			p.out.failures.Store(int32(max(p.c.cfg.PeerEjectAfter-1, 0)))
			p.out.until.Store(0)
			p.out.ejected.Store(false)
			p.c.log.Info("peer answers again: its keys are routed to it", "member", p.name, "addr", p.addr)
			return
		}
		k := p.out.ejections.Add(1)
		d = p.c.cfg.PeerEjectFor * time.Duration(min(1<<min(k-1, 8), maxEjectFactor))
		p.out.until.Store(time.Now().Add(d).UnixNano())
		p.c.log.Debug("ejected peer still unreachable", "member", p.name, "addr", p.addr, "next_probe", d, "err", err)
	}
}

// readmitRestarted ends the ejection of every peer that next keeps from prev (same member,
// same address) while the member's boot identifier changed: a new process is behind it, and
// the old one's failures say nothing about it.
func readmitRestarted(prev, next *view) {
	for _, p := range next.peers {
		if p == nil || prev.peer(p.name) != p || prev.boots[p.name] == next.boots[p.name] {
			continue
		}
		p.out.gen.Add(1)
		p.out.failures.Store(0)
		p.out.ejections.Store(0)
		p.out.until.Store(0)
		if p.out.ejected.CompareAndSwap(true, false) {
			p.c.log.Info("peer restarted: its keys are routed to it again", "member", p.name, "addr", p.addr)
		}
	}
}

// ping asks p for a pong within the time a dial and a ping may take.
func (p *wirePeer) ping() error {
	if p.client == nil {
		return p.unusable()
	}
	ctx, cancel := context.WithTimeout(p.c.life, min(p.c.cfg.FetchTimeout, 5*time.Second))
	defer cancel()
	_, err := p.client.Ping(ctx)
	return err
}

// isEjected reports whether PickPeer routes around p.
func (p *wirePeer) isEjected() bool { return p.out.ejected.Load() }

// ejectedUntil is when p's next probe runs, zero when p is not ejected.
func (p *wirePeer) ejectedUntil() time.Time {
	if u := p.out.until.Load(); u != 0 && p.out.ejected.Load() {
		return time.Unix(0, u)
	}
	return time.Time{}
}
