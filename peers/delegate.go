package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"

	"github.com/hashicorp/memberlist"
)

// The three ways memberlist talks to a Cluster about membership: it asks for this node's
// metadata (delegate), reports other nodes (eventDelegate), and logs (memberlistLog). All
// three are called from memberlist's goroutines, the first two with its node lock held, so
// none may block or call back into memberlist. (identity.go holds the delegates that check
// which process holds a name.)

// nodeMeta is the metadata every node gossips about itself.
type nodeMeta struct {
	HTTPAddr string `json:"http"`
	// Leaving is set by Leave before memberlist's leave message goes out: memberlist's
	// NotifyLeave does not say whether a node left or died (the Node.State it passes is never
	// updated), and the members drop a leaving node from their rings a little sooner.
	Leaving bool `json:"leaving,omitempty"`
	// Boot identifies the process (identity.go): a node that restarts gossips a new one.
	Boot string `json:"boot,omitempty"`
}

// setMeta changes what delegate.NodeMeta answers from now on; memberlist gossips it on its
// next UpdateNode. It fills in this process's boot identifier.
func (c *Cluster) setMeta(m nodeMeta) {
	m.Boot = c.ident.boot
	b, _ := json.Marshal(m)
	c.meta.Store(&b)
}

func (c *Cluster) currentMeta() nodeMeta {
	var m nodeMeta
	_ = json.Unmarshal(*c.meta.Load(), &m)
	return m
}

// delegate gives memberlist this node's metadata; the cluster sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte                  { return *d.c.meta.Load() }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate copies memberlist's node events into the cluster. memberlist calls it with
// its node lock held, one call at a time, in the order it changes its node table: copy,
// queue, return. It has no suspicion event (see MemberState).
type eventDelegate struct{ c *Cluster }

func (e eventDelegate) NotifyJoin(n *memberlist.Node)   { e.c.notify(copyEvent(n, false)) }
func (e eventDelegate) NotifyUpdate(n *memberlist.Node) { e.c.notify(copyEvent(n, false)) }

// NotifyLeave reports another node that left or died; about this node it means memberlist has
// queued this node's own leave message (Leave), which Cluster.Leave waits for.
func (e eventDelegate) NotifyLeave(n *memberlist.Node) {
	if n.Name == e.c.cfg.NodeName {
		e.c.leaveQueuedOnce.Do(func() { close(e.c.leaveQueued) })
	}
	e.c.notify(copyEvent(n, true))
}

func copyEvent(n *memberlist.Node, left bool) nodeEvent {
	return nodeEvent{left: left, name: n.Name, addr: n.Address(), meta: bytes.Clone(n.Meta)}
}

// closedConn is how an operation on a socket closed by Shutdown fails (net.ErrClosed's text).
const closedConn = "use of closed network connection"

// memberlistLog passes memberlist's "[LEVEL] memberlist: ..." lines to slog at their level.
// Once stopping reports true, a failure on a closed socket is logged at Debug: memberlist's
// probe and gossip goroutines may still send while Shutdown closes the sockets, and a normal
// stop must not log errors. Before that, the same line keeps its level: a socket closed under
// a running node is a real error.
type memberlistLog struct {
	log      *slog.Logger
	stopping func() bool
}

func (w memberlistLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = strings.TrimSpace(rest), l.level
			break
		}
	}
	if level > slog.LevelDebug && strings.Contains(line, closedConn) && w.stopping != nil && w.stopping() {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
