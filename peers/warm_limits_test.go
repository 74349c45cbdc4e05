package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// The limits of the warm hand-off (warm.go, handoff.go): a previous owner that hangs costs a
// miss about PeekTimeout, peeks stop WarmTime after a ring change, and a hand-off stops at
// its byte budget and at its context's end, and hands over remaining TTLs.

// hungPreviousOwner starts node-0, a real node with a 10 s load timeout, a WarmTime of an hour
// and the given PeekTimeout (negative: no peeks), and node-evil, a member whose peer wire is a fake owner with opt. node-0
// was alone before node-evil joined, so node-evil is the previous owner of every key node-0
// owns now. It returns node-0, its loads, and such a key.
func hungPreviousOwner(t *testing.T, peekTimeout time.Duration, opt fakeOptions) (*testNode, *loadLog, string) {
	t.Helper()
	gcfg := testGroupConfig()
	gcfg.HotCacheFraction = 0
	gcfg.LoadTimeout = 10 * time.Second
	log := newLoadLog()
	asker := startNode(t, "node-0", log, nodeOptions{group: gcfg, tune: func(c *Config) {
		c.SecretKey = testSecret
		c.PeekTimeout, c.WarmTime = peekTimeout, time.Hour
		if peekTimeout < 0 {
			c.PeekTimeout, c.WarmTime = 0, -1
		}
	}})
	startEvil(t, asker, opt)
	return asker, log, keyOwnedBy(t, []string{"node-0", "node-evil"}, "node-0", "warm")
}

// TestHungPreviousOwnerCostsPeekTimeout: a previous owner that takes the connection (or the
// wire's upgrade) and never answers a peek costs the load that follows about PeekTimeout,
// not the quarter of the load's 10 s that the Group allows a peek: the Get returns the
// loader's value within 1 s, after one peek and no peek hit. (The bound is 20 times
// PeekTimeout, and under the wire's own liveness check, which gives up on a silent
// connection after 1.5 s: PingAfter plus PingTimeout.)
func TestHungPreviousOwnerCostsPeekTimeout(t *testing.T) {
	const peekTimeout = 50 * time.Millisecond
	tests := []struct {
		name string
		opt  fakeOptions
	}{
		{"connection accepted, upgrade never answered", fakeOptions{accept: func(nc net.Conn) { _, _ = io.Copy(io.Discard, nc) }}},
		{"upgrade answered, peek never answered", fakeOptions{serve: func(f *fakeConn) { f.hang() }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asker, log, key := hungPreviousOwner(t, peekTimeout, tt.opt)
			if _, ok := asker.c.PreviousOwner(key); !ok {
				t.Fatalf("node-0 offers no previous owner for %q: the test would not peek", key)
			}
			start := time.Now()
			res, err := asker.g.Get(context.Background(), key)
			took := time.Since(start)
			ws := asker.g.WarmStats()
			t.Logf("Get took %v (PeekTimeout %v); peek time %v", took, peekTimeout, ws.PeekTime)
			if err != nil || string(res.Bytes) != "value of "+key {
				t.Fatalf("Get(%s) = %q, %v; want the loader's value", key, res.Bytes, err)
			}
			if loads := log.loads(key); len(loads) != 1 || loads[0] != "node-0" {
				t.Fatalf("loads of %s: %v, want node-0's one", key, loads)
			}
			if ws.Peeks != 1 || ws.PeekHits != 0 {
				t.Fatalf("WarmStats = %+v, want 1 peek and 0 hits", ws)
			}
			if took >= time.Second {
				t.Fatalf("Get took %v behind a hung previous owner, want about PeekTimeout (%v)", took, peekTimeout)
			}
		})
	}
}

// TestNoPeekAfterWarmTime: a node that joins a warm cluster peeks the keys it took over only
// for WarmTime after its ring changed; once that has passed, a local load of a moved key
// calls the loader without asking the previous owner.
func TestNoPeekAfterWarmTime(t *testing.T) {
	const warmTime = 250 * time.Millisecond
	log := newLoadLog()
	nodes := startCluster(t, 3, log, warmOptions)
	keys := make([]string, 200)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	readAll(t, nodes, keys)
	o := warmOptions("node-3")
	o.seeds = []string{nodes[0].c.GossipAddr()}
	inner := o.tune
	o.tune = func(c *Config) {
		inner(c)
		c.WarmTime = warmTime
	}
	joined := startNode(t, "node-3", log, o)
	nodes = append(nodes, joined)
	waitConverged(t, nodes, 20*time.Second)
	var moved []string
	for _, k := range keys {
		if joined.c.Owner(k) == "node-3" {
			moved = append(moved, k)
		}
	}
	if len(moved) < 3 {
		t.Fatalf("only %d of %d keys moved to node-3", len(moved), len(keys))
	}

	// Within the window, if the machine kept up: the first moved key is peeked.
	changed := joined.c.view.Load().changedAt
	if _, err := joined.g.Get(context.Background(), moved[0]); err != nil {
		t.Fatal(err)
	}
	if age := time.Since(changed); age < warmTime {
		if ws := joined.g.WarmStats(); ws.Peeks != 1 || ws.PeekHits != 1 {
			t.Fatalf("within WarmTime (%v after the change): WarmStats = %+v, want 1 peek hit", age, ws)
		}
	} else {
		t.Logf("the ring changed %v before the first Get ended: no check within the window", age)
	}

	// After the window: no peek. A ring change in between (gossip under load) opens a new
	// window, and the next moved key is tried after it.
	for _, key := range moved[1:] {
		v := joined.c.view.Load()
		waitFor(t, 10*time.Second, func() bool { return time.Since(v.changedAt) > warmTime })
		before := joined.g.WarmStats()
		if _, err := joined.g.Get(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		if joined.c.view.Load().changedAt != v.changedAt {
			t.Logf("node-3's ring changed again during the Get of %s: trying the next key", key)
			continue
		}
		after := joined.g.WarmStats()
		t.Logf("after the window: warm stats %+v -> %+v; loads of %s: %v", before, after, key, log.loads(key))
		if after.Peeks != before.Peeks {
			t.Fatalf("node-3 peeked %s %v after its ring changed (WarmTime %v): peeks %d -> %d",
				key, time.Since(v.changedAt), warmTime, before.Peeks, after.Peeks)
		}
		if loads := log.loads(key); len(loads) != 2 || loads[1] != "node-3" {
			t.Fatalf("loads of %s: %v, want its first owner's and node-3's", key, loads)
		}
		return
	}
	t.Fatal("node-3's ring kept changing: no key was read after the window")
}

// handOffPair starts node-0 and node-1 (no hot copies, group TTL an hour), with load as
// node-1's loader, and returns them and keys that node-1 owns, each loaded there.
func handOffPair(t *testing.T, load loadFunc, n int) (receiver, leaving *testNode, keys []string) {
	t.Helper()
	log := newLoadLog()
	opt := func(name string) nodeOptions {
		o := warmOptions(name)
		o.group.TTL = time.Hour
		if name == "node-1" {
			o.load = load
		}
		return o
	}
	nodes := startCluster(t, 2, log, opt)
	receiver, leaving = nodes[0], nodes[1]
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("k%04d", i) // one length: every entry of the same size
		if leaving.c.Owner(k) != "node-1" {
			continue
		}
		if _, err := leaving.g.Get(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return receiver, leaving, keys
}

func sizedLoad(size int) loadFunc {
	return func(context.Context, string, string) (group.Value, error) {
		return group.Value{Bytes: make([]byte, size)}, nil
	}
}

// TestHandOffByteBudget: a budget of three entries' bytes (and a few more) hands off three
// entries, reports their bytes, and the receiver gets those three.
func TestHandOffByteBudget(t *testing.T) {
	const valueSize, entrySize = 100, 5 + 100 // "k0000" and its value
	receiver, leaving, keys := handOffPair(t, sizedLoad(valueSize), 20)
	st, err := leaving.c.HandOff(context.Background(), 3*entrySize+entrySize/2)
	t.Logf("HandOff of 20 held entries, budget 3.5 entries: %+v", st)
	if err != nil || st.Entries != 3 || st.Bytes != 3*entrySize || st.Failed != 0 {
		t.Fatalf("HandOff = %+v, %v; want 3 entries, %d bytes", st, err, 3*entrySize)
	}
	ws := receiver.g.WarmStats()
	if ws.PushesReceived != 3 || ws.PushesStored != 3 {
		t.Fatalf("receiver's WarmStats = %+v, want 3 pushes received and stored", ws)
	}
	held := 0
	for _, k := range keys {
		if _, ok := receiver.g.Peek(k); ok {
			held++
		}
	}
	if held != 3 {
		t.Fatalf("the receiver holds %d of the keys, want the 3 handed off", held)
	}
}

// TestHandOffEndsWithItsContext: a hand-off whose context is cancelled or already past its
// deadline, or ends while the receiver takes pushes and never acknowledges them, returns
// the context's error and a partial count, promptly.
func TestHandOffEndsWithItsContext(t *testing.T) {
	const held = 64
	for _, tt := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline passed", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			receiver, leaving, _ := handOffPair(t, nil, held)
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			st, err := leaving.c.HandOff(ctx, 1<<20)
			took := time.Since(start)
			t.Logf("HandOff = %+v, %v in %v; receiver %+v", st, err, took, receiver.g.WarmStats())
			if !errors.Is(err, tt.want) {
				t.Fatalf("HandOff error = %v, want %v", err, tt.want)
			}
			if st.Entries >= held {
				t.Fatalf("HandOff handed all %d entries with an ended context", st.Entries)
			}
			if took >= 2*time.Second {
				t.Fatalf("HandOff took %v with an ended context", took)
			}
		})
	}

	t.Run("receiver never acknowledges", func(t *testing.T) {
		// node-0 (the leaving node here) was alone before node-evil joined: node-evil is
		// the next owner of every key node-0 owns, and swallows the pushes.
		leaving, _, _ := hungPreviousOwner(t, -1, fakeOptions{serve: func(f *fakeConn) { f.hang() }})
		n := 0
		for i := 0; n < held; i++ {
			k := fmt.Sprintf("k%04d", i)
			if leaving.c.Owner(k) != "node-0" {
				continue
			}
			if _, err := leaving.g.Get(context.Background(), k); err != nil {
				t.Fatal(err)
			}
			n++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		st, err := leaving.c.HandOff(ctx, 1<<20)
		took := time.Since(start)
		t.Logf("HandOff to a receiver that never acknowledges: %+v, %v in %v (ctx 200 ms, push timeout %v)", st, err, took, pushTimeout)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("HandOff error = %v, want DeadlineExceeded", err)
		}
		if st.Entries != 0 || st.Failed == 0 {
			t.Fatalf("HandOff = %+v, want no entry acknowledged and failed pushes", st)
		}
		if took >= 2*time.Second {
			t.Fatalf("HandOff took %v with a 200 ms context", took)
		}
	})
}

// TestHandOffKeepsRemainingTTL: an entry loaded with a TTL of 2 s and handed off once less
// than 1 s of it is left arrives with that remainder, not the full 2 s (nor the receiver's
// hour).
func TestHandOffKeepsRemainingTTL(t *testing.T) {
	const ttl = 2 * time.Second
	receiver, leaving, keys := handOffPair(t, func(context.Context, string, string) (group.Value, error) {
		return group.Value{Bytes: []byte("short-lived"), TTL: ttl}, nil
	}, 1)
	key := keys[0]
	waitFor(t, 5*time.Second, func() bool {
		v, ok := leaving.g.HandOffValue(key)
		if !ok {
			t.Fatalf("%s expired on the leaving node before its TTL fell under 1 s", key)
		}
		return v.TTL <= time.Second
	})
	st, err := leaving.c.HandOff(context.Background(), 1<<20)
	if err != nil || st.Entries != 1 {
		t.Fatalf("HandOff = %+v, %v; want 1 entry", st, err)
	}
	res, ok := receiver.g.Peek(key)
	t.Logf("remaining TTL on the receiver: %v (loaded with %v)", res.TTL, ttl)
	if !ok || string(res.Bytes) != "short-lived" {
		t.Fatalf("receiver's Peek(%s) = %+v, %v", key, res, ok)
	}
	if res.TTL <= 0 || res.TTL > time.Second {
		t.Fatalf("receiver's TTL for %s is %v, want the remaining ≤ 1 s of %v", key, res.TTL, ttl)
	}
}
