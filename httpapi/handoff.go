package httpapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupcached/groupcached/group"
)

// DefaultHandOffBytes is DefaultNodeConfig's HandOffBytes: what a stopping node hands over
// at most, keys and values of all groups together.
const DefaultHandOffBytes = 64 << 20

// defaultHandOffTimeout is HandOffTimeout's zero value.
const defaultHandOffTimeout = 2 * time.Second

func (c NodeConfig) handOffTimeout() time.Duration {
	if c.HandOffTimeout > 0 {
		return c.HandOffTimeout
	}
	return defaultHandOffTimeout
}

// handOff is Stop's hand-off step, between the shutdown delay and the leave: while this node
// is still a member (its pushes are accepted as a member's, on authenticated connections, and
// its peers still route its keys here), it pushes the values it owns, the most valuable first
// by its eviction policy, to their owners in the ring without it (peers.Cluster.HandOff),
// within HandOffBytes and HandOffTimeout. It logs what it sent, and how long it took.
func (n *Node) handOff(ctx context.Context) {
	if n.cluster == nil || n.cfg.HandOffBytes <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.handOffTimeout())
	defer cancel()
	st, err := n.cluster.HandOff(ctx, n.cfg.HandOffBytes)
	attrs := []any{"node", n.cfg.Name, "entries", st.Entries, "bytes", st.Bytes, "failed", st.Failed,
		"duration", st.Duration.Round(time.Microsecond)}
	if err != nil {
		n.log.Warn("stopping: hand-off", append(attrs, "err", err)...)
		return
	}
	n.log.Info("stopping: handed off", attrs...)
}

// warmCollector exports the groups' peek and push counters (group.WarmStats) at scrape time.
type warmCollector struct {
	groups                                  []*group.Group
	peeks, peekSeconds, peeksServed, pushes *prometheus.Desc
}

func newWarmCollector(groups []*group.Group) *warmCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &warmCollector{
		groups: groups,
		peeks: desc("peeks_total", "Local loads that first asked the key's previous owner for its value in memory, by result: hit (the loader was not called) or miss.",
			"group", "result"),
		peekSeconds: desc("peek_seconds_total", "Time spent in those peeks, hits and misses.", "group"),
		peeksServed: desc("peeks_served_total", "Peeks other nodes sent here, by result: hit or miss.", "group", "result"),
		pushes: desc("pushes_received_total", "Values stopping nodes handed here, by result: stored, or dropped (a value was held, or a removal was recent).",
			"group", "result"),
	}
}

func (c *warmCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peeks, c.peekSeconds, c.peeksServed, c.pushes} {
		ch <- d
	}
}

func (c *warmCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, g := range c.groups {
		name, ws := g.Name(), g.WarmStats()
		counter(c.peeks, float64(ws.PeekHits), name, "hit")
		counter(c.peeks, float64(ws.Peeks-ws.PeekHits), name, "miss")
		counter(c.peekSeconds, ws.PeekTime.Seconds(), name)
		counter(c.peeksServed, float64(ws.PeeksServedHits), name, "hit")
		counter(c.peeksServed, float64(ws.PeeksServed-ws.PeeksServedHits), name, "miss")
		counter(c.pushes, float64(ws.PushesStored), name, "stored")
		counter(c.pushes, float64(ws.PushesReceived-ws.PushesStored), name, "dropped")
	}
}
