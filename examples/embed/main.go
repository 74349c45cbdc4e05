// Command embed runs groupcached as a library: three nodes in one process, each with a group
// over a custom loader (a group.LoaderFunc standing for a slow backend), linked into a cluster
// by the peers package on loopback. It asks every node for the same keys at once and shows that
// the backend was asked for each key exactly once: by the key's owner, while the other nodes
// fetched the value from it.
//
// In a real deployment each node is its own process with the same groups and a Seeds list
// naming some of the others; everything else is as here.
//
//	go run ./examples/embed
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

const (
	groupName = "greetings"
	nodeCount = 3
	keyCount  = 10
	// clientsPerKey is how many concurrent Gets of each key every node receives.
	clientsPerKey = 5
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// backend stands for the origin the cache protects; it counts the loads of every key.
type backend struct {
	mu    sync.Mutex
	loads map[string]int
}

// load is the groups' loader. It is shared by the three nodes, as a database would be.
func (b *backend) load(ctx context.Context, key string) (group.Value, error) {
	if strings.HasPrefix(key, "missing") {
		return group.Value{}, fmt.Errorf("backend has no %q: %w", key, group.ErrNotFound)
	}
	b.mu.Lock()
	b.loads[key]++
	b.mu.Unlock()
	select { // a slow origin: concurrent requests for the key pile up behind one load
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return group.Value{}, ctx.Err()
	}
	return group.Value{Bytes: []byte("hello from the backend, key " + key)}, nil
}

func (b *backend) count(key string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loads[key]
}

// node is one member of the cluster: a group, its cluster membership, and the HTTP server on
// which peers fetch the keys it owns.
type node struct {
	group   *group.Group
	cluster *peers.Cluster
	server  *http.Server
}

// startNode starts a node whose gossip joins seeds (none: it starts the cluster).
func startNode(ctx context.Context, name string, seeds []string, load group.LoaderFunc, logger *slog.Logger) (*node, error) {
	cfg := group.DefaultConfig()
	cfg.CacheBytes = 8 << 20
	cfg.LoadTimeout = 10 * time.Second
	g, err := group.New(groupName, load, cfg, logger)
	if err != nil {
		return nil, err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: listening: %w", name, err)
	}
	pcfg := peers.LocalConfig()
	pcfg.NodeName = name
	pcfg.HTTPAddr = ln.Addr().String()
	pcfg.Seeds = seeds
	pcfg.Logger = logger
	c, err := peers.New(pcfg)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.Register(g)

	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns http.ErrServerClosed at stop
	if err := c.Start(ctx); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &node{group: g, cluster: c, server: srv}, nil
}

// stop leaves the cluster, then stops serving.
func (n *node) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := n.cluster.Leave(ctx)
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if n.server.Shutdown(ctx) != nil {
		// What is left are connections a peer's pool dialed and never used: net/http counts
		// them as busy for 5 s. No request is in flight any more, so close them.
		_ = n.server.Close()
	}
	return err
}

// waitForRing polls until every node's ring holds every node, so that they agree on who owns
// each key.
func waitForRing(ctx context.Context, nodes []*node) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := true
		for _, n := range nodes {
			ready = ready && len(n.cluster.RingMembers()) == len(nodes)
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d nodes in every ring: %w", len(nodes), ctx.Err())
		case <-tick.C:
		}
	}
}

// run starts the cluster, hammers it, prints what happened, and stops it. It fails when the
// backend saw a key more or less than once.
func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil)) // memberlist is chatty
	b := &backend{loads: make(map[string]int)}

	var nodes []*node
	defer func() {
		for _, n := range nodes {
			err = errors.Join(err, n.stop())
		}
	}()
	var seeds []string
	for i := range nodeCount {
		n, err := startNode(ctx, fmt.Sprintf("node-%d", i+1), seeds, b.load, logger)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		seeds = []string{nodes[0].cluster.GossipAddr()}
	}
	if err := waitForRing(ctx, nodes); err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster of %d nodes: %s\n", len(nodes), strings.Join(nodes[0].cluster.RingMembers(), ", "))

	keys := make([]string, keyCount)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%02d", i)
	}
	// Every node receives clientsPerKey concurrent Gets of every key, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, nodeCount*keyCount*clientsPerKey)
	for _, n := range nodes {
		for _, k := range keys {
			for range clientsPerKey {
				wg.Go(func() {
					res, err := n.group.Get(ctx, k)
					if err != nil {
						errs <- fmt.Errorf("Get(%q) on %s: %w", k, n.cluster.Name(), err)
						return
					}
					if want := "hello from the backend, key " + k; string(res.Bytes) != want {
						errs <- fmt.Errorf("Get(%q) on %s = %q, want %q", k, n.cluster.Name(), res.Bytes, want)
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	var failures []error
	for e := range errs {
		failures = append(failures, e)
	}
	if err := errors.Join(failures...); err != nil {
		return err
	}

	gets := nodeCount * keyCount * clientsPerKey
	fmt.Fprintf(out, "%d concurrent Gets of %d keys on %d nodes\n", gets, keyCount, nodeCount)
	total := 0
	var wrong []string
	for _, k := range keys {
		loads := b.count(k)
		total += loads
		fmt.Fprintf(out, "  %s: owner %s, backend loads %d\n", k, nodes[0].cluster.Owner(k), loads)
		if loads != 1 {
			wrong = append(wrong, k)
		}
	}
	fmt.Fprintf(out, "the backend was asked %d times for %d keys\n", total, keyCount)
	for _, n := range nodes {
		st := n.group.Stats()
		fmt.Fprintf(out, "  %s: gets %d, loaded from the backend %d, fetched from peers %d\n",
			n.cluster.Name(), st.Gets, st.LocalLoads, st.PeerLoads)
	}

	_, err = nodes[1].group.Get(ctx, "missing-key")
	fmt.Fprintf(out, "missing-key: not found = %v\n", errors.Is(err, group.ErrNotFound))
	if !errors.Is(err, group.ErrNotFound) {
		return fmt.Errorf("Get(missing-key) = %v, want group.ErrNotFound", err)
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return fmt.Errorf("the backend loaded %s more or less than once", strings.Join(wrong, ", "))
	}
	return nil
}
