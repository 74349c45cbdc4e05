package peers

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Identity: which process holds a name. memberlist knows a member by its name and address
// only, so it cannot tell a member from a new process started in its place: not a seed that
// restarted alone at the same address (it answers the probes meant for the old process, and
// the others never notice that it is no longer in their cluster), nor a second node started
// with a name already in use at another address (memberlist logs "Conflicting address" on
// every message about it, and the newcomer serves as if it were a member).
//
// So every Cluster draws a random boot identifier at New. It travels in the node's metadata
// and in every ack the node sends to a probe (pingDelegate): a member whose ack carries
// another boot than the one its metadata gossips is a new process that has not joined the
// cluster, and the prober joins it (seeds.go). A join that would merge a live member holding
// this node's name at another address is refused (mergeDelegate), by the newcomer and by the
// member it joins: the node that was not ready yet stays out of the cluster and says why in
// Ready, the one that was keeps serving. conflictDelegate catches a conflict that arrives by
// gossip instead of by a join.

// identity is what a Cluster knows about itself beyond its Config; memberlist's callbacks
// read it without a lock.
type identity struct {
	// boot identifies this process: a restarted node gets a new one.
	boot string
	// ack is what this node appends to its acks: ackPrefix then boot.
	ack []byte
	// addr is the gossip address memberlist bound, stored once by Start; nil before.
	addr atomic.Pointer[string]
	// restarted carries, from pingDelegate to the seed loop, the names of members whose acks
	// show a new process. Full means the loop has enough to do: the callback drops the name.
	restarted chan string
	// viewChanged wakes the seed loop after a rebuild, which may have made a seed missing.
	viewChanged chan struct{}
}

// ackPrefix marks a groupcached ack payload, so a payload from anything else is ignored.
const ackPrefix = "groupcached-boot:"

func newIdentity() *identity {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	boot := hex.EncodeToString(b[:])
	return &identity{
		boot:        boot,
		ack:         []byte(ackPrefix + boot),
		restarted:   make(chan string, 16),
		viewChanged: make(chan struct{}, 1),
	}
}

// selfAddr returns the gossip address bound by Start, or "" before.
func (id *identity) selfAddr() string {
	if p := id.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// pingDelegate tells a prober which process answers, and tells the seed loop about members
// that answer as a new process. memberlist calls it from its packet and probe goroutines,
// without its node lock.
type pingDelegate struct{ c *Cluster }

// AckPayload returns this node's boot, appended to every ack it sends.
func (p pingDelegate) AckPayload() []byte { return p.c.ident.ack }

// NotifyPingComplete compares the boot a member answered with to the one its metadata
// gossips in this node's view. It reads only other.Name: memberlist may be updating the
// node's other fields under its lock meanwhile.
func (p pingDelegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, payload []byte) {
	boot, ok := bytes.CutPrefix(payload, []byte(ackPrefix))
	if !ok {
		return // a node without boot identifiers, or not groupcached
	}
	known := p.c.view.Load().boots[other.Name]
	if known == "" || known == string(boot) {
		return
	}
	select {
	case p.c.ident.restarted <- other.Name:
	default:
	}
}

// mergeDelegate refuses a join that would put two live nodes with one name into one cluster.
// memberlist calls it on both sides of a join, with the other side's member table, before
// merging it; a refusal leaves that side's table as it was and fails its Join, if it is the
// joining side. It is not called for the periodic push/pull.
type mergeDelegate struct{ c *Cluster }

// NotifyMerge refuses a table that holds this node's name at another address, live, or dead
// when DeadNodeReclaimTime is zero: memberlist then never lets another address take the
// name, and ignores everything this node says about itself, so it would be in nobody's ring
// while it thought itself a member.
//
// It also refuses a lone node (a member table of one: a node joining for the first time) whose
// name an alive member of this node's view holds at another address: that node will refuse
// too, and refusing here keeps its entry out of memberlist's table, where it would be logged
// as a conflict on every message about it. It never refuses a larger table for a third
// party's name, so two partitions merge even if one name is claimed on both sides (memberlist
// then keeps the entry it had).
func (d mergeDelegate) NotifyMerge(peers []*memberlist.Node) error {
	c := d.c
	self := c.ident.selfAddr()
	for _, n := range peers {
		if n.Name != c.cfg.NodeName || self == "" || n.Address() == self {
			continue
		}
		switch {
		case isLive(n):
			return c.nameConflict(n.Address(), heldLive)
		case n.State == memberlist.StateDead && c.cfg.DeadNodeReclaimTime == 0:
			return c.nameConflict(n.Address(), heldDead)
		}
	}
	if len(peers) != 1 || !isLive(peers[0]) {
		return nil
	}
	joiner := peers[0]
	for _, m := range c.view.Load().members {
		if m.Name == joiner.Name && m.State == Alive && m.GossipAddr != "" && m.GossipAddr != joiner.Address() {
			c.log.Warn("refusing a join: the joining node's name is held by a live member",
				"name", joiner.Name, "joining", joiner.Address(), "holder", m.GossipAddr)
			return fmt.Errorf("name conflict: %q is held by a live member at %s; refusing the node at %s",
				joiner.Name, m.GossipAddr, joiner.Address())
		}
	}
	return nil
}

// isLive reports whether memberlist counts n as holding its name: alive or suspect.
func isLive(n *memberlist.Node) bool {
	return n.State == memberlist.StateAlive || n.State == memberlist.StateSuspect
}

// conflictDelegate hears from memberlist that a node claims a name known at another address.
// memberlist calls it with its node lock held: it only records and logs.
type conflictDelegate struct{ c *Cluster }

func (d conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != d.c.cfg.NodeName {
		return // two other nodes share a name; memberlist logs it and keeps the first
	}
	// existing is this node; other claims its name from elsewhere.
	_ = d.c.nameConflict(other.Address(), heldLive)
}

// How the other node holds this node's name, in nameConflict's reason.
const (
	heldLive = "a live member"
	heldDead = "a dead member, and this cluster never lets a dead member's name move to " +
		"another address (DeadNodeReclaimTime is 0): restart the node at its old gossip " +
		"address, or set DeadNodeReclaimTime"
)

// nameConflict records that the node at addr holds this node's name (how: heldLive or
// heldDead) and returns the error that refuses the merge. A node that is not ready yet is
// the newcomer: it records the conflict, which Ready reports, and the seed loop keeps it out
// of the cluster until a join succeeds without conflict (the holder died and the cluster let
// the name go). A ready node is the holder of the name: it logs and keeps serving.
func (c *Cluster) nameConflict(addr, how string) error {
	err := fmt.Errorf("name conflict: NodeName %q is held at %s by %s (this node is %s)",
		c.cfg.NodeName, addr, how, c.ident.selfAddr())
	if c.ready.phase() == phaseReady {
		c.log.Warn("a node at another address uses this node's name; it is kept out of the cluster",
			"other", addr)
		return err
	}
	if c.ready.recordConflict(err.Error()) {
		c.log.Error("refusing to become ready: another node holds this name; give every node a unique NodeName",
			"holder", addr, "how", how, "self", c.ident.selfAddr())
	}
	return err
}
