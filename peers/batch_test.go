package peers

import (
	"context"
	"errors"
	"net"
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
}
