package wire_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// groupHandler serves the wire from a node's groups, as the peers package does: with
// GetLocal, so that a request that came from a peer is never forwarded again.
type groupHandler map[string]*group.Group

func (h groupHandler) Fetch(ctx context.Context, name, key string) (wire.Value, error) {
	g := h[name]
	if g == nil {
		return wire.Value{}, &wire.Error{Code: wire.CodeUnknownGroup, Message: name}
	}
	res, err := g.GetLocal(ctx, key)
	if err != nil {
		return wire.Value{}, verdict(err)
	}
	return wire.Value{Bytes: res.Bytes, TTL: res.TTL}, nil
}

func (h groupHandler) Remove(_ context.Context, name, key string) error {
	if g := h[name]; g != nil {
		g.RemoveLocal(key)
	}
	return nil
}

func (h groupHandler) Purge(_ context.Context, name string) error {
	if g := h[name]; g != nil {
		g.PurgeLocal()
	}
	return nil
}

// verdict maps the group's errors to wire codes: the one place on the serving side.
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
	}
	return &wire.Error{Code: code, Message: err.Error()}
}

// peer is a group.Peer over a wire Client, as the peers package adapts it.
type peer struct{ c *wire.Client }

var _ group.Peer = peer{}

func (p peer) Fetch(ctx context.Context, groupName, key string) (group.Value, error) {
	v, err := p.c.Fetch(ctx, groupName, key)
	if err == nil {
		return group.Value{Bytes: v.Bytes, TTL: v.TTL}, nil
	}
	if errors.Is(err, wire.ErrUnavailable) { // first: shutting_down also carries a code
		return group.Value{}, fmt.Errorf("%w: %w", group.ErrPeerUnavailable, err)
	}
	switch wire.CodeOf(err) {
	case wire.CodeNotFound:
		return group.Value{}, group.ErrNotFound
	case wire.CodeLoaderPanic:
		return group.Value{}, fmt.Errorf("%w: %w", group.ErrLoaderPanic, err)
	case wire.CodeLoadTimeout:
		return group.Value{}, fmt.Errorf("%w: %w", group.ErrLoadTimeout, err)
	}
	return group.Value{}, err // the peers package wraps the rest in its *RemoteError
}

// An owner node serves its group over the peer wire on its HTTP port; an asking node fetches
// through a Client, authenticated by the cluster secret.
func Example() {
	ctx := context.Background()
	secret := []byte("a cluster secret of 32 bytes....")
	loader := group.LoaderFunc(func(_ context.Context, key string) (group.Value, error) {
		if key == "missing" {
			return group.Value{}, group.ErrNotFound
		}
		return group.Value{Bytes: []byte("hello, " + key), TTL: time.Hour}, nil
	})
	g, err := group.New("greetings", loader, group.DefaultConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}

	// The owner: the wire Server is one more route of the node's HTTP server, behind its
	// middleware chain.
	scfg := wire.DefaultServerConfig()
	scfg.Name, scfg.Secret = "node-a", secret
	scfg.IsMember = func(name, _ string) bool { return name == "node-b" }
	srv, err := wire.NewServer(scfg, groupHandler{"greetings": g})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle(wire.DefaultPath, srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go httpServer.Serve(ln)
	defer httpServer.Close()

	// The asking node: one Client per peer.
	ccfg := wire.DefaultClientConfig()
	ccfg.Addr, ccfg.Self, ccfg.Peer, ccfg.Secret = ln.Addr().String(), "node-b", "node-a", secret
	c, err := wire.NewClient(ccfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	p := peer{c}

	v, err := p.Fetch(ctx, "greetings", "world")
	fmt.Printf("%s, TTL about an hour: %v, err: %v\n", v.Bytes, v.TTL > 59*time.Minute, err)
	_, err = p.Fetch(ctx, "greetings", "missing")
	fmt.Println(errors.Is(err, group.ErrNotFound))
	_, err = p.Fetch(ctx, "other", "world")
	fmt.Println(wire.CodeOf(err))
	res, _ := c.FetchBatch(ctx, "greetings", []string{"a", "b"})
	fmt.Printf("%s; %s\n", res[0].Bytes, res[1].Bytes)

	srv.Close()
	_, err = p.Fetch(ctx, "greetings", "world")
	fmt.Println(errors.Is(err, group.ErrPeerUnavailable))
	// Output:
	// hello, world, TTL about an hour: true, err: <nil>
	// true
	// unknown_group
	// hello, a; hello, b
	// true
}
