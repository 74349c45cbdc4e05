package peers

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkReady fails the test unless n's readiness is ready, with a reason containing each of
// words.
func checkReady(t *testing.T, n *testNode, ready bool, words ...string) {
	t.Helper()
	ok, reason := n.c.Ready()
	if ok != ready {
		t.Errorf("%s: Ready() = %v (%q), want %v", n.name, ok, reason, ready)
	}
	for _, w := range words {
		if !strings.Contains(reason, w) {
			t.Errorf("%s: Ready() reason %q does not mention %q", n.name, reason, w)
		}
	}
}

func TestClusterReadyOnceASeedAnswers(t *testing.T) {
	// node-1's only seed is not up: it is not ready, and stays so through several retries;
	// once the seed starts, node-1 joins it at its next retry and becomes ready.
	seedAddr := reserveAddr(t)
	log := newLoadLog()
	rec := &logRecorder{}
	n := newNode(t, "node-1", log, nodeOptions{seeds: []string{seedAddr}, tune: func(c *Config) {
		c.Logger = slog.New(rec)
	}})
	checkReady(t, n, false, "not started")
	if err := n.c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkReady(t, n, false, "no seed has answered", seedAddr)
	waitFor(t, 10*time.Second, func() bool { return len(rec.find("missing seeds still unreachable")) >= 3 })
	checkReady(t, n, false, "no seed has answered", seedAddr)

	seed := startNode(t, "node-0", log, nodeOptions{tune: func(c *Config) { c.GossipAddr = seedAddr }})
	checkReady(t, seed, true, "no seeds configured")
	start := time.Now()
	waitFor(t, 10*time.Second, func() bool { ok, _ := n.c.Ready(); return ok })
	t.Logf("READY: node-1 ready %v after its seed started", time.Since(start).Round(time.Millisecond))
	checkReady(t, n, true, "joined seed "+seedAddr)
	waitConverged(t, []*testNode{seed, n}, 10*time.Second)
	checkReady(t, n, true, "(members alive: 2)")

	if err := n.c.Leave(context.Background()); err != nil {
		t.Errorf("Leave: %v", err)
	}
	checkReady(t, n, false, "stopped")
	if got := len(rec.find("joined the cluster; ready")); got != 1 {
		t.Errorf("node-1 logged becoming ready %d times, want once", got)
	}
}

func TestClusterReadyWithoutSeedsToJoin(t *testing.T) {
	// A seed list that names only the node itself, or members that joined it first, leaves
	// nothing to join: ready.
	self := reserveAddr(t)
	n := startNode(t, "node-0", newLoadLog(), nodeOptions{seeds: []string{self}, tune: func(c *Config) { c.GossipAddr = self }})
	checkReady(t, n, true, "only seed is itself")
}

func TestClusterRefusesADuplicateName(t *testing.T) {
	// A second node-1 starts at another address, seeded with node-0. The cluster must keep
	// the original: the duplicate stays out of every ring, is not ready and says why, logs
	// it once however often it retries, and the original keeps its keys. memberlist must not
	// log "Conflicting address", as it does when the duplicate's entry gets into its table.
	log := newLoadLog()
	recs := map[string]*logRecorder{}
	withRecorder := func(name string) nodeOptions {
		rec := &logRecorder{}
		recs[name] = rec
		return nodeOptions{tune: func(c *Config) { c.Logger = slog.New(rec) }}
	}
	nodes := startCluster(t, 2, log, withRecorder)
	seed, original := nodes[0], nodes[1]

	dupLog := newLoadLog()
	dupRec := &logRecorder{}
	dup := startNode(t, "node-1", dupLog, nodeOptions{
		seeds: []string{seed.c.GossipAddr()},
		tune:  func(c *Config) { c.Logger = slog.New(dupRec) },
	})
	checkReady(t, dup, false, "name conflict", `"node-1"`, original.c.GossipAddr())
	// Let it retry a few times.
	waitFor(t, 10*time.Second, func() bool { return len(dupRec.find("join refused: name conflict")) >= 3 })
	checkReady(t, dup, false, "name conflict", original.c.GossipAddr())
	if got := len(dupRec.find("refusing to become ready")); got != 1 {
		t.Errorf("the duplicate logged its refusal %d times, want once", got)
	}
	if got := dup.c.RingMembers(); !slices.Equal(got, []string{"node-1"}) {
		t.Errorf("the duplicate's ring = %v, want itself alone", got)
	}
	for _, n := range nodes {
		checkReady(t, n, true)
		if got := n.c.RingMembers(); !slices.Equal(got, []string{"node-0", "node-1"}) {
			t.Errorf("%s's ring = %v, want node-0 and node-1", n.name, got)
		}
		for _, m := range n.c.Members() {
			if m.Name == "node-1" && m.HTTPAddr != original.srv.Listener.Addr().String() {
				t.Errorf("%s maps node-1 to %s, not to the original", n.name, m.HTTPAddr)
			}
		}
		if got := recs[n.name].find("Conflicting address"); len(got) > 0 {
			t.Errorf("%s: memberlist logged %d conflicts", n.name, len(got))
		}
	}
	if got := recs["node-0"].find("refusing a join"); len(got) == 0 {
		t.Error("node-0 did not log why it refused the duplicate")
	}
	key := keyOwnedBy(t, []string{"node-0", "node-1"}, "node-1", "dup")
	if _, err := seed.g.Get(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if got := log.loads(key); !slices.Equal(got, []string{"node-1"}) || original.g.Stats().Loads != 1 || dupLog.total() != 0 {
		t.Errorf("key loaded by %v (original loads %d, duplicate %d), want once by the original",
			got, original.g.Stats().Loads, dupLog.total())
	}

	// Once the original is gone and the cluster has declared it dead, the name is free: the
	// duplicate, still retrying, joins and becomes ready.
	original.stop()
	start := time.Now()
	waitFor(t, 20*time.Second, func() bool { ok, _ := dup.c.Ready(); return ok })
	waitMerged(t, []*testNode{seed, dup}, 20*time.Second)
	t.Logf("DUPLICATE: took over the name %v after the original stopped", time.Since(start).Round(time.Millisecond))
}

func TestClusterRefusesANameTheClusterNeverReleases(t *testing.T) {
	// With DeadNodeReclaimTime 0 (DefaultConfig's), memberlist never lets a dead member's
	// name move to another address: a node restarted under that name elsewhere would be in
	// nobody's ring while it believed itself a member. It must stay unready and say why.
	log := newLoadLog()
	noReclaim := func(string) nodeOptions {
		return nodeOptions{tune: func(c *Config) { c.DeadNodeReclaimTime = 0 }}
	}
	nodes := startCluster(t, 2, log, noReclaim)
	seed, crashed := nodes[0], nodes[1]
	crashed.stop()
	waitConverged(t, nodes[:1], 20*time.Second)

	again := startNode(t, "node-1", log, nodeOptions{
		seeds: []string{seed.c.GossipAddr()},
		tune:  func(c *Config) { c.DeadNodeReclaimTime = 0 },
	})
	checkReady(t, again, false, "name conflict", "dead member", "DeadNodeReclaimTime", crashed.c.GossipAddr())
	if got := seed.c.RingMembers(); !slices.Equal(got, []string{"node-0"}) {
		t.Errorf("node-0's ring = %v, want node-0 alone", got)
	}
}
