package peers

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Readiness: whether this node should be sent traffic, and why not. Start, the seed loop,
// Leave and Shutdown move a node forward through its phases; the identity checks record a
// name conflict; Ready reads both with atomic loads.

// readyPhase is where a node is in its life, as far as readiness goes. Phases only move
// forward.
type readyPhase int32

const (
	phaseNew     readyPhase = iota // New returned; Start not called
	phaseJoining                   // started; no seed has let it join yet
	phaseReady                     // joined a seed, or has none to join
	phaseLeaving                   // Leave is announcing the departure
	phaseStopped                   // Leave or Shutdown is done
)

// readiness is a Cluster's readiness state. Its zero value is phaseNew.
type readiness struct {
	state atomic.Int32
	// how says how the node became ready ("joined seed …", "no seeds to join"); set just
	// before the phase moves to phaseReady.
	how atomic.Pointer[string]
	// conflict is why the last join was refused because of this node's name; nil when none
	// was, or since a join succeeded.
	conflict atomic.Pointer[string]
	// conflicts counts the name conflicts recorded, so that the seed loop tells whether one
	// happened during its join.
	conflicts atomic.Uint64
}

func (r *readiness) phase() readyPhase { return readyPhase(r.state.Load()) }

// advance moves to phase to unless the node is already there or further; it reports
// whether it moved.
func (r *readiness) advance(to readyPhase) bool {
	for {
		cur := r.state.Load()
		if cur >= int32(to) {
			return false
		}
		if r.state.CompareAndSwap(cur, int32(to)) {
			return true
		}
	}
}

// becomeReady records how the node joined and moves a joining node to phaseReady. It
// reports whether the node was joining.
func (r *readiness) becomeReady(how string) bool {
	if r.phase() != phaseJoining {
		return false
	}
	r.how.Store(&how)
	r.conflict.Store(nil)
	return r.state.CompareAndSwap(int32(phaseJoining), int32(phaseReady))
}

// recordConflict records why a join was refused and reports whether the reason is new.
func (r *readiness) recordConflict(reason string) bool {
	r.conflicts.Add(1)
	old := r.conflict.Swap(&reason)
	return old == nil || *old != reason
}

// Ready reports whether this node should be sent traffic, and why in either case: a short
// sentence for /readyz and for logs.
//
// A node is ready once Start has joined at least one of its Seeds, or found no seed to join
// (none configured, or every seed is this node or one of its alive members), and it stays
// ready until Leave or Shutdown, even if its seeds go away later: the cluster it joined is
// still there. It is not ready before Start; while no seed has answered (the seed loop keeps
// trying, see Config.SeedRetryInterval); while its NodeName is held by a live member at
// another address (the reason says where; the node stays out of that cluster and keeps
// trying, so it becomes ready if that member goes away); and from the moment Leave starts.
//
// It never blocks and does not lock: it is safe to call from any goroutine, as often as a
// health check likes.
func (c *Cluster) Ready() (ready bool, reason string) {
	r := &c.ready
	switch r.phase() {
	case phaseNew:
		return false, "membership not started"
	case phaseJoining:
		if p := r.conflict.Load(); p != nil {
			return false, *p
		}
		return false, fmt.Sprintf("joining: no seed has answered yet (seeds: %s); retrying",
			strings.Join(c.cfg.Seeds, ", "))
	case phaseReady:
		how := "ready"
		if p := r.how.Load(); p != nil {
			how = *p
		}
		return true, fmt.Sprintf("%s (members alive: %d)", how, c.view.Load().ring.Len())
	case phaseLeaving:
		return false, "leaving the cluster"
	default:
		return false, "membership stopped"
	}
}
