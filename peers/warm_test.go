package peers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// TestKeepHistory: the view records the ring before the last change; an unchanged rebuild
// carries it over; a node that was alone records the ring without itself.
func TestKeepHistory(t *testing.T) {
	t0 := time.Now()
	prev := &view{ring: NewRing([]string{"a", "b", "c"}), prevRing: NewRing([]string{"a"}), changedAt: t0}
	next := &view{ring: NewRing([]string{"a", "b"})}
	next.keepHistory(prev, "a", true, t0.Add(time.Second))
	if !slices.Equal(next.prevRing.Names(), []string{"a", "b", "c"}) || !next.changedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after a leave: prevRing %v at %v", next.prevRing.Names(), next.changedAt)
	}
	same := &view{ring: next.ring}
	same.keepHistory(next, "a", false, t0.Add(time.Minute))
	if same.prevRing != next.prevRing || !same.changedAt.Equal(next.changedAt) {
		t.Fatal("an unchanged rebuild lost the history")
	}
	for _, alone := range []*view{{ring: NewRing(nil)}, {ring: NewRing([]string{"a"})}} {
		joined := &view{ring: NewRing([]string{"a", "b", "c"})}
		joined.keepHistory(alone, "a", true, t0)
		without := NewRing([]string{"b", "c"})
		for i := range 100 {
			k := "k" + strconv.Itoa(i)
			if got, want := joined.previousOwner(k, "a"), without.OwnerName(k); got != want {
				t.Fatalf("after joining from %v: previous owner of %s is %s, want %s (the ring without a)", alone.ring.Names(), k, got, want)
			}
		}
	}
}

// warmOptions: authenticated nodes without hot copies, so that every Get of a key another
// node owns crosses the wire and the loads counted are the owners'.
func warmOptions(string) nodeOptions {
	gc := testGroupConfig()
	gc.HotCacheFraction = 0
	return nodeOptions{group: gc, tune: func(c *Config) { c.SecretKey = testSecret }}
}

func readAll(t *testing.T, nodes []*testNode, keys []string) {
	t.Helper()
	for _, n := range nodes {
		for _, k := range keys {
			res, err := n.g.Get(context.Background(), k)
			if err != nil || string(res.Bytes) != "value of "+k {
				t.Fatalf("%s: Get(%s) = %q, %v", n.name, k, res.Bytes, err)
			}
		}
	}
}

// TestScaleOutPeeks: a node that joins a warm cluster asks each key's previous owner for its
// value before loading it: no key is loaded twice.
func TestScaleOutPeeks(t *testing.T) {
	log := newLoadLog()
	nodes := startCluster(t, 3, log, warmOptions)
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	readAll(t, nodes, keys)
	if n := log.total(); n != len(keys) {
		t.Fatalf("%d loads for %d keys before the scale-out", n, len(keys))
	}
	o := warmOptions("node-3")
	o.seeds = []string{nodes[0].c.GossipAddr()}
	nodes = append(nodes, startNode(t, "node-3", log, o))
	waitConverged(t, nodes, 20*time.Second)
	readAll(t, nodes, keys)
	moved := 0
	for _, k := range keys {
		if nodes[3].c.Owner(k) == "node-3" {
			moved++
		}
	}
	ws := nodes[3].g.WarmStats()
	t.Logf("%d keys moved to node-3; its warm stats %+v", moved, ws)
	if n := log.total(); n != len(keys) {
		t.Fatalf("%d loads for %d keys after the scale-out (%d moved), want none again", n, len(keys), moved)
	}
	if moved == 0 || ws.PeekHits != int64(moved) {
		t.Fatalf("node-3 peeked %d hits, want the %d keys it took over", ws.PeekHits, moved)
	}
}

// TestHandOffAndRejoin: a node that leaves hands the keys it owns to their next owners, so
// none is loaded again while it is away; when it comes back (empty), it peeks them back from
// the members that held them. The pushes and peeks travel on authenticated connections.
func TestHandOffAndRejoin(t *testing.T) {
	log := newLoadLog()
	nodes := startCluster(t, 3, log, warmOptions)
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	readAll(t, nodes, keys)
	leaving := nodes[2]
	owned := 0
	for _, k := range keys {
		if leaving.c.Owner(k) == leaving.name {
			owned++
		}
	}
	st, err := leaving.c.HandOff(context.Background(), 1<<20)
	if err != nil || st.Entries != owned || st.Failed != 0 {
		t.Fatalf("HandOff = %+v, %v; node-2 owned %d keys", st, err, owned)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leaving.c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	leaving.stop()
	waitConverged(t, nodes[:2], 20*time.Second)
	readAll(t, nodes[:2], keys)
	if n := log.total(); n != len(keys) {
		t.Fatalf("%d loads for %d keys after a hand-off of %d", n, len(keys), owned)
	}
	var stored int64
	for _, n := range nodes[:2] {
		stored += n.g.WarmStats().PushesStored
	}
	if stored != int64(owned) {
		t.Fatalf("%d pushes stored, want %d", stored, owned)
	}

	o := warmOptions("node-2")
	o.seeds = []string{nodes[0].c.GossipAddr()}
	back := startNode(t, "node-2", log, o)
	nodes = []*testNode{nodes[0], nodes[1], back}
	waitConverged(t, nodes, 20*time.Second)
	readAll(t, nodes, keys)
	if n := log.total(); n != len(keys) {
		t.Fatalf("%d loads for %d keys after the node came back", n, len(keys))
	}
	if ws := back.g.WarmStats(); ws.PeekHits < int64(owned)*9/10 {
		t.Fatalf("the node that came back peeked %+v, owns about %d keys", ws, owned)
	}
}

var _ group.PreviousOwnerPicker = (*Cluster)(nil)

// TestOwnerWithout: the owner of a key in a ring without one member is the owner in the ring
// built without it, for every key tried.
func TestOwnerWithout(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	r := NewRing(all)
	for _, gone := range all {
		without := NewRing(slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == gone }))
		for i := range 2000 {
			k := "key-" + strconv.Itoa(i)
			if got, want := r.ownerWithout(k, gone), without.OwnerName(k); got != want {
				t.Fatalf("without %s, %s: ownerWithout %s, ring %s", gone, k, got, want)
			}
		}
	}
	if got := NewRing([]string{"a"}).ownerWithout("k", "a"); got != "" {
		t.Fatalf("ownerWithout on a ring of the excluded member alone = %q", got)
	}
}

// TestNoPeekOfAnEjectedPeer: a previous owner that this node has ejected (outlier.go) is not
// offered for a peek, which would cost every local load of its keys the peek timeout; once
// readmitted it is offered again.
func TestNoPeekOfAnEjectedPeer(t *testing.T) {
	nodes := startCluster(t, 3, newLoadLog(), nil)
	asker := nodes[0]
	v := asker.c.view.Load()
	// A key owned by node-1 whose owner without node-1 is node-2: node-0's fallback load of
	// it peeks node-2, where a stopping node-1 would have handed it.
	var key string
	for i := 0; key == ""; i++ {
		k := fmt.Sprintf("key-%d", i)
		if v.ring.OwnerName(k) == "node-1" && v.ring.ownerWithout(k, "node-1") == "node-2" {
			key = k
		}
	}
	if _, ok := asker.c.PreviousOwner(key); !ok {
		t.Fatalf("no previous owner offered for %q", key)
	}
	p := v.peer("node-2")
	p.out.ejected.Store(true)
	if _, ok := asker.c.PreviousOwner(key); ok {
		t.Errorf("the ejected node-2 was offered for a peek of %q", key)
	}
	p.out.ejected.Store(false)
	if _, ok := asker.c.PreviousOwner(key); !ok {
		t.Errorf("the readmitted node-2 was not offered for a peek of %q", key)
	}
}
