package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
	"github.com/groupcached/groupcached/loader"
	"github.com/groupcached/groupcached/peers"
)

// stopBudget bounds a whole graceful stop (readiness delay, leave, drain, close): a node that
// got SIGTERM exits within it.
const stopBudget = 9 * time.Second

// leaveBudget bounds the wait for the cluster to hear that this node leaves, so that the
// drain keeps its share of stopBudget even when peers do not answer. Peers that miss the
// departure detect it by probing.
const leaveBudget = 3 * time.Second

// node is one groupcached process, as values: the HTTP listener, the cluster membership, the
// groups with their loaders, and the API server. main builds one; tests build several in one
// process. Build with newNode, then start; stop once.
type node struct {
	cfg Config
	log *slog.Logger

	listener net.Listener
	cluster  *peers.Cluster
	groups   []*group.Group
	loaders  []group.Loader // closed at stop; some hold pools or file handles
	api      *httpapi.API
	server   *http.Server

	// served receives http.Server.Serve's result: a failure of the listener while running.
	served chan error
}

// newNode builds a node from a validated Config: it binds the HTTP listener (so that the
// address peers advertise is the real one even for port 0), creates the cluster, the loaders
// and the groups, and the API. Nothing is served or gossiped until start. A loader that
// rejects its settings is reported as a *ConfigError pointing at its `loader:` line.
func newNode(cfg Config, logger *slog.Logger) (*node, error) {
	n := &node{cfg: cfg, log: logger, served: make(chan error, 1)}
	if err := n.build(); err != nil {
		n.release()
		return nil, err
	}
	return n, nil
}

// build creates the node's parts in dependency order; on error, release frees what exists.
func (n *node) build() (err error) {
	cfg := n.cfg

	n.listener, err = net.Listen("tcp", cfg.Node.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening for HTTP on %s: %w", cfg.Node.HTTPAddr, err)
	}

	n.cluster, err = peers.New(cfg.peersConfig(n.listener.Addr().String(), n.log))
	if err != nil {
		return fmt.Errorf("creating the cluster: %w", err)
	}

	for i, gc := range cfg.Groups {
		l, err := cfg.newLoader(i)
		if err != nil {
			return err
		}
		n.loaders = append(n.loaders, l)
		g, err := group.New(gc.Name, l, gc.Config, n.log)
		if err != nil {
			return fmt.Errorf("building group %q: %w", gc.Name, err)
		}
		n.cluster.Register(g)
		n.groups = append(n.groups, g)
	}

	n.api, err = httpapi.New(cfg.apiConfig(), n.groups, n.cluster, n.log)
	if err != nil {
		return fmt.Errorf("building the HTTP API: %w", err)
	}
	n.server = n.api.NewServer()
	return nil
}

// start serves HTTP, joins the cluster and then reports ready. It returns once the node is
// ready; a later failure of the HTTP server arrives on failed.
func (n *node) start(ctx context.Context) error {
	go func() { n.served <- n.server.Serve(n.listener) }()
	if err := n.cluster.Start(ctx); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = n.server.Shutdown(shutdownCtx)
		n.release()
		return fmt.Errorf("starting the cluster: %w", err)
	}
	n.api.SetReady(true)
	names := make([]string, len(n.groups))
	for i, g := range n.groups {
		names[i] = g.Name()
	}
	n.log.Info("groupcached ready", "node", n.cfg.Node.Name, "http", n.httpAddr(),
		"gossip", n.cluster.GossipAddr(), "join", n.cfg.Node.Join, "groups", names, "config", n.cfg.File)
	return nil
}

// failed delivers the HTTP server's error if it stops serving before stop is called.
func (n *node) failed() <-chan error { return n.served }

// httpAddr is the address the node serves on (the bound port when 0 was configured).
func (n *node) httpAddr() string { return n.listener.Addr().String() }

// stop takes the node out of service gracefully: /readyz turns 503, the node waits
// ShutdownDelay for load balancers to notice, leaves the cluster (peers stop sending it
// keys), stops accepting connections and drains in-flight requests, then stops gossip and
// closes the loaders. ctx bounds the whole stop; an error means in-flight requests were
// cut off.
func (n *node) stop(ctx context.Context) error {
	n.api.SetReady(false)
	n.log.Info("stopping: not ready", "delay", n.cfg.Node.ShutdownDelay)
	if d := n.cfg.Node.ShutdownDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	leaveCtx, cancel := context.WithTimeout(ctx, leaveBudget)
	if err := n.cluster.Leave(leaveCtx); err != nil {
		n.log.Warn("leaving the cluster", "err", err)
	}
	cancel()
	err := n.server.Shutdown(ctx)
	if err != nil {
		err = fmt.Errorf("draining in-flight requests: %w", err)
		_ = n.server.Close()
	}
	n.release()
	n.log.Info("stopped", "node", n.cfg.Node.Name)
	return err
}

// release stops gossip and closes the listener and the loaders. Safe on a partly built node.
func (n *node) release() {
	if n.cluster != nil {
		if err := n.cluster.Shutdown(); err != nil {
			n.log.Warn("stopping gossip", "err", err)
		}
	}
	if n.listener != nil {
		if err := n.listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			n.log.Warn("closing the HTTP listener", "err", err)
		}
	}
	for _, l := range n.loaders {
		if err := loader.Close(l); err != nil {
			n.log.Warn("closing a loader", "err", err)
		}
	}
	n.loaders = nil
}
