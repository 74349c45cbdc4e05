package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

// newNode builds the node that cfg describes: a loader and a group for each entry of
// `groups:`, and the httpapi.Node that serves them with the `node:` settings. A loader that
// rejects its settings is reported as a *ConfigError pointing at its `loader:` line.
func newNode(cfg Config, logger *slog.Logger) (*httpapi.Node, error) {
	groups, loaders, err := buildGroups(cfg, logger)
	if err != nil {
		return nil, err
	}
	n, err := httpapi.NewNode(nodeSettings(cfg, logger), groups, loaders...)
	if err != nil {
		return nil, errors.Join(err, closeAll(loaders))
	}
	return n, nil
}

// nodeSettings maps the `node:` block (and each group's load_timeout) onto the node's typed
// configuration. The node advertises its listener's real address, so the cluster's HTTPAddr
// is left for it to fill.
func nodeSettings(cfg Config, logger *slog.Logger) httpapi.NodeConfig {
	nc := httpapi.DefaultNodeConfig()
	nc.Name = cfg.Node.Name
	nc.HTTPAddr = cfg.Node.HTTPAddr
	nc.ShutdownDelay = cfg.Node.ShutdownDelay
	nc.HandOffBytes = int64(cfg.Node.HandOffBytes)
	nc.HandOffTimeout = cfg.Node.HandOffTimeout
	nc.Logger = logger
	nc.API = cfg.apiConfig()
	nc.PeerAddr = cfg.Node.PeerAddr
	nc.MaxConnections = cfg.Node.MaxConnections
	nc.MaxIdleConnections = cfg.Node.MaxIdleConnections
	if t := cfg.Node.TLS; t.enabled() {
		nc.TLS = &httpapi.TLSConfig{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, CAFile: t.CAFile}
	}
	pc := cfg.peersConfig("", logger)
	nc.Cluster = &pc
	return nc
}

// buildGroups builds each entry of `groups:` over its loader. It returns the loaders that
// must be closed at stop; on error it has closed them itself.
func buildGroups(cfg Config, logger *slog.Logger) (groups []*group.Group, closers []io.Closer, err error) {
	for i, gc := range cfg.Groups {
		l, err := cfg.newLoader(i)
		if err != nil {
			return nil, nil, errors.Join(err, closeAll(closers))
		}
		if c, ok := l.(io.Closer); ok {
			closers = append(closers, c)
		}
		g, err := group.New(gc.Name, l, gc.Config, logger)
		if err != nil {
			return nil, nil, errors.Join(fmt.Errorf("building group %q: %w", gc.Name, err), closeAll(closers))
		}
		groups = append(groups, g)
	}
	return groups, closers, nil
}

// closeAll closes every closer and returns their errors, joined.
func closeAll(closers []io.Closer) error {
	var errs []error
	for _, c := range closers {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing a loader: %w", err))
		}
	}
	return errors.Join(errs...)
}
