package peers

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// A batch travels in one message per maxBatchKeys keys; each key keeps its own answer (a
// value, not found, the owner's failure, an invalid key refused before sending), in order.
func TestFetchBatchAnswersPerKey(t *testing.T) {
	load := func(ctx context.Context, _, key string) (group.Value, error) {
		switch {
		case strings.HasPrefix(key, "missing"):
			return group.Value{}, group.ErrNotFound
		case strings.HasPrefix(key, "failing"):
			return group.Value{}, errors.New("origin exploded")
		}
		return group.Value{Bytes: []byte("v:" + key), TTL: time.Hour}, nil
	}
	p := newPair(t, nodeOptions{load: load}, nil)
	keys := []string{"a", "missing", "b", strings.Repeat("k", 2000), "failing", "c"}
	res := p.peer.FetchBatch(context.Background(), testGroup, keys)
	if len(res) != len(keys) {
		t.Fatalf("%d results for %d keys", len(res), len(keys))
	}
	for i, key := range keys {
		r := res[i]
		switch i {
		case 1:
			if !errors.Is(r.Err, group.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", key, r.Err)
			}
		case 3:
			if !errors.Is(r.Err, group.ErrInvalidKey) || errors.Is(r.Err, group.ErrPeerUnavailable) {
				t.Errorf("over-long key: %v, want ErrInvalidKey", r.Err)
			}
		case 4:
			var re *RemoteError
			if !errors.As(r.Err, &re) || re.Code != "load_failed" || errors.Is(r.Err, group.ErrPeerUnavailable) {
				t.Errorf("%s: %v, want the owner's load_failed", key, r.Err)
			}
		default:
			if r.Err != nil || string(r.Value.Bytes) != "v:"+key || r.Value.TTL <= 59*time.Minute {
				t.Errorf("%s: %q ttl %v, %v", key, r.Value.Bytes, r.Value.TTL, r.Err)
			}
		}
	}
	// The over-long key is not sent.
	if st := p.owner.c.Stats(); st.BatchesServed != 1 || st.BatchKeysServed != 5 {
		t.Errorf("owner served %d batches of %d keys, want 1 of 5", st.BatchesServed, st.BatchKeysServed)
	}

	// Over the wire's bound: one message per maxBatchKeys keys.
	many := make([]string, 2*maxBatchKeys+1)
	for i := range many {
		many[i] = "many-" + strconv.Itoa(i)
	}
	for i, r := range p.peer.FetchBatch(context.Background(), testGroup, many) {
		if r.Err != nil || string(r.Value.Bytes) != "v:"+many[i] {
			t.Fatalf("key %d: %q, %v", i, r.Value.Bytes, r.Err)
		}
	}
	if st := p.owner.c.Stats(); st.BatchesServed != 1+3 || st.BatchKeysServed != uint64(5+len(many)) {
		t.Errorf("owner served %d batches of %d keys in all, want 4 of %d", st.BatchesServed, st.BatchKeysServed, 5+len(many))
	}
}

// An owner that cannot be reached fails every key of the batch as unavailable, so that the
// asking Group loads them itself.
func TestFetchBatchUnreachable(t *testing.T) {
	log := newLoadLog()
	asker := newNode(t, "asker", log, nodeOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	peer := newWirePeer(asker.c, "gone", addr)
	defer peer.close()
	for i, r := range peer.FetchBatch(context.Background(), testGroup, []string{"x", "y", "z"}) {
		if !errors.Is(r.Err, group.ErrPeerUnavailable) {
			t.Errorf("key %d: %v, want ErrPeerUnavailable", i, r.Err)
		}
	}
	if st := asker.c.Stats(); st.Unreachable != 3 {
		t.Errorf("Unreachable %d, want 3", st.Unreachable)
	}
	// The outlier count takes one failure per message, not per key: three keys in one lost
	// batch are one failure toward the default PeerEjectAfter (3), so the peer stays routed.
	if peer.isEjected() || peer.out.failures.Load() != 1 {
		t.Errorf("after one lost batch of 3 keys: ejected %v, %d failures counted; want 1, not ejected",
			peer.isEjected(), peer.out.failures.Load())
	}
}

// A Group's GetMany on a real cluster whose owner of some keys has just crashed (no leave,
// connections cut): every key is still answered, and loaded once, by the asking node or the
// surviving owner; none is lost to the dead owner's batch.
func TestGetManyOwnerCrashed(t *testing.T) {
	log := newLoadLog()
	nodes := startCluster(t, 3, log, nil)
	ring := names(nodes)
	var keys []string
	for i := 0; len(keys) < 30; i++ {
		keys = append(keys, keyOwnedBy(t, ring, "node-"+strconv.Itoa(1+i%2), "crash-"+strconv.Itoa(i)))
	}
	byName(nodes, "node-2").stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	items := byName(nodes, "node-0").g.GetMany(ctx, keys)
	for i, it := range items {
		if it.Err != nil || string(it.Bytes) != "value of "+keys[i] {
			t.Errorf("%s: %q, %v", keys[i], it.Bytes, it.Err)
		}
		if loads := log.loads(keys[i]); len(loads) != 1 || loads[0] == "node-2" {
			t.Errorf("%s loaded by %v, want once, by a live node", keys[i], loads)
		}
	}
	// Until node-0's ring drops node-2 (memberlist's failure detection, seconds), its keys'
	// batch fails as unreachable and node-0 loads them itself.
	if gs := byName(nodes, "node-0").g.Stats(); gs.FallbackLoads != 15 && slices.Contains(byName(nodes, "node-0").c.RingMembers(), "node-2") {
		t.Errorf("node-0 fell back for %d keys while node-2 was still in its ring, want 15", gs.FallbackLoads)
	}
	st := byName(nodes, "node-1").c.Stats()
	if st.BatchesServed != 1 {
		t.Errorf("node-1 served %d batches, want 1", st.BatchesServed)
	}
}
