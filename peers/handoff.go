package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// Hand-off: a node that stops gracefully sends the values it owns, the most valuable first,
// to the members that own them once it is gone (the owners in its ring without itself), so
// that a rolling restart does not empty the cluster's memory one node at a time. It runs
// before Leave, while the node is still a member (every push travels on an authenticated
// peer connection) and the receivers still route the keys here; they keep a value only where
// they hold none (group.Push).

const (
	// handOffWorkers bounds the pushes in flight at once: the wire multiplexes them over the
	// peers' connections, so a few are enough to hide the round trip.
	handOffWorkers = 16
	// pushTimeout bounds one push (and so the age of a pushed value: see group.Push).
	pushTimeout = time.Second
)

// HandOffStats reports one hand-off.
type HandOffStats struct {
	Entries  int           // values the receivers acknowledged
	Bytes    int64         // their keys' and values' bytes
	Failed   int           // pushes that failed (a receiver down, the deadline)
	Duration time.Duration // from the start to the last acknowledgement
}

// HandOff sends the values this node owns, in each group's eviction order (group.Hottest),
// to their owners in the ring without this node, until maxBytes of keys and values (all
// groups together, in name order) have been examined or ctx ends; each push is bounded by a
// second. It returns what was acknowledged. A node alone, or with no alive peer, sends
// nothing. Call it before Leave.
func (c *Cluster) HandOff(ctx context.Context, maxBytes int64) (HandOffStats, error) {
	start := time.Now()
	v := c.view.Load()
	self := c.cfg.NodeName
	if v.ring.Len() < 2 || maxBytes <= 0 {
		return HandOffStats{}, nil
	}
	groups := *c.groups.Load()
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.Sort(names)

	type push struct {
		g    *group.Group
		key  string
		peer *wirePeer
	}
	work := make(chan push)
	var (
		entries, failed atomic.Int64
		sent            atomic.Int64
		wg              sync.WaitGroup
	)
	for range handOffWorkers {
		wg.Go(func() {
			for p := range work {
				val, ok := p.g.HandOffValue(p.key) // now, not when listed: a removal since wins
				if !ok {
					continue
				}
				if err := p.peer.push(ctx, p.g.Name(), p.key, val); err != nil {
					failed.Add(1)
					continue
				}
				entries.Add(1)
				sent.Add(int64(len(p.key) + len(val.Bytes)))
			}
		})
	}
	budget := maxBytes
feed:
	for _, name := range names {
		g := groups[name].g
		keys, size := g.Hottest(budget)
		for _, key := range keys {
			if v.ring.OwnerName(key) != self {
				continue // a copy this node no longer owns: its owner has its own
			}
			peer := v.peer(v.ring.ownerWithout(key, self))
			if peer == nil {
				continue
			}
			select {
			case work <- push{g: g, key: key, peer: peer}:
			case <-ctx.Done():
				break feed
			}
		}
		if budget -= size; budget <= 0 {
			break
		}
	}
	close(work)
	wg.Wait()
	st := HandOffStats{Entries: int(entries.Load()), Bytes: sent.Load(), Failed: int(failed.Load()), Duration: time.Since(start)}
	c.handOffs.Add(1)
	c.handOffEntries.Add(uint64(st.Entries))
	c.handOffBytes.Add(uint64(st.Bytes))
	if err := ctx.Err(); err != nil {
		return st, fmt.Errorf("hand-off cut short: %w", err)
	}
	return st, nil
}

// push hands v to the peer with the wire's push message, within pushTimeout.
func (p *wirePeer) push(ctx context.Context, groupName, key string, v group.Value) error {
	if p.client == nil {
		return p.unusable()
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	err := p.client.Push(ctx, groupName, key, wire.Value(v))
	if err != nil && !errors.Is(err, wire.ErrUnavailable) && wire.CodeOf(err) != 0 {
		return p.remoteError(err)
	}
	return err
}
