package httpapi

import (
	"context"
	"time"
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
