package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// The answering side of the peer wire: the wire.Server behind Handler, the wire.Handler that
// answers from the registered groups with GetLocal, RemoveLocal and PurgeLocal (never asking
// another node: the hop guard), and who may connect.

// newServer builds the wire server of c. Values are bounded per group by wireHandler, so the
// server's own bound is the wire's.
func (c *Cluster) newServer() (*wire.Server, error) {
	cfg := wire.DefaultServerConfig()
	cfg.Name, cfg.Secret = c.cfg.NodeName, c.cfg.SecretKey
	cfg.IsMember = c.isMember
	cfg.MaxKeyBytes = c.maxKeyBytes()
	cfg.MaxValueBytes = maxWireValue
	cfg.Logger = c.log.With("component", "peer wire")
	return wire.NewServer(cfg, wireHandler{c})
}

// peerHandler is Cluster.Handler: the peer wire's upgrade, and 404 for every other path.
type peerHandler struct{ c *Cluster }

func (h peerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wire.DefaultPath {
		// No Groupcached-Error code: a node on the v1 HTTP wire reads this answer as an
		// unreachable owner and loads the key itself, during a rolling upgrade.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "no peer endpoint "+r.URL.Path+"; the peer wire is at "+wire.DefaultPath+"\n")
		return
	}
	err := h.c.server.Accept(w, r)
	var ref *wire.Refusal
	switch {
	case errors.As(err, &ref) && errors.Is(err, wire.ErrAuth):
		h.c.refused(r, ref)
	case err != nil:
		h.c.log.Debug("peer wire connection ended", "remote", r.RemoteAddr, "peer", r.Header.Get("Groupcached-Peer"), "err", err)
	}
}

// refused counts an upgrade refused by the authentication checks and logs it, rate-limited.
func (c *Cluster) refused(r *http.Request, ref *wire.Refusal) {
	c.authRefused.Add(1)
	claimed := r.Header.Get("Groupcached-Peer")
	if errors.Is(ref, wire.ErrClockSkew) {
		c.skewRefused.Add(1)
		if ok, suppressed := c.refusals.skew.allow(time.Now()); ok {
			c.log.Warn("peer connection refused: its clock and this node's disagree; check NTP on both",
				"peer", claimed, "remote", r.RemoteAddr, "skew", ref.Skew, "window", "±30s", "suppressed", suppressed)
		}
		return
	}
	if ok, suppressed := c.refusals.auth.allow(time.Now()); ok {
		c.log.Warn("peer connection refused", "peer", claimed, "remote", r.RemoteAddr,
			"reason", ref.Msg, "detail", c.memberDetail(claimed, r.RemoteAddr), "suppressed", suppressed)
	}
}

// refusalLogs rate-limits the log lines of refused peer connections, per kind.
type refusalLogs struct {
	skew, auth, byPeer logLimit
}

// logRefusedByPeer logs, rate-limited, that a peer refused this node's connection: a clock
// skew, a secret that differs, or this node missing from the peer's view.
func (l *refusalLogs) logRefusedByPeer(log *slog.Logger, peer, addr string, err error) {
	if ok, suppressed := l.byPeer.allow(time.Now()); ok {
		log.Warn("a peer refused this node's connection; its keys are loaded here meanwhile",
			"peer", peer, "addr", addr, "err", err, "suppressed", suppressed)
	}
}

// logEvery is the rate of each kind of refusal log line.
const logEvery = 10 * time.Second

// logLimit lets one log line through per logEvery and counts the others.
type logLimit struct {
	next       atomic.Int64 // unix nanoseconds before which lines are suppressed
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged now, and how many were suppressed since the last.
func (l *logLimit) allow(now time.Time) (bool, uint64) {
	next := l.next.Load()
	if now.UnixNano() < next || !l.next.CompareAndSwap(next, now.Add(logEvery).UnixNano()) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

// isMember is the wire server's IsMember: with a cluster secret, an upgrade is accepted only
// from another member that this node counts alive (in its ring, or joining it: its join is
// queued for the next rebuild), connecting from an address that member advertises.
func (c *Cluster) isMember(name, remoteAddr string) bool {
	if name == c.cfg.NodeName {
		return false // a node never dials itself
	}
	m, ok := c.aliveMember(name)
	return ok && fromMember(m, remoteAddr)
}

// aliveMember finds name among the alive members of the view, or else among the joins queued
// for the next rebuild (the member may have started fetching from this node before this node
// has put it in its ring).
func (c *Cluster) aliveMember(name string) (Member, bool) {
	members := c.view.Load().members
	if i, ok := slices.BinarySearchFunc(members, name, func(m Member, name string) int {
		return strings.Compare(m.Name, name)
	}); ok && members[i].State == Alive {
		return members[i], true
	}
	return c.events.joining(name)
}

// joining returns the member that the newest queued event about name says is alive, if any.
func (q *eventQueue) joining(name string) (Member, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(q.events) - 1; i >= 0; i-- {
		ev := q.events[i]
		if ev.name != name {
			continue
		}
		meta, err := decodeMeta(ev.meta)
		if ev.left || err != nil || meta.Leaving {
			return Member{}, false
		}
		return Member{Name: name, GossipAddr: ev.addr, HTTPAddr: meta.HTTPAddr, State: Alive}, true
	}
	return Member{}, false
}

// fromMember reports whether a connection from remoteAddr may come from m: its source IP is
// the IP of m's HTTP or gossip address. Where m advertises host names rather than IPs the
// address cannot be checked, and the name alone counts.
func fromMember(m Member, remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	from := net.ParseIP(host)
	checkable := false
	for _, addr := range []string{m.HTTPAddr, m.GossipAddr} {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		ip := net.ParseIP(h)
		if ip == nil {
			continue
		}
		checkable = true
		if ip.Equal(from) {
			return true
		}
	}
	return !checkable
}

// memberDetail says why a claimed name was not accepted as a member, for the log.
func (c *Cluster) memberDetail(name, remoteAddr string) string {
	if name == "" {
		return "no node name"
	}
	m, ok := c.aliveMember(name)
	switch {
	case name == c.cfg.NodeName:
		return "claims this node's own name"
	case !ok:
		return "not an alive member of this node's view"
	case !fromMember(m, remoteAddr):
		return fmt.Sprintf("member %s advertises %s (gossip %s), the connection comes from elsewhere", name, m.HTTPAddr, m.GossipAddr)
	}
	return "a member (the MAC, receiver or nonce was refused)"
}

// wireHandler answers the peer wire from the registered groups. A request that came over the
// wire is served by this node, whatever its view of the ring: GetLocal never asks another
// node, so a key crosses the network at most once and two nodes whose rings disagree cannot
// send a request back and forth.
type wireHandler struct{ c *Cluster }

func (h wireHandler) Fetch(ctx context.Context, groupName, key string) (wire.Value, error) {
	s, err := h.group(groupName)
	if err != nil {
		return wire.Value{}, err
	}
	res, err := s.g.GetLocal(ctx, key)
	if err != nil {
		return wire.Value{}, verdict(err)
	}
	if int64(len(res.Bytes)) > s.maxValue {
		return wire.Value{}, &wire.Error{Code: wire.CodeLoadFailed, Message: fmt.Sprintf(
			"value of %d bytes is above group %q's limit for peers (%d bytes)", len(res.Bytes), groupName, s.maxValue)}
	}
	// A stale value travels marked so (the wire sends its TTL as 1 ns): the asking node
	// keeps no copy of it and answers it stale (group's stale.go).
	return wire.Value{Bytes: res.Bytes, TTL: res.TTL, ContentType: res.ContentType, LastModified: res.LastModified,
		Stale: res.Stale, Age: res.Age}, nil
}

func (h wireHandler) Remove(_ context.Context, groupName, key string) error {
	s, err := h.group(groupName)
	if err != nil {
		return err
	}
	s.g.RemoveLocal(key)
	return nil
}

// Set stores a value a peer sent with SetLocal, which never forwards it: the sender found
// this node the key's owner. A value above the group's limit is refused.
func (h wireHandler) Set(_ context.Context, groupName, key string, v wire.Value) error {
	s, err := h.group(groupName)
	if err != nil {
		return err
	}
	if int64(len(v.Bytes)) > s.maxValue {
		return &wire.Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf(
			"value of %d bytes is above group %q's limit for peers (%d bytes)", len(v.Bytes), groupName, s.maxValue)}
	}
	if err := s.g.SetLocal(key, group.Value(v)); err != nil {
		return verdict(err)
	}
	return nil
}

var _ wire.SetHandler = wireHandler{}

func (h wireHandler) Purge(_ context.Context, groupName string) error {
	s, err := h.group(groupName)
	if err != nil {
		return err
	}
	s.g.PurgeLocal()
	return nil
}

func (h wireHandler) group(name string) (*servedGroup, error) {
	if s := h.c.served(name); s != nil {
		return s, nil
	}
	return nil, &wire.Error{Code: wire.CodeUnknownGroup, Message: fmt.Sprintf("%v: %q on node %s", ErrUnknownGroup, name, h.c.cfg.NodeName)}
}

// verdict maps an error of GetLocal (or SetLocal) to its wire code: the one place where the
// peer wire turns the group's errors into codes.
func verdict(err error) error {
	code := wire.CodeLoadFailed
	switch {
	case errors.Is(err, group.ErrNotFound):
		code = wire.CodeNotFound
	case errors.Is(err, group.ErrInvalidKey):
		code = wire.CodeInvalidKey
	case errors.Is(err, group.ErrLoaderPanic):
		code = wire.CodeLoaderPanic
	case errors.Is(err, group.ErrLoadTimeout):
		code = wire.CodeLoadTimeout
	case errors.Is(err, group.ErrOverloaded):
		code = wire.CodeLoadOverloaded
	case errors.Is(err, group.ErrValueTooLarge):
		code = wire.CodeValueTooLarge
	}
	return &wire.Error{Code: code, Message: err.Error()}
}
