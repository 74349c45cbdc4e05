package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// getAll runs one Get per (node, key) pair concurrently and returns the first error.
func getAll(t *testing.T, reqs []struct {
	n   *testNode
	key string
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, len(reqs))
	var wg sync.WaitGroup
	for _, r := range reqs {
		wg.Go(func() {
			res, err := r.n.g.Get(ctx, r.key)
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: Get(%q): %w", r.n.name, r.key, err)
			case string(res.Bytes) != "value of "+r.key:
				errs <- fmt.Errorf("%s: Get(%q) = %q", r.n.name, r.key, res.Bytes)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type request = struct {
	n   *testNode
	key string
}

func TestClusterFillsOncePerCluster(t *testing.T) {
	// Each subtest holds its fills open until every Get has missed its node's caches and every
	// fetch has reached its owner, so that all requests for a key overlap its one fill, as
	// they do when an origin is slow: the hardest case for "once per cluster". (Requests that
	// arrive after a fill are answered from the cache; the Group also looks again inside the
	// fill for the caller that missed just before the fill stored its value.)
	var gate atomic.Pointer[chan struct{}]
	gatedLoad := func(ctx context.Context, node, key string) (group.Value, error) {
		select {
		case <-*gate.Load():
		case <-ctx.Done():
			return group.Value{}, ctx.Err()
		}
		return defaultLoad(ctx, node, key)
	}
	log := newLoadLog()
	// Generous timeouts: 900 requests under -race on 2 shared cores can take seconds to get
	// through, and the fills wait for all of them.
	gcfg := testGroupConfig()
	gcfg.LoadTimeout = 40 * time.Second
	nodes := startCluster(t, 5, log, func(string) nodeOptions { return nodeOptions{load: gatedLoad, group: gcfg} })
	misses := func() (n int64) {
		for _, node := range nodes {
			n += node.g.Stats().Loads
		}
		return n
	}

	tests := []struct {
		name  string
		keys  []string
		perNo int // concurrent Gets of each key on each node
	}{
		{"200 Gets of one cold key over 5 nodes", []string{"the-cold-key"}, 40},
		{"100 distinct cold keys from every node", func() []string {
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = fmt.Sprintf("distinct-%03d", i)
			}
			return keys
		}(), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			open := make(chan struct{})
			gate.Store(&open)
			before, missesBefore := log.total(), misses()
			var reqs []request
			for _, k := range tt.keys {
				for _, n := range nodes {
					for range tt.perNo {
						reqs = append(reqs, request{n, k})
					}
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				getAll(t, reqs)
			}()
			// Every Get misses on its node, and every key reaches its owner from the 4 others.
			want := int64(len(reqs) + 4*len(tt.keys))
			waitFor(t, 30*time.Second, func() bool { return misses()-missesBefore >= want })
			close(open)
			<-done

			if got := log.total() - before; got != len(tt.keys) {
				t.Errorf("%d loads for %d keys (%d Gets), want exactly one per key", got, len(tt.keys), len(reqs))
				for _, n := range nodes {
					st, cs := n.g.Stats(), n.c.Stats()
					t.Logf("%s: ring %v, rebuilds %d, fallback loads %d, unreachable %d, fetch errors %d",
						n.name, n.c.RingMembers(), cs.RingRebuilds, st.FallbackLoads, cs.Unreachable, cs.FetchErrors)
				}
			}
			for _, k := range tt.keys {
				owner := nodes[0].c.Owner(k)
				if got := log.loads(k); len(got) != 1 || got[0] != owner {
					t.Errorf("key %q loaded on %v, want once on its owner %s", k, got, owner)
				}
			}
		})
	}
	var peerLoads int64
	for _, n := range nodes {
		peerLoads += n.g.Stats().PeerLoads
	}
	if peerLoads == 0 {
		t.Error("no node fetched from a peer: the test did not exercise the transport")
	}
}

// waitFor polls cond until it holds, or fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("condition not met within %v", limit)
		case <-tick.C:
		}
	}
}

func TestClusterMembershipChanges(t *testing.T) {
	log := newLoadLog()
	nodes := startCluster(t, 4, log, nil)
	seed := []string{nodes[0].c.GossipAddr()}
	limit := 15 * time.Second

	steps := []struct {
		name string
		act  func() []*testNode // returns the nodes that must agree afterwards
	}{
		{"a node joins", func() []*testNode {
			nodes = append(nodes, startNode(t, "node-4", log, nodeOptions{seeds: seed}))
			return nodes
		}},
		{"a node leaves gracefully", func() []*testNode {
			leaver := byName(nodes, "node-4")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := leaver.c.Leave(ctx); err != nil {
				t.Errorf("Leave: %v", err)
			}
			nodes = slices.DeleteFunc(nodes, func(n *testNode) bool { return n == leaver })
			return nodes
		}},
		{"a node stops without leaving", func() []*testNode {
			crashed := byName(nodes, "node-3")
			crashed.stop()
			nodes = slices.DeleteFunc(nodes, func(n *testNode) bool { return n == crashed })
			return nodes
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			start := time.Now()
			survivors := step.act()
			took := waitConverged(t, survivors, limit)
			t.Logf("CONVERGENCE %s: every survivor agreed on %v after %v", step.name, names(survivors), (time.Since(start)).Round(time.Millisecond))
			_ = took
			for _, n := range survivors {
				members := n.c.Members()
				alive := 0
				share := 0.0
				for _, m := range members {
					if m.State == "alive" {
						alive++
						share += m.Share
					}
				}
				if alive != len(survivors) || share < 0.9999 || share > 1.0001 {
					t.Errorf("%s: Members() has %d alive with shares summing to %v, want %d and 1", n.name, alive, share, len(survivors))
				}
				if st := n.c.Stats(); st.Members != len(survivors) {
					t.Errorf("%s: Stats().Members = %d, want %d", n.name, st.Members, len(survivors))
				}
			}
		})
	}
	// The departed are listed with the state they left in.
	states := map[string]string{}
	for _, m := range nodes[0].c.Members() {
		states[m.Name] = string(m.State)
	}
	if states["node-4"] != "left" || states["node-3"] != "dead" {
		t.Errorf("departed members' states = %v, want node-4 left and node-3 dead", states)
	}
	// Keys are still filled once, by their owner in the new ring.
	getAll(t, []request{{nodes[0], "after-changes"}, {nodes[1], "after-changes"}, {nodes[2], "after-changes"}})
	if got := log.loads("after-changes"); len(got) != 1 || got[0] != nodes[0].c.Owner("after-changes") {
		t.Errorf("after the changes, key loaded on %v, want once on its owner", got)
	}
}

func TestClusterOwnerStoppedMidFill(t *testing.T) {
	const askersPerNode = 10
	all := []string{"node-0", "node-1", "node-2"}
	key := keyOwnedBy(t, all, "node-2", "midfill")
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	var once sync.Once
	load := func(ctx context.Context, node, k string) (group.Value, error) {
		if node == "node-2" {
			once.Do(func() { close(entered) })
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return defaultLoad(ctx, node, k)
	}
	log := newLoadLog()
	// No peeks: a fallback could then find the value in the other asking node's memory
	// (warm.go), and this test counts the loads of one fallback per node.
	noPeeks := func(c *Config) { c.WarmTime = -1 }
	nodes := startCluster(t, 3, log, func(string) nodeOptions { return nodeOptions{load: load, tune: noPeeks} })
	owner := byName(nodes, "node-2")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type answer struct {
		node string
		res  group.Result
		err  error
	}
	answers := make(chan answer, 2*askersPerNode)
	for _, n := range nodes[:2] {
		for range askersPerNode {
			go func() {
				res, err := n.g.Get(ctx, key)
				answers <- answer{n.name, res, err}
			}()
		}
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the owner's loader was never called")
	}
	owner.stop()

	for range 2 * askersPerNode {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Errorf("%s: Get: %v", a.node, a.err)
			} else if string(a.res.Bytes) != "value of "+key {
				t.Errorf("%s: Get = %q", a.node, a.res.Bytes)
			}
		case <-ctx.Done():
			t.Fatal("a Get hung after its owner stopped")
		}
	}
	loads := log.loads(key)
	slices.Sort(loads)
	if want := []string{"node-0", "node-1", "node-2"}; !slices.Equal(loads, want) {
		t.Errorf("loads = %v, want one fallback load on each asking node after the owner's: %v", loads, want)
	}
	for _, n := range nodes[:2] {
		if st := n.g.Stats(); st.FallbackLoads != 1 {
			t.Errorf("%s: FallbackLoads = %d, want 1", n.name, st.FallbackLoads)
		}
		if st := n.c.Stats(); st.Unreachable == 0 {
			t.Errorf("%s: cluster Unreachable = 0, want the failed fetch counted", n.name)
		}
	}
}

func TestClusterOwnerErrorReachesAsker(t *testing.T) {
	all := []string{"node-0", "node-1", "node-2"}
	boom := errors.New("origin exploded")
	keys := map[string]string{
		"failing":   keyOwnedBy(t, all, "node-0", "failing"),
		"panicking": keyOwnedBy(t, all, "node-0", "panicking"),
		"missing":   keyOwnedBy(t, all, "node-0", "missing"),
		"slow":      keyOwnedBy(t, all, "node-0", "slow"),
	}
	load := func(ctx context.Context, _, key string) (group.Value, error) {
		switch key {
		case keys["failing"]:
			return group.Value{}, boom
		case keys["panicking"]:
			panic("loader bug")
		case keys["missing"]:
			return group.Value{}, group.ErrNotFound
		case keys["slow"]:
			<-ctx.Done()
			return group.Value{}, ctx.Err()
		}
		return defaultLoad(ctx, "", key)
	}
	log := newLoadLog()
	nodes := startCluster(t, 3, log, func(name string) nodeOptions {
		cfg := testGroupConfig()
		if name == "node-0" {
			cfg.LoadTimeout = 200 * time.Millisecond // the owner times out long before its askers
		}
		return nodeOptions{load: load, group: cfg}
	})
	asker := nodes[1]

	tests := []struct {
		name     string
		want     error
		contains string
	}{
		{"failing", nil, "origin exploded"},
		{"panicking", group.ErrLoaderPanic, "panicked"},
		{"missing", group.ErrNotFound, "not found"},
		{"slow", group.ErrLoadTimeout, "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := keys[tt.name]
			_, err := asker.g.Get(context.Background(), key)
			if err == nil {
				t.Fatal("Get succeeded, want the owner's error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			if errors.Is(err, group.ErrPeerUnavailable) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q: want the owner's error mentioning %q", err, tt.contains)
			}
			if got := log.loads(key); !slices.Equal(got, []string{"node-0"}) {
				t.Errorf("loads = %v, want exactly one, on the owner node-0", got)
			}
		})
	}
	if st := asker.g.Stats(); st.FallbackLoads != 0 || st.LocalLoads+st.LocalLoadErrs != 0 {
		t.Errorf("asker stats: FallbackLoads %d, local loads %d: the asker must not load again", st.FallbackLoads, st.LocalLoads+st.LocalLoadErrs)
	}
}

func TestClusterRemoveAndPurgeClearEveryCopy(t *testing.T) {
	all := []string{"node-0", "node-1", "node-2"}
	log := newLoadLog()
	nodes := startCluster(t, 3, log, nil)
	owner := byName(nodes, "node-0")
	ctx := context.Background()

	tests := []struct {
		name       string
		invalidate func(n *testNode) (int, error)
	}{
		{"Remove on a non-owner", func(n *testNode) (int, error) {
			return n.g.Remove(ctx, keyOwnedBy(t, all, "node-0", "remove"))
		}},
		{"Purge on a non-owner", func(n *testNode) (int, error) { return n.g.Purge(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := keyOwnedBy(t, all, "node-0", "remove")
			// Fill: the owner's main cache, then a hot copy on each non-owner.
			for _, n := range nodes {
				if _, err := n.g.Get(ctx, key); err != nil {
					t.Fatal(err)
				}
			}
			for _, n := range nodes {
				res, err := n.g.Get(ctx, key)
				want := group.SourceHot
				if n == owner {
					want = group.SourceMain
				}
				if err != nil || res.Source != want {
					t.Fatalf("%s: second Get: source %v, err %v; want %v", n.name, res.Source, err, want)
				}
			}

			before := len(log.loads(key))
			confirmed, err := tt.invalidate(byName(nodes, "node-1"))
			if err != nil || confirmed != 2 {
				t.Fatalf("confirmed %d, err %v; want 2 peers and no error", confirmed, err)
			}

			// No copy is left: node-2 (a former hot copy) must go to the owner, and the owner
			// must load again, exactly once.
			res, err := byName(nodes, "node-2").g.Get(ctx, key)
			if err != nil || res.Source != group.SourcePeer {
				t.Errorf("node-2 after invalidation: source %v, err %v; want a fresh fetch from the owner", res.Source, err)
			}
			for _, n := range nodes {
				res, err := n.g.Get(ctx, key)
				if err != nil || res.Source == group.SourceLoader || res.Source == group.SourcePeer && n != byName(nodes, "node-1") {
					t.Errorf("%s after refill: source %v, err %v", n.name, res.Source, err)
				}
			}
			if got := len(log.loads(key)) - before; got != 1 {
				t.Errorf("owner loaded %d times after the invalidation, want 1", got)
			}
		})
	}
	if st := byName(nodes, "node-1").c.Stats(); st.Invalidations != 2 {
		t.Errorf("Invalidations = %d, want 2", st.Invalidations)
	}
}

func TestClusterSeedsByDNSNameAndRejoin(t *testing.T) {
	// Reserve a port for node-0's gossip so that node-1 can name it before it exists.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()

	log := newLoadLog()
	// node-1 starts first, seeded with a DNS name whose node is not up yet: Start must not
	// fail, and the rejoin loop must find it once it is.
	second := startNode(t, "node-1", log, nodeOptions{
		seeds: []string{"localhost:" + port},
		tune:  func(c *Config) { c.RejoinInterval = 100 * time.Millisecond },
	})
	first := startNode(t, "node-0", log, nodeOptions{
		tune: func(c *Config) { c.GossipAddr = "127.0.0.1:" + port },
	})
	took := waitConverged(t, []*testNode{first, second}, 10*time.Second)
	t.Logf("rejoin through a DNS seed merged the nodes %v after the seed started", took.Round(time.Millisecond))
}
