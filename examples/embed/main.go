// Command embed runs groupcached as a library: three httpapi.Nodes in one process, each with a
// group over a custom loader (a group.LoaderFunc standing for a slow backend), linked into a
// cluster on loopback. It asks every node for the same keys at once, shows that the backend
// was asked for each key exactly once (by the key's owner; the other nodes fetched the value
// from it), reads one key over the HTTP API every node serves, and stops the nodes gracefully.
//
// In a real deployment each node is its own process: httpapi.DefaultNodeConfig() with the
// host's addresses in HTTPAddr and Cluster.GossipAddr, the same groups everywhere, and
// Cluster.Seeds naming some of the others; everything else is as here.
//
//	go run ./examples/embed
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/httpapi"
)

const (
	groupName     = "greetings"
	nodeCount     = 3
	keyCount      = 10
	clientsPerKey = 5 // concurrent Gets of each key on every node
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

// backend stands for the origin the cache protects, shared by the nodes as a database would
// be; it counts the loads of every key.
type backend struct {
	mu    sync.Mutex
	loads map[string]int
}

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

// startNode starts a node named name that joins seeds (none: it starts the cluster).
func startNode(ctx context.Context, name string, seeds []string, b *backend) (*httpapi.Node, *group.Group, error) {
	logger := slog.New(slog.DiscardHandler) // memberlist is chatty
	g, err := group.New(groupName, group.LoaderFunc(b.load), group.DefaultConfig(), logger)
	if err != nil {
		return nil, nil, err
	}
	cfg := httpapi.LocalNodeConfig() // 127.0.0.1, ports picked by the kernel, fast gossip
	cfg.Name = name
	cfg.Cluster.Seeds = seeds
	cfg.Logger = logger
	n, err := httpapi.NewNode(cfg, []*group.Group{g})
	if err != nil {
		return nil, nil, err
	}
	return n, g, n.Start(ctx)
}

// run starts the cluster, hammers it, prints what happened, and stops it. It fails when the
// backend saw a key more or less than once.
func run(ctx context.Context, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b := &backend{loads: make(map[string]int)}
	var nodes []*httpapi.Node
	var groups []*group.Group
	defer func() { // graceful: not ready, leave the cluster, drain, close
		for _, n := range nodes {
			err = errors.Join(err, n.Stop(context.Background()))
		}
	}()
	for i := range nodeCount {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Cluster().GossipAddr()}
		}
		n, g, err := startNode(ctx, fmt.Sprintf("node-%d", i+1), seeds, b)
		if n != nil {
			nodes = append(nodes, n)
		}
		if err != nil {
			return err
		}
		groups = append(groups, g)
	}
	for _, n := range nodes { // until every ring holds every node, so they agree on owners
		if err := n.WaitMembers(ctx, nodeCount); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "cluster of %d nodes: %s\n", nodeCount, strings.Join(nodes[0].Cluster().RingMembers(), ", "))

	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, g := range groups {
		for k := range keyCount * clientsPerKey {
			wg.Go(func() {
				key := fmt.Sprintf("key-%02d", k%keyCount)
				if res, gerr := g.Get(ctx, key); gerr != nil || string(res.Bytes) != "hello from the backend, key "+key {
					mu.Lock()
					err = errors.Join(err, fmt.Errorf("Get(%q) on %s = %q, %v", key, nodes[i].Name(), res.Bytes, gerr))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "%d concurrent Gets of %d keys on %d nodes\n", nodeCount*keyCount*clientsPerKey, keyCount, nodeCount)
	total := 0
	for k := range keyCount {
		key := fmt.Sprintf("key-%02d", k)
		b.mu.Lock()
		loads := b.loads[key]
		b.mu.Unlock()
		total += loads
		fmt.Fprintf(out, "  %s: owner %s, backend loads %d\n", key, nodes[0].Cluster().Owner(key), loads)
		if loads != 1 {
			err = errors.Join(err, fmt.Errorf("the backend loaded %s %d times, want once", key, loads))
		}
	}
	fmt.Fprintf(out, "the backend was asked %d times for %d keys\n", total, keyCount)
	for i, g := range groups {
		st := g.Stats()
		fmt.Fprintf(out, "  %s: gets %d, loaded from the backend %d, fetched from peers %d\n",
			nodes[i].Name(), st.Gets, st.LocalLoads, st.PeerLoads)
	}

	_, gerr := groups[1].Get(ctx, "missing-key")
	fmt.Fprintf(out, "missing-key: not found = %v\n", errors.Is(gerr, group.ErrNotFound))
	if !errors.Is(gerr, group.ErrNotFound) {
		return errors.Join(err, fmt.Errorf("Get(missing-key) = %v, want group.ErrNotFound", gerr))
	}

	// Every node also serves the HTTP API: any client, in any language, may ask any node.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, herr := client.Get("http://" + nodes[2].Addr() + "/groups/" + groupName + "/keys/" + httpapi.EscapeKey("key-00"))
	if herr != nil {
		return errors.Join(err, herr)
	}
	defer resp.Body.Close()
	body, herr := io.ReadAll(resp.Body)
	fmt.Fprintf(out, "GET key-00 from %s over HTTP: %s %q (source %s)\n", nodes[2].Name(), resp.Status, body, resp.Header.Get("X-Groupcached-Source"))
	return errors.Join(err, herr)
}
