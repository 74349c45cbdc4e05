package peers

import (
	"bytes"
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/memberlist"
)

// The three ways memberlist talks to a Cluster: it asks for this node's metadata (delegate),
// reports other nodes (eventDelegate), and logs (memberlistLog). All three are called from
// memberlist's goroutines, the first two with its node lock held, so none may block or call
// back into memberlist.

// delegate gives memberlist this node's metadata; the cluster sends no user messages.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte                  { return *d.c.meta.Load() }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

// eventDelegate copies memberlist's node events into the cluster. memberlist calls it with
// its node lock held: copy, signal, return.
type eventDelegate struct{ c *Cluster }

func (e eventDelegate) NotifyJoin(n *memberlist.Node)   { e.c.notify(copyEvent(n, false)) }
func (e eventDelegate) NotifyUpdate(n *memberlist.Node) { e.c.notify(copyEvent(n, false)) }
func (e eventDelegate) NotifyLeave(n *memberlist.Node)  { e.c.notify(copyEvent(n, true)) }

func copyEvent(n *memberlist.Node, left bool) nodeEvent {
	return nodeEvent{left: left, name: n.Name, addr: n.Address(), meta: bytes.Clone(n.Meta)}
}

// memberlistLog passes memberlist's "[LEVEL] memberlist: ..." lines to slog at their level.
type memberlistLog struct{ log *slog.Logger }

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
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
