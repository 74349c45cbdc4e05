package peers

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// evilMember starts node-0, a real node, and node-evil, a member that joined with the
// cluster secret but whose HTTP address is a fake owner serving the peer wire with opt. It
// returns node-0, node-evil's Cluster (its membership only: nothing serves its Handler), and
// a key that node-evil owns.
func evilMember(t *testing.T, gcfg group.Config, opt fakeOptions) (*testNode, *Cluster, string) {
	t.Helper()
	asker := startNode(t, "node-0", newLoadLog(), nodeOptions{group: gcfg, tune: withSecret("").tune})
	return asker, startEvil(t, asker, opt), keyOwnedBy(t, []string{"node-0", "node-evil"}, "node-evil", "evil")
}

// startEvil starts node-evil, a member of asker's cluster (with the cluster secret) whose
// HTTP address is a fake owner serving the peer wire with opt, and waits until asker's ring
// holds both. The Cluster it returns is node-evil's membership only.
func startEvil(t *testing.T, asker *testNode, opt fakeOptions) *Cluster {
	t.Helper()
	opt.name, opt.secret = "node-evil", testSecret
	cfg := LocalConfig()
	cfg.NodeName = "node-evil"
	cfg.HTTPAddr = fakeOwner(t, opt)
	cfg.Seeds = []string{asker.c.GossipAddr()}
	cfg.SecretKey = testSecret
	cfg.Logger = testLogger()
	evil, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := evil.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = evil.Shutdown() })
	waitRing(t, asker, "node-0", "node-evil")
	return evil
}

// waitRing polls until n's ring holds exactly names.
func waitRing(t *testing.T, n *testNode, names ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Equal(n.c.RingMembers(), names) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's ring is %v, want %v", n.name, n.c.RingMembers(), names)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// boundsGroupConfig: values up to 1 MiB (CacheBytes), a one-minute TTL, every fetched value
// copied into the hot cache, a 2 s load timeout.
func boundsGroupConfig() group.Config {
	cfg := testGroupConfig()
	cfg.TTL = time.Minute
	cfg.LoadTimeout = 2 * time.Second
	return cfg
}

// heapWatch samples the heap in use until stop, and returns the most it saw.
func heapWatch() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

func memStats() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// TestEvilMemberCannotExhaustMemory: a member with the right key whose answers declare 2 GiB,
// or never end, costs the asking node neither its heap nor a poisoned cache: the frame is
// refused before anything is allocated for it and the node loads the key itself, or the fetch
// ends at the group's load timeout.
func TestEvilMemberCannotExhaustMemory(t *testing.T) {
	const heapBound = 64 << 20
	t.Run("a reply declaring 2 GiB", func(t *testing.T) {
		asker, _, key := evilMember(t, boundsGroupConfig(), fakeOptions{serve: func(f *fakeConn) {
			for {
				id, _ := f.readRequest()
				if id == 0 {
					return
				}
				_ = f.writeRaw(fakeFetchReply, 0, id, 1<<31, bytes.Repeat([]byte("x"), 4096))
			}
		}})
		before := memStats()
		peak := heapWatch()
		res, err := asker.g.Get(context.Background(), key)
		maxHeap := peak()
		after := memStats()
		if err != nil || string(res.Bytes) != "value of "+key || res.Source != group.SourceLoader {
			t.Errorf("Get = %q from %v, %v; want the asking node's own load", res.Bytes, res.Source, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > heapBound {
			t.Errorf("the asking node allocated %d MiB during the fetch", grew>>20)
		}
		if maxHeap > before.HeapInuse+heapBound {
			t.Errorf("heap in use peaked at %d MiB, from %d MiB", maxHeap>>20, before.HeapInuse>>20)
		}
		st := asker.g.Stats()
		if st.Hot.Items != 0 || st.FallbackLoads != 1 {
			t.Errorf("hot items %d, fallback loads %d; want nothing cached from the peer, one fallback", st.Hot.Items, st.FallbackLoads)
		}
	})

	t.Run("an endless stream of replies", func(t *testing.T) {
		chunk := fakeValue(0, bytes.Repeat([]byte("y"), 512<<10))
		asker, _, key := evilMember(t, boundsGroupConfig(), fakeOptions{serve: func(f *fakeConn) {
			id, _ := f.readRequest()
			for i := uint32(1); ; i++ { // answers to requests never sent, forever
				if f.writeFrame(fakeFetchReply, 0, id+i, chunk) != nil {
					return
				}
			}
		}})
		before := memStats()
		peak := heapWatch()
		start := time.Now()
		res, err := asker.g.Get(context.Background(), key)
		took := time.Since(start)
		maxHeap := peak()
		if err == nil {
			if string(res.Bytes) != "value of "+key {
				t.Errorf("Get = %q, want an error or the asking node's own load", res.Bytes)
			}
		} else if !errors.Is(err, group.ErrLoadTimeout) {
			t.Errorf("Get: %v, want ErrLoadTimeout or a fallback", err)
		}
		if limit := boundsGroupConfig().LoadTimeout + time.Second; took > limit {
			t.Errorf("Get took %v, want at most the load timeout (%v)", took, limit)
		}
		if maxHeap > before.HeapInuse+heapBound {
			t.Errorf("heap in use peaked at %d MiB, from %d MiB", maxHeap>>20, before.HeapInuse>>20)
		}
		if st := asker.g.Stats(); st.Hot.Items != 0 {
			t.Errorf("%d hot items: something from the endless stream was cached", st.Hot.Items)
		}
	})
}

// TestEvilMemberTTLAndDeparture: a member's ten-year TTL is cut to the asking group's TTL, and
// the hot copies taken from it go when it dies.
func TestEvilMemberTTLAndDeparture(t *testing.T) {
	asker, evil, key := evilMember(t, boundsGroupConfig(), fakeOptions{serve: func(f *fakeConn) {
		for {
			id, _ := f.readRequest()
			if id == 0 || f.writeFrame(fakeFetchReply, 0, id, fakeValue(10*365*24*time.Hour, []byte("POISONED"))) != nil {
				return
			}
		}
	}})
	ctx := context.Background()
	ttl := boundsGroupConfig().TTL
	for _, want := range []group.Source{group.SourcePeer, group.SourceHot} {
		res, err := asker.g.Get(ctx, key)
		if err != nil || res.Source != want || res.TTL > ttl || res.TTL < ttl-10*time.Second {
			t.Fatalf("Get: source %v, TTL %v, err %v; want %v with the group's TTL (%v) at most", res.Source, res.TTL, err, want, ttl)
		}
	}

	_ = evil.Shutdown() // dies: no leave
	waitRing(t, asker, "node-0")
	if st := asker.g.Stats(); st.Hot.Items != 0 {
		t.Errorf("%d hot items after the member died, want its copies dropped", st.Hot.Items)
	}
	res, err := asker.g.Get(ctx, key)
	if err != nil || string(res.Bytes) != "value of "+key {
		t.Errorf("after the member died: Get = %q, %v; want the key loaded by its new owner", res.Bytes, err)
	}
	if n := asker.c.Stats().PeerConns; n != 0 {
		t.Errorf("%d connections to peers remain, want the dead member's closed", n)
	}
}

// TestFrozenOwnerFallsBack: an owner that stops answering (SIGSTOP: the kernel still accepts
// and buffers) costs a fetch a bounded wait, well inside the group's load timeout, after which
// the asking node loads the key itself.
func TestFrozenOwnerFallsBack(t *testing.T) {
	gcfg := boundsGroupConfig()
	gcfg.LoadTimeout = 5 * time.Second
	for _, tt := range []struct {
		name string
		opt  fakeOptions
	}{
		{"before answering the upgrade", fakeOptions{accept: func(nc net.Conn) {
			buf := make([]byte, 4096)
			for {
				if _, err := nc.Read(buf); err != nil {
					return
				}
			}
		}}},
		{"with the request sent", fakeOptions{serve: func(f *fakeConn) { f.readRequest(); f.hang() }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			asker, _, key := evilMember(t, gcfg, tt.opt)
			start := time.Now()
			res, err := asker.g.Get(context.Background(), key)
			took := time.Since(start)
			if err != nil || string(res.Bytes) != "value of "+key || res.Source != group.SourceLoader {
				t.Fatalf("Get = %q from %v, %v; want the asking node's own load", res.Bytes, res.Source, err)
			}
			// 2 s to connect, or 1.5 s of pings without a pong: either well before LoadTimeout.
			if took > 4*time.Second {
				t.Errorf("the fallback took %v, want under 4 s (LoadTimeout %v)", took, gcfg.LoadTimeout)
			}
			t.Logf("fell back after %v", took.Round(time.Millisecond))
			if st := asker.c.Stats(); st.Unreachable != 1 {
				t.Errorf("Unreachable = %d, want 1", st.Unreachable)
			}
		})
	}
}

// TestConcurrentFetchesShareFewConnections: 500 fetches in flight at once from one node to its
// peer, with MACs, use at most MaxConnsPerPeer TCP connections, counted where the owner
// accepts them, and none fails.
func TestConcurrentFetchesShareFewConnections(t *testing.T) {
	const fetches = 500
	var (
		accepted      atomic.Int64
		inFlight, top atomic.Int64
		gate          = make(chan struct{})
		gateOnce      sync.Once
	)
	load := func(ctx context.Context, node, key string) (group.Value, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := top.Load()
			if n <= old || top.CompareAndSwap(old, n) {
				break
			}
		}
		if n >= fetches/2 {
			gateOnce.Do(func() { close(gate) })
		}
		select { // hold every load until half of them run at once (or a deadline)
		case <-gate:
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
		}
		return defaultLoad(ctx, node, key)
	}
	log := newLoadLog()
	nodes := startCluster(t, 2, log, func(name string) nodeOptions {
		o := withSecret(name)
		o.load = load
		if name == "node-0" {
			o.server = func(srv *http.Server) {
				srv.ConnState = func(_ net.Conn, s http.ConnState) {
					if s == http.StateNew {
						accepted.Add(1)
					}
				}
			}
		}
		return o
	})
	asker := nodes[1]
	var keys []string
	ring := NewRing(names(nodes))
	for i := 0; len(keys) < fetches; i++ {
		if k := "conn-" + strconv.Itoa(i); ring.OwnerName(k) == "node-0" {
			keys = append(keys, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, k := range keys {
		wg.Go(func() {
			res, err := asker.g.Get(ctx, k)
			if err != nil || res.Source != group.SourcePeer {
				failed.Add(1)
				t.Errorf("Get(%q): source %v, err %v", k, res.Source, err)
			}
		})
	}
	wg.Wait()

	maxConns := int64(LocalConfig().MaxConnsPerPeer)
	t.Logf("%d fetches, %d loads at once on the owner at most, %d connections accepted", fetches, top.Load(), accepted.Load())
	if failed.Load() != 0 {
		t.Errorf("%d fetches failed", failed.Load())
	}
	if n := accepted.Load(); n < 1 || n > maxConns {
		t.Errorf("the owner accepted %d connections, want 1 to %d", n, maxConns)
	}
	if n := asker.c.Stats().PeerConns; n > int(maxConns) {
		t.Errorf("the asker holds %d connections, want at most %d", n, maxConns)
	}
	if top.Load() < fetches/2 {
		t.Errorf("at most %d loads ran at once: the fetches did not overlap", top.Load())
	}
}
