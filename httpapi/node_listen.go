package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
)

// peerListenerKey marks, in a request's context, a request that arrived on PeerAddr.
type peerListenerKey struct{}

// listen binds addr, capped by MaxConnections.
func (n *Node) listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpapi: listening for HTTP on %s: %w", addr, err)
	}
	if maxConns, maxIdle := n.cfg.connLimits(); maxConns > 0 {
		return newConnLimiter(l, maxConns, maxIdle), nil
	}
	return l, nil
}

// newServer returns the server of listener l: the API's, reporting to l's connection limiter,
// with the node's TLS, and marking its requests when it serves PeerAddr.
func (n *Node) newServer(l net.Listener, peer bool) *http.Server {
	srv := n.api.NewServer()
	if lim, ok := l.(*connLimiter); ok {
		srv.ConnState = lim.connState
	}
	if n.tls != nil {
		srv.TLSConfig = n.tls.server.Clone()
	}
	if peer {
		srv.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, peerListenerKey{}, true)
		}
	}
	return srv
}

// serve runs srv on l in a goroutine; a failure before Shutdown goes to Failed.
func (n *Node) serve(srv *http.Server, l net.Listener) {
	go func() {
		var err error
		if n.tls != nil {
			err = srv.ServeTLS(l, "", "") // the certificate comes from TLSConfig.GetCertificate
		} else {
			err = srv.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			n.failed <- err
		}
	}()
}

// shutdownServers stops both servers accepting and drains their requests within ctx.
func (n *Node) shutdownServers(ctx context.Context) error {
	err := n.server.Shutdown(ctx)
	if n.peerServer != nil {
		err = errors.Join(err, n.peerServer.Shutdown(ctx))
	}
	return err
}

// closeListeners closes the listeners that are open.
func (n *Node) closeListeners() {
	for _, l := range []net.Listener{n.listener, n.peerListener} {
		if l == nil {
			continue
		}
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			n.log.Warn("closing an HTTP listener", "node", n.cfg.Name, "err", err)
		}
	}
}
