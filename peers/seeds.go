package peers

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// Seeds: the first join at Start, its quick retries until a seed answers, and the periodic
// rejoin that merges a healed partition.

// join resolves the seeds and joins those that are not this node or already alive members.
// It reports false when there were seeds to join and none answered.
func (c *Cluster) join(ctx context.Context, ml *memberlist.Memberlist, initial bool) bool {
	if len(c.cfg.Seeds) == 0 {
		return true
	}
	skip := map[string]bool{c.gossipAddr: true}
	for _, m := range c.view.Load().members {
		if m.State == Alive && m.GossipAddr != "" {
			skip[m.GossipAddr] = true
		}
	}
	var addrs []string
	unresolved := false
	for _, seed := range c.cfg.Seeds {
		resolved, err := c.resolve(ctx, seed)
		if err != nil {
			c.log.Warn("resolving seed", "seed", seed, "err", err)
			unresolved = true
			continue
		}
		for _, a := range resolved {
			if !skip[a] {
				skip[a] = true
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		// Every seed is this node or an alive member, unless a name did not resolve (yet).
		return !unresolved || len(c.view.Load().members) > 1
	}
	n, err := ml.Join(addrs)
	switch {
	case n == 0 && initial:
		c.log.Warn("no seed reachable; retrying", "seeds", addrs, "err", err)
	case n == 0:
		c.log.Debug("rejoin: no seed reachable", "seeds", addrs, "err", err)
	default:
		c.log.Info("joined seeds", "contacted", n, "seeds", addrs)
	}
	return n > 0
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

// firstJoinBackoff is the wait before the first retry of a first join that reached no seed;
// it doubles on every retry, up to RejoinInterval.
const firstJoinBackoff = 100 * time.Millisecond

// rejoinLoop joins the seeds again until Leave or Shutdown. Until a seed has answered
// (joined is false) it retries after firstJoinBackoff, doubling up to RejoinInterval (or
// DefaultConfig's when rejoining is disabled); then it rejoins every RejoinInterval, or stops
// when that is negative.
func (c *Cluster) rejoinLoop(ml *memberlist.Memberlist, joined bool) {
	ceiling := c.cfg.RejoinInterval
	if ceiling <= 0 {
		ceiling = DefaultConfig().RejoinInterval
	}
	wait := min(firstJoinBackoff, ceiling)
	if joined {
		wait = c.cfg.RejoinInterval
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-t.C:
		}
		ok := c.join(c.life, ml, false)
		switch {
		case !joined && ok:
			joined = true
			c.log.Info("first join done; rejoining the seeds every RejoinInterval", "interval", c.cfg.RejoinInterval)
			wait = c.cfg.RejoinInterval
		case !joined:
			wait = min(2*wait, ceiling)
		}
		if joined && c.cfg.RejoinInterval <= 0 {
			return
		}
		t.Reset(wait)
	}
}
