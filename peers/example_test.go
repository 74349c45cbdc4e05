package peers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

// A node is an HTTP server, a Cluster and its Groups. Two nodes in one process share one
// cache: whichever node is asked, the origin is called once.
func Example() {
	ctx := context.Background()
	var originCalls atomic.Int32
	origin := group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		originCalls.Add(1)
		return group.Value{Bytes: []byte("hello, " + key)}, nil
	})

	startNode := func(name string, seeds []string) (*peers.Cluster, *group.Group, func()) {
		// 1. Listen first, so the advertised HTTP address is known.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		cfg := peers.LocalConfig()
		cfg.NodeName = name
		cfg.HTTPAddr = ln.Addr().String()
		cfg.Seeds = seeds
		cfg.Logger = slog.New(slog.DiscardHandler)
		// 2. Build the cluster and register the groups it serves.
		cluster, err := peers.New(cfg)
		if err != nil {
			panic(err)
		}
		g, err := group.New("greetings", origin, group.DefaultConfig(), cfg.Logger)
		if err != nil {
			panic(err)
		}
		cluster.Register(g)
		// 3. Serve the peer endpoints, then join.
		mux := http.NewServeMux()
		mux.Handle(peers.PathPrefix+"/", cluster.Handler())
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		if err := cluster.Start(ctx); err != nil {
			panic(err)
		}
		return cluster, g, func() {
			_ = cluster.Leave(ctx)
			_ = srv.Close()
		}
	}

	a, groupA, stopA := startNode("node-a", nil)
	defer stopA()
	b, groupB, stopB := startNode("node-b", []string{a.GossipAddr()})
	defer stopB()

	// Wait until both nodes have both in their rings.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for (len(a.RingMembers()) < 2 || len(b.RingMembers()) < 2) && time.Now().Before(deadline) {
		<-tick.C
	}

	fromA, err := groupA.Get(ctx, "world")
	if err != nil {
		panic(err)
	}
	fromB, err := groupB.Get(ctx, "world")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(fromA.Bytes))
	fmt.Println(string(fromB.Bytes))
	fmt.Println("owner:", a.Owner("world") == b.Owner("world"), "origin calls:", originCalls.Load())
	// Output:
	// hello, world
	// hello, world
	// owner: true origin calls: 1
}

// Ready is what a /readyz handler answers: whether the node should get traffic, and why.
func ExampleCluster_Ready() {
	cfg := peers.LocalConfig()
	cfg.NodeName = "node-a"
	cfg.HTTPAddr = "127.0.0.1:8080"
	cfg.Seeds = []string{"127.0.0.1:7946"}
	cfg.Logger = slog.New(slog.DiscardHandler)
	cluster, err := peers.New(cfg)
	if err != nil {
		panic(err)
	}
	ready, reason := cluster.Ready()
	fmt.Println(ready, reason)
	// After Start: false, "joining: no seed has answered yet (seeds: 127.0.0.1:7946); retrying"
	// until the seed answers, then true, "joined seed 127.0.0.1:7946 (members alive: 2)".

	// Output:
	// false membership not started
}
