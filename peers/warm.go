package peers

import (
	"context"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// Previous owners: for Config.WarmTime after each change of the ring, a key this node now
// loads may still be in the memory of the member that owned it before, and the Group asks
// that member first (group.PreviousOwnerPicker, over the peer wire's peek). The view keeps
// the ring before the last change for that; this node's own first ring counts as none.

var (
	_ group.PreviousOwnerPicker = (*Cluster)(nil)
	_ group.Peeker              = (*wirePeer)(nil)
	_ wire.WarmHandler          = wireHandler{}
)

// keepHistory records in next (the view that follows prev) the ring before the last change
// of ownership. When the ring did not change it carries prev's record over. When this node
// was alone, or in no ring, before the change (it just started, or came back), the keys it
// now owns were held by the owners of a ring without it, which is what it records (as a flag:
// next.ring less this node, computed per key, so that no second ring is built): that is where
// a restarted node's keys went while it was away, and where a new node's keys lived.
func (next *view) keepHistory(prev *view, self string, changed bool, now time.Time) {
	if !changed {
		next.prevRing, next.prevWithoutSelf, next.changedAt = prev.prevRing, prev.prevWithoutSelf, prev.changedAt
		return
	}
	next.changedAt = now
	if slices.ContainsFunc(prev.ring.Names(), func(n string) bool { return n != self }) {
		next.prevRing, next.prevWithoutSelf = prev.ring, false
		return
	}
	next.prevRing, next.prevWithoutSelf = nil, true
}

// previousOwner returns the owner of key in the ring before the last change ("" if none).
func (v *view) previousOwner(key, self string) string {
	switch {
	case v.prevWithoutSelf:
		return v.ring.ownerWithout(key, self)
	case v.prevRing != nil:
		return v.prevRing.OwnerName(key)
	}
	return ""
}

// PreviousOwner returns the member that may hold key in memory although this node now loads
// it, as a group.Peeker, and ok == false when there is none to ask (or WarmTime is negative):
//
//   - key's owner is this node: the member that owned key before the last ring change, when
//     that change is less than WarmTime old, and that member is another one, alive in the
//     current ring (a join, a leave, a restart moved the key here);
//   - key's owner is another member (this node loads it because the owner did not answer):
//     the member that owns key in the ring without that owner, if it is not this node. A
//     stopping owner has handed its keys there (handoff.go) before it stopped answering,
//     and the others' rings have not dropped it yet.
//
// It never blocks.
func (c *Cluster) PreviousOwner(key string) (group.Peeker, bool) {
	if c.cfg.WarmTime <= 0 {
		return nil, false
	}
	v := c.view.Load()
	self := c.cfg.NodeName
	owner := v.ring.OwnerName(key)
	var name string
	switch {
	case owner != self && owner != "":
		name = v.ring.ownerWithout(key, owner)
	case !v.changedAt.IsZero() && time.Since(v.changedAt) <= c.cfg.WarmTime:
		name = v.previousOwner(key, self)
	}
	if name == "" || name == self || name == owner {
		return nil, false
	}
	p := v.peer(name)
	if p == nil || p.isEjected() {
		// An ejected peer (outlier.go) is not asked for its keys: a peek would cost the
		// peek timeout on every local load until it is readmitted.
		return nil, false
	}
	return p, true
}

// ownerWithout returns the member that owns key in the ring of r's members less excluded,
// without building that ring: rendezvous hashing gives key's bucket to the member of the
// highest score, so the owner without excluded is the best of the others ("" when none).
func (r *Ring) ownerWithout(key, excluded string) string {
	b := xxhash.Sum64String(key) >> (64 - ringBucketBits)
	spread := b * 0x9e3779b97f4a7c15
	best, bestScore := -1, uint64(0)
	for i, name := range r.names {
		if name == excluded {
			continue
		}
		// Ties go to the lower index, as in NewRing.
		if s := mix64(xxhash.Sum64String(name) ^ spread); best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ""
	}
	return r.names[best]
}

// Peek asks the peer for the value of key it holds in memory, within PeekTimeout. A value it
// does not hold is group.ErrNotFound (wrapped); a failure is not counted against the peer: a
// peek is a guess.
func (p *wirePeer) Peek(ctx context.Context, groupName, key string) (group.Value, error) {
	if p.client == nil {
		return group.Value{}, p.unusable()
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.cfg.PeekTimeout)
	defer cancel()
	v, err := p.client.Peek(ctx, groupName, key)
	if err != nil {
		if wire.CodeOf(err) == wire.CodeNotFound {
			err = group.ErrNotFound
		}
		return group.Value{}, err
	}
	return p.c.received(groupName, v)
}

// Peek answers a peer's peek from the group's memory only (group.Peek): never the loader.
func (h wireHandler) Peek(_ context.Context, groupName, key string) (wire.Value, error) {
	s, err := h.group(groupName)
	if err != nil {
		return wire.Value{}, err
	}
	res, ok := s.g.Peek(key)
	if !ok || int64(len(res.Bytes)) > s.maxValue {
		return wire.Value{}, &wire.Error{Code: wire.CodeNotFound, Message: "not in memory"}
	}
	return wire.Value{Bytes: res.Bytes, TTL: res.TTL, ContentType: res.ContentType, LastModified: res.LastModified}, nil
}

// Push stores a value a leaving member handed over (group.Push: only where nothing is held),
// with the asking group's bounds applied as to a fetched value.
func (h wireHandler) Push(_ context.Context, groupName, key string, v wire.Value) error {
	s, err := h.group(groupName)
	if err != nil {
		return err
	}
	gv, err := h.c.received(groupName, v)
	if err != nil {
		return &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()}
	}
	s.g.Push(key, gv)
	return nil
}
