package peers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

const testGroup = "things"

// testLogger is silent unless GROUPCACHED_TEST_LOG is set: five memberlist nodes in one
// process log every probe.
func testLogger() *slog.Logger {
	if os.Getenv("GROUPCACHED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testGroupConfig is small and copies every fetched value into the hot cache.
func testGroupConfig() group.Config {
	cfg := group.DefaultConfig()
	cfg.CacheBytes = 1 << 20
	cfg.HotCacheFraction = 0.25
	cfg.HotCacheRate = 1
	cfg.NegativeTTL = 0
	cfg.LoadTimeout = 5 * time.Second
	// The transport's tests hold hundreds of loads at once (bounds_test.go): no admission
	// bound (group's admit.go has its own tests).
	cfg.MaxConcurrentLoads, cfg.MaxLoadingBytes = 0, 0
	return cfg
}

// loadFunc is one node's loader behaviour; the default answers "value of <key>".
type loadFunc func(ctx context.Context, node, key string) (group.Value, error)

func defaultLoad(_ context.Context, _, key string) (group.Value, error) {
	return group.Value{Bytes: []byte("value of " + key)}, nil
}

// loadLog records every loader call of every node of a test cluster.
type loadLog struct {
	mu    sync.Mutex
	calls map[string][]string // key -> nodes that loaded it, in order
}

func newLoadLog() *loadLog { return &loadLog{calls: make(map[string][]string)} }

func (l *loadLog) loader(node string, fn loadFunc) group.Loader {
	if fn == nil {
		fn = defaultLoad
	}
	return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		l.mu.Lock()
		l.calls[key] = append(l.calls[key], node)
		l.mu.Unlock()
		return fn(ctx, node, key)
	})
}

// loads returns the nodes that loaded key.
func (l *loadLog) loads(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls[key])
}

func (l *loadLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, nodes := range l.calls {
		n += len(nodes)
	}
	return n
}

// testNode is one node of a test cluster: a Cluster, a Group and a real HTTP server.
type testNode struct {
	name  string
	c     *Cluster
	g     *group.Group
	srv   *httptest.Server
	start time.Time
}

type nodeOptions struct {
	seeds []string
	load  loadFunc
	group group.Config
	tune  func(*Config)
	// server adjusts the HTTP server before it starts.
	server func(*http.Server)
}

// newNode builds a node on 127.0.0.1 ports from :0 without starting its membership. Cleanup
// stops it abruptly.
func newNode(t testing.TB, name string, log *loadLog, opt nodeOptions) *testNode {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg := LocalConfig()
	cfg.NodeName = name
	cfg.HTTPAddr = srv.Listener.Addr().String()
	cfg.Seeds = opt.seeds
	cfg.Logger = testLogger()
	if opt.tune != nil {
		opt.tune(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	gcfg := opt.group
	if gcfg.CacheBytes == 0 {
		gcfg = testGroupConfig()
	}
	g, err := group.New(testGroup, log.loader(name, opt.load), gcfg, cfg.Logger)
	if err != nil {
		t.Fatalf("group.New: %v", err)
	}
	c.Register(g)
	srv.Config.Handler = c.Handler()
	if opt.server != nil {
		opt.server(srv.Config)
	}
	srv.Start()
	n := &testNode{name: name, c: c, g: g, srv: srv}
	t.Cleanup(n.stop)
	return n
}

// startNode builds and starts a node.
func startNode(t testing.TB, name string, log *loadLog, opt nodeOptions) *testNode {
	t.Helper()
	n := newNode(t, name, log, opt)
	n.start = time.Now()
	if err := n.c.Start(context.Background()); err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	return n
}

// stop crashes the node: no leave, connections cut.
func (n *testNode) stop() {
	_ = n.c.Shutdown()
	n.srv.CloseClientConnections()
	n.srv.Close()
}

// startCluster starts nodes node-0..node-(size-1), all seeded with node-0, and waits until
// they agree on the ring.
func startCluster(t testing.TB, size int, log *loadLog, opt func(name string) nodeOptions) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range size {
		name := "node-" + strconv.Itoa(i)
		o := nodeOptions{}
		if opt != nil {
			o = opt(name)
		}
		if i > 0 {
			o.seeds = []string{nodes[0].c.GossipAddr()}
		}
		nodes = append(nodes, startNode(t, name, log, o))
	}
	took := waitConverged(t, nodes, 20*time.Second)
	t.Logf("%d nodes converged %v after the last start", size, took.Round(time.Millisecond))
	return nodes
}

// waitConverged polls until every node's ring holds exactly the given nodes, and returns how
// long that took.
func waitConverged(t testing.TB, nodes []*testNode, limit time.Duration) time.Duration {
	t.Helper()
	want := make([]string, len(nodes))
	for i, n := range nodes {
		want[i] = n.name
	}
	slices.Sort(want)
	start := time.Now()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		agreed := true
		for _, n := range nodes {
			if !slices.Equal(n.c.RingMembers(), want) {
				agreed = false
				break
			}
		}
		if agreed {
			return time.Since(start)
		}
		select {
		case <-deadline.C:
			for _, n := range nodes {
				t.Logf("%s sees %v", n.name, n.c.RingMembers())
			}
			t.Fatalf("nodes did not agree on ring %v within %v", want, limit)
		case <-tick.C:
		}
	}
}

// keyOwnedBy returns a key with the given prefix that the ring of names assigns to owner.
func keyOwnedBy(t testing.TB, names []string, owner, prefix string) string {
	t.Helper()
	r := NewRing(names)
	for i := range 10_000 {
		k := prefix + "-" + strconv.Itoa(i)
		if r.OwnerName(k) == owner {
			return k
		}
	}
	t.Fatalf("no key for %s", owner)
	return ""
}

func names(nodes []*testNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.name
	}
	return out
}

func byName(nodes []*testNode, name string) *testNode {
	for _, n := range nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}
