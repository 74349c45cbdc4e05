package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// Node is one groupcached node as a value: the HTTP listener and server, the API, the cluster
// membership and the groups it serves. Build it with NewNode, Start it, and Stop it once; a
// stopped node cannot start again. Several nodes may live in one process. Its methods are safe
// for concurrent use.
//
// A group whose loader (Group.Loader) implements group.Watcher, such as the sql loader with
// listen_channel, is watched from Start to Stop: the node runs Watch with a group.ChangeSink
// that drops each changed key here (and, when this node owns it, forwards the removal to the
// peers), purges the group here and on the peers when the feed comes back after a gap, and
// exports groupcached_invalidation_* series at /metrics (watch.go).
type Node struct {
	cfg NodeConfig
	log *slog.Logger

	listener net.Listener // HTTPAddr's, a *connLimiter when connections are capped
	server   *http.Server
	// peerListener and peerServer serve PeerAddr; nil without one.
	peerListener net.Listener
	peerServer   *http.Server
	tls          *nodeTLS // nil: plain HTTP
	api          *API
	cluster      *peers.Cluster // nil when the node serves alone
	groups       []*group.Group // in name order
	closers      []io.Closer    // closed last at Stop: the loaders' pools and files
	watches      *watches       // the groups' change feeds, run from Start to Stop

	// failed receives the error of an HTTP server that stopped serving before Stop (room for
	// both servers').
	failed chan error

	// stopHistory stops the sampler of the status page's history; set by Start.
	stopHistory func()

	// mu serializes Start and Stop, which hold it throughout: a Stop that arrives during
	// Start waits for it, and a second Stop waits for the first.
	mu    sync.Mutex
	state nodeState
}

type nodeState int

const (
	nodeBuilt nodeState = iota
	nodeStarted
	nodeStopped
)

// NewNode builds a node from cfg over groups (unique names): it binds the listener at
// cfg.HTTPAddr, so that the address peers are told is the real one even for port 0, creates
// the cluster (unless cfg.Cluster is nil), registers the groups with it, and builds the API.
// Nothing is served or gossiped until Start. closers, typically the groups' loaders that hold
// connection pools or files, belong to the node once NewNode succeeds: Stop closes them after
// the drain, and a failed Start at once. If NewNode fails they are still the caller's.
func NewNode(cfg NodeConfig, groups []*group.Group, closers ...io.Closer) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi: node config: %w", err)
	}
	n := &Node{cfg: cfg, log: orDefault(cfg.Logger), failed: make(chan error, 2)}
	if err := n.build(groups); err != nil {
		if n.cluster != nil {
			_ = n.cluster.Shutdown()
		}
		n.closeListeners()
		return nil, err
	}
	n.closers = closers
	return n, nil
}

// build creates the node's parts in dependency order.
func (n *Node) build(groups []*group.Group) (err error) {
	n.cfg.Logger = n.log
	if n.cfg.TLS != nil {
		if n.tls, err = newNodeTLS(*n.cfg.TLS, n.log); err != nil {
			return fmt.Errorf("httpapi: TLS: %w", err)
		}
	}
	if n.listener, err = n.listen(n.cfg.HTTPAddr); err != nil {
		return err
	}
	if n.cfg.PeerAddr != "" {
		if n.peerListener, err = n.listen(n.cfg.PeerAddr); err != nil {
			return err
		}
	}
	var cluster Cluster // a nil *peers.Cluster must stay a nil interface
	if n.cfg.Cluster != nil {
		pc := n.cfg.clusterConfig(n.PeerAddr())
		if n.tls != nil && pc.TLS == nil {
			pc.TLS = n.tls.client.Clone() // peers serve TLS too: dial them with the node's roots and certificate
		}
		if n.cluster, err = peers.New(pc); err != nil {
			return fmt.Errorf("httpapi: %w", err)
		}
		cluster = n.cluster
	}
	// The API checks the groups (none nil, no two of a name) before the cluster sees them.
	if n.api, err = New(n.cfg.apiConfig(), groups, cluster, n.log); err != nil {
		return err
	}
	n.groups = n.api.order
	if n.cluster != nil {
		for _, g := range n.groups {
			n.cluster.Register(g)
		}
	}
	if err := n.buildWatches(); err != nil {
		return err
	}
	if err := n.api.Registry().Register(newWarmCollector(n.groups)); err != nil { // handoff.go
		return fmt.Errorf("httpapi: registering metrics: %w", err)
	}
	n.api.history = newHistory(n.cfg.History, n.groups)
	n.server = n.newServer(n.listener, false)
	if n.peerListener != nil {
		n.api.splitPeers = true
		n.peerServer = n.newServer(n.peerListener, true)
	}
	return nil
}

// Start serves HTTP, joins the cluster and then reports ready (/readyz answers 200). It returns
// once the node is ready; ctx bounds the first lookup of the seeds. A later failure of the
// HTTP server arrives on Failed. If Start fails, the node is released (listener, gossip,
// closers) and cannot be started again.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != nodeBuilt {
		return errors.New("httpapi: Node.Start called twice or after Stop")
	}
	n.state = nodeStarted
	n.watches.start(ctx) // waits (5 s at most) for the change feeds, so that none starts behind a request
	n.serve(n.server, n.listener)
	if n.peerServer != nil {
		n.serve(n.peerServer, n.peerListener)
	}
	if n.cluster != nil {
		if err := n.cluster.Start(ctx); err != nil {
			n.state = nodeStopped
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = n.shutdownServers(shutdownCtx)
			n.release()
			return fmt.Errorf("httpapi: starting the cluster: %w", err)
		}
	}
	n.stopHistory = n.api.history.start()
	n.api.SetReady(true)
	names := make([]string, len(n.groups))
	for i, g := range n.groups {
		names[i] = g.Name()
	}
	attrs := []any{"node", n.cfg.Name, "http", n.Addr()}
	if n.cluster != nil {
		attrs = append(attrs, "gossip", n.cluster.GossipAddr(), "join", n.cfg.Cluster.Seeds)
	}
	if n.peerListener != nil {
		attrs = append(attrs, "peer", n.PeerAddr())
	}
	attrs = append(attrs, "tls", n.tls != nil)
	n.log.Info("groupcached ready", append(attrs, "groups", names)...)
	if ok, reason := n.api.groupsReady(); !ok {
		n.log.Warn("an origin is not ready: /readyz answers 503 until it is (retrying)", "reason", reason)
	}
	return nil
}

// Stop takes the node out of service gracefully: /readyz turns 503, the node waits
// ShutdownDelay for load balancers to notice, hands its most valuable entries to their next
// owners (HandOffBytes, bounded by HandOffTimeout), leaves the cluster (peers stop sending it keys;
// bounded by LeaveTimeout), stops accepting connections and drains the requests in flight,
// then stops the change feeds and gossip and closes the listener and the closers. ctx and
// StopTimeout bound the whole stop; an error means requests in flight were cut off. Stop on a
// node never started releases it; a second Stop does nothing.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.state {
	case nodeStopped:
		return nil
	case nodeBuilt:
		n.state = nodeStopped
		n.release()
		return nil
	}
	n.state = nodeStopped
	if n.cfg.StopTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.StopTimeout)
		defer cancel()
	}

	n.api.SetReady(false)
	n.log.Info("stopping: not ready", "node", n.cfg.Name, "delay", n.cfg.ShutdownDelay)
	if d := n.cfg.ShutdownDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	n.handOff(ctx) // while still a member: the values this node owns go to their next owners (handoff.go)
	if n.cluster != nil {
		leaveCtx, cancel := ctx, context.CancelFunc(func() {})
		if n.cfg.LeaveTimeout > 0 {
			leaveCtx, cancel = context.WithTimeout(ctx, n.cfg.LeaveTimeout)
		}
		if err := n.cluster.Leave(leaveCtx); err != nil {
			n.log.Warn("leaving the cluster", "node", n.cfg.Name, "err", err)
		}
		cancel()
	}
	err := n.shutdownServers(ctx)
	if err != nil {
		err = fmt.Errorf("httpapi: draining in-flight requests: %w", err)
		_ = n.server.Close()
		if n.peerServer != nil {
			_ = n.peerServer.Close()
		}
	}
	n.release()
	n.log.Info("stopped", "node", n.cfg.Name)
	return err
}

// release stops the history's sampler, the change feeds and gossip, and closes the listener
// and the closers.
func (n *Node) release() {
	if n.stopHistory != nil {
		n.stopHistory()
	}
	n.watches.stop()
	if n.cluster != nil {
		if err := n.cluster.Shutdown(); err != nil {
			n.log.Warn("stopping gossip", "node", n.cfg.Name, "err", err)
		}
	}
	n.closeListeners()
	for _, c := range n.closers {
		if err := c.Close(); err != nil {
			n.log.Warn("closing a loader", "node", n.cfg.Name, "err", err)
		}
	}
	n.closers = nil
}

// membersPoll is how often WaitMembers looks at the ring.
const membersPoll = 10 * time.Millisecond

// WaitMembers waits until this node's ring holds exactly want members, itself included, or
// until ctx ends. Once every node of a cluster of want nodes has returned, they all agree on
// the owner of every key. A node alone always has one member.
func (n *Node) WaitMembers(ctx context.Context, want int) error {
	members := func() int {
		if n.cluster == nil {
			return 1
		}
		return n.cluster.Stats().Members
	}
	tick := time.NewTicker(membersPoll)
	defer tick.Stop()
	for {
		got := members()
		if got == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("httpapi: waiting for %d members in the ring of %s, which has %d: %w",
				want, n.cfg.Name, got, ctx.Err())
		case <-tick.C:
		}
	}
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr returns the address the node listens on: HTTPAddr with the port the kernel picked
// when it was 0. It is known from NewNode on.
func (n *Node) Addr() string { return n.listener.Addr().String() }

// PeerAddr returns the address the node serves its peers on, and advertises to them: PeerAddr
// with the port the kernel picked when it was 0, or Addr when the node has no PeerAddr.
func (n *Node) PeerAddr() string {
	if n.peerListener == nil {
		return n.Addr()
	}
	return n.peerListener.Addr().String()
}

// ClientTLS returns a new copy of the TLS configuration for dialling this node's peers: the
// roots of TLSConfig.CAFile (else ClientCAFile, else the system's), and the node's own
// certificate, reloaded as it rotates, for peers that ask for one. Nil when the node does
// not serve TLS.
func (n *Node) ClientTLS() *tls.Config {
	if n.tls == nil {
		return nil
	}
	return n.tls.client.Clone()
}

// Cluster returns the node's membership (ring, owners, members, gossip address), or nil when
// the node serves alone.
func (n *Node) Cluster() *peers.Cluster { return n.cluster }

// Groups returns the groups the node serves, in name order.
func (n *Node) Groups() []*group.Group { return slices.Clone(n.groups) }

// Registry returns the node's own Prometheus registry, which /metrics serves; callers may
// register their own collectors on it.
func (n *Node) Registry() *prometheus.Registry { return n.api.Registry() }

// Failed delivers an HTTP server's error if it stops serving on its own, before Stop (a
// listener failed). It delivers nothing after a normal Stop.
func (n *Node) Failed() <-chan error { return n.failed }
