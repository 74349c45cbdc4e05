package peers

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Seeds: how a node gets into a cluster with its seeds, and back into it.
//
// A seed is missing when it is neither this node nor an alive member of this node's view.
// Before the first join every seed is; afterwards a seed is missing when it left or died, is
// cut off, or came back as a new process that joined nobody (it restarted with no seeds, or
// with only itself as a seed) and that the others saw leave or die first. Missing seeds are
// tried soon and often: 100 ms after the seed goes missing (a rebuild of the view wakes the
// loop), then after twice as long each time up to SeedRetryInterval, every wait jittered by
// ±50 %. So that a seed that is down for good costs a bounded amount of traffic, the cap grows
// in proportion to the cluster above seedRetriers alive members: the cluster as a whole tries
// a missing seed about seedRetriers times per SeedRetryInterval, whatever its size, and the
// first try after the seed comes back still comes within about SeedRetryInterval/seedRetriers.
//
// A seed that restarts before the others see it go is not missing in their views: it answers
// their probes, and memberlist takes it for the old process. Its acks carry its new boot
// identifier, though (identity.go), and the member that probed it joins it at once; probes
// reach every member about once per ProbeInterval, so this takes about a second on a LAN.
//
// Whichever side joins, the restarted node learns the cluster's member table and refutes
// what the cluster says about it (alive with an older incarnation, or left or dead), and the
// refutation reaches every member by gossip.
//
// Every RejoinInterval (jittered, and scaled above 32 members as memberlist scales its own
// push/pull) a node also joins one of its seeds at random, alive or not: a full state
// exchange that merges two partitions whatever the above missed, such as a seed restarted
// alone on a version without boot identifiers. Partitions never heal without it.

// firstJoinBackoff is the wait before the first try of a missing seed; it doubles on every
// failed try up to SeedRetryInterval.
const firstJoinBackoff = 100 * time.Millisecond

// seedRetriers is about how many members try a missing seed per SeedRetryInterval in a
// cluster larger than that: each member's retry cap is SeedRetryInterval × members /
// seedRetriers.
const seedRetriers = 8

// pushPullScaleThreshold is the cluster size above which memberlist spaces its push/pulls, and
// this package its periodic rejoins, by one more interval per doubling of the members.
const pushPullScaleThreshold = 32

// firstJoin makes Start's first attempt to join the seeds, before the seed loop takes over;
// it records in answered the seeds that let this node join (see missingSeeds).
func (c *Cluster) firstJoin(ctx context.Context, ml *memberlist.Memberlist, answered map[string]time.Time) {
	if len(c.cfg.Seeds) == 0 {
		c.ready.becomeReady("no seeds configured: this node starts its cluster")
		return
	}
	seeds, complete := c.resolveSeeds(ctx)
	if len(seeds) == 0 {
		if complete {
			c.ready.becomeReady("its only seed is itself: this node starts its cluster")
		}
		return
	}
	c.joinSeeds(ml, seeds, answered, true)
}

// seedLoop retries missing seeds, joins members found restarted alone and rejoins a seed
// every RejoinInterval, until Leave or Shutdown. With a negative RejoinInterval it ends once
// the node is ready. answered is firstJoin's, which the loop now owns.
func (c *Cluster) seedLoop(ml *memberlist.Memberlist, answered map[string]time.Time) {
	var (
		seeds, complete = c.resolveSeeds(c.life)
		backoff         = firstJoinBackoff
		retryAt         time.Time // next try of the missing seeds; zero while none is missing
		rejoinAt        = time.Now().Add(c.rejoinWait())
		conflicted      bool                     // the last try was refused for the name
		restartJoins    = map[string]time.Time{} // member -> when it was last joined as restarted
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case name := <-c.ident.restarted:
			if c.ready.phase() < phaseLeaving {
				c.joinRestarted(ml, name, restartJoins)
			}
			continue // the timer is still set
		case <-c.ident.viewChanged:
		case <-timer.C:
		}
		now := time.Now()
		switch phase := c.ready.phase(); {
		case phase >= phaseLeaving:
			continue // no more joins; wait for Shutdown
		case phase == phaseReady && c.cfg.RejoinInterval < 0:
			return
		}
		joining := c.ready.phase() == phaseJoining
		missing := c.missingSeeds(seeds, answered, now)
		switch {
		case len(missing) == 0 && (complete || !joining):
			if joining {
				c.ready.becomeReady("its seeds are itself and its alive members")
			}
			backoff, retryAt, conflicted = firstJoinBackoff, time.Time{}, false
		case retryAt.IsZero():
			retryAt = now.Add(jitter(backoff))
		case !now.Before(retryAt):
			seeds, complete = c.resolveSeeds(c.life)
			if missing = c.missingSeeds(seeds, answered, now); len(missing) > 0 {
				conflicted = c.joinSeeds(ml, missing, answered, false)
			}
			limit := c.retryCap()
			if conflicted {
				// The name's holder must die before a retry can succeed: no need to hurry.
				limit = max(limit, c.rejoinInterval())
			}
			backoff = min(2*backoff, limit)
			retryAt = now.Add(jitter(backoff))
		}
		if joining {
			rejoinAt = now.Add(c.rejoinWait()) // the periodic rejoin starts once joined
		} else if !now.Before(rejoinAt) {
			seeds, complete = c.resolveSeeds(c.life) // DNS seeds may name other nodes by now
			c.rejoinOne(ml, seeds)
			rejoinAt = now.Add(c.rejoinWait())
		}
		next := rejoinAt
		if !retryAt.IsZero() && retryAt.Before(next) {
			next = retryAt
		}
		timer.Reset(time.Until(next))
	}
}

// missingSeeds returns the seeds that are not alive members of the view, except those that
// let this node join less than a RejoinInterval ago and have not shown up as members since:
// until the view is rebuilt a joined seed is still missing from it, and a seed address that
// never shows up (a NAT's, a load balancer's, 127.0.0.1 for a node that advertises its
// private address) would otherwise be joined again at every retry. Those are left to the
// periodic rejoin. It forgets the answers of seeds that are members now.
func (c *Cluster) missingSeeds(seeds []string, answered map[string]time.Time, now time.Time) []string {
	v := c.view.Load()
	var missing []string
	for _, s := range seeds {
		switch {
		case slices.ContainsFunc(v.members, func(m Member) bool { return m.State == Alive && m.GossipAddr == s }):
			delete(answered, s)
		case now.Sub(answered[s]) >= c.rejoinInterval():
			missing = append(missing, s)
		}
	}
	return missing
}

// joinSeeds joins addrs, which are missing seeds, one at a time, records in answered those
// that let this node join, and updates readiness. It reports whether a seed
// refused because another live node holds this node's name.
func (c *Cluster) joinSeeds(ml *memberlist.Memberlist, addrs []string, answered map[string]time.Time,
	initial bool,
) (conflicted bool) {
	before := c.ready.conflicts.Load()
	var joined []string
	var errs []error
	for _, a := range addrs {
		if _, err := ml.Join([]string{a}); err != nil {
			errs = append(errs, err)
			continue
		}
		joined = append(joined, a)
	}
	conflicted = c.ready.conflicts.Load() != before
	switch {
	case conflicted:
		// nameConflict has said why, once.
		c.log.Debug("join refused: name conflict", "seeds", addrs)
	case len(joined) > 0:
		for _, a := range joined {
			answered[a] = time.Now()
		}
		if c.ready.becomeReady("joined seed " + strings.Join(joined, " and ")) {
			c.log.Info("joined the cluster; ready", "seeds", joined)
		} else {
			c.log.Info("joined seeds that were not members", "seeds", joined)
		}
	case initial:
		c.log.Warn("no seed reachable; not ready, retrying", "seeds", addrs, "err", errors.Join(errs...))
	default:
		c.log.Debug("missing seeds still unreachable", "seeds", addrs, "err", errors.Join(errs...))
	}
	return conflicted
}

// joinRestarted joins the member name, whose acks show a new process, unless it did so less
// than a retry cap ago. The new process answers probes but has not joined the cluster; the
// join gives it the member table, and it refutes what the cluster says about it.
func (c *Cluster) joinRestarted(ml *memberlist.Memberlist, name string, last map[string]time.Time) {
	now, limit := time.Now(), c.retryCap()
	for n, at := range last {
		if now.Sub(at) >= limit {
			delete(last, n)
		}
	}
	if _, recent := last[name]; recent {
		return
	}
	i, ok := slices.BinarySearchFunc(c.view.Load().members, name, func(m Member, name string) int {
		return strings.Compare(m.Name, name)
	})
	if !ok {
		return
	}
	m := c.view.Load().members[i]
	if m.State != Alive || m.Self || m.GossipAddr == "" {
		return
	}
	last[name] = now
	c.log.Info("member answers probes as a new process that has not joined; joining it",
		"member", name, "gossip", m.GossipAddr)
	if _, err := ml.Join([]string{m.GossipAddr}); err != nil {
		c.log.Warn("joining a restarted member", "member", name, "err", err)
	}
}

// rejoinOne joins one seed picked at random, alive or not: the periodic full state exchange
// that heals any partition.
func (c *Cluster) rejoinOne(ml *memberlist.Memberlist, seeds []string) {
	if len(seeds) == 0 {
		return
	}
	seed := seeds[rand.IntN(len(seeds))]
	if _, err := ml.Join([]string{seed}); err != nil {
		c.log.Debug("periodic rejoin", "seed", seed, "err", err)
	}
}

// retryCap is the longest wait between two tries of a missing seed: SeedRetryInterval, scaled
// up in proportion to the alive members above seedRetriers.
func (c *Cluster) retryCap() time.Duration {
	scale := max(1, float64(c.view.Load().ring.Len())/seedRetriers)
	return time.Duration(float64(max(c.cfg.SeedRetryInterval, firstJoinBackoff)) * scale)
}

// rejoinInterval is RejoinInterval, or DefaultConfig's when rejoining is disabled.
func (c *Cluster) rejoinInterval() time.Duration {
	if c.cfg.RejoinInterval > 0 {
		return c.cfg.RejoinInterval
	}
	return DefaultConfig().RejoinInterval
}

// rejoinWait is the jittered wait until the next periodic rejoin, spaced like memberlist's
// push/pull: one more interval per doubling of the members above pushPullScaleThreshold.
func (c *Cluster) rejoinWait() time.Duration {
	interval, n := c.rejoinInterval(), c.view.Load().ring.Len()
	if n > pushPullScaleThreshold {
		interval *= time.Duration(math.Ceil(math.Log2(float64(n))-math.Log2(pushPullScaleThreshold)) + 1)
	}
	return jitter(interval)
}

// jitter returns d scaled by a random factor in [0.5, 1.5), so that members that lost a
// seed at the same moment do not try it in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d/2 + rand.N(d)
}

// resolveSeeds resolves the configured seeds into ip:port addresses, without this node's and
// without duplicates. complete is false when a name did not resolve.
func (c *Cluster) resolveSeeds(ctx context.Context) (seeds []string, complete bool) {
	self := c.ident.selfAddr()
	complete = true
	for _, seed := range c.cfg.Seeds {
		resolved, err := c.resolve(ctx, seed)
		if err != nil {
			c.log.Warn("resolving seed", "seed", seed, "err", err)
			complete = false
			continue
		}
		for _, a := range resolved {
			if a != self && !slices.Contains(seeds, a) {
				seeds = append(seeds, a)
			}
		}
	}
	return seeds, complete
}

// resolve turns a seed into ip:port addresses; a DNS name may give several.
func (c *Cluster) resolve(ctx context.Context, seed string) ([]string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if net.ParseIP(host) != nil {
		return []string{net.JoinHostPort(host, port)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.TCPTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip, port))
	}
	slices.Sort(out)
	return out, nil
}
