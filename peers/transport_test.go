package peers

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// pair is an owner node serving its group over real HTTP, and an asking node's peer client
// pointed at it. Neither runs memberlist: the transport alone is under test.
type pair struct {
	owner, asker *testNode
	peer         *wirePeer
	log          *loadLog
}

func newPair(t *testing.T, owner nodeOptions, tune func(*Config)) *pair {
	t.Helper()
	log := newLoadLog()
	o := newNode(t, "owner", log, owner)
	a := newNode(t, "asker", log, nodeOptions{tune: tune})
	return &pair{owner: o, asker: a, log: log, peer: newWirePeer(a.c, "owner", o.srv.Listener.Addr().String())}
}

func TestTransportKeysRoundTrip(t *testing.T) {
	echo := func(_ context.Context, _, key string) (group.Value, error) {
		return group.Value{Bytes: []byte(key), TTL: time.Hour}, nil
	}
	p := newPair(t, nodeOptions{load: echo}, nil)
	keys := []string{
		"plain",
		"with space",
		"a+b",
		"a/b/../c//d",
		"100%",
		"%2F%20",
		"line\nbreak\r\n",
		"naïve 日本語 🙂",
		"\x00\xff\xfe binary",
		"?q=1&key=other#frag",
		strings.Repeat("long", 256), // the longest key served: max_key_bytes' default
	}
	for _, key := range keys {
		t.Run(key[:min(len(key), 20)], func(t *testing.T) {
			v, err := p.peer.Fetch(context.Background(), testGroup, key)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !bytes.Equal(v.Bytes, []byte(key)) {
				t.Errorf("value = %q, want the key %q", v.Bytes, key)
			}
			if got := p.log.loads(key); len(got) != 1 || got[0] != "owner" {
				t.Errorf("loads of the exact key = %v, want one on owner", got)
			}
			if v.TTL <= 59*time.Minute || v.TTL > time.Hour {
				t.Errorf("TTL = %v, want the owner's remaining hour", v.TTL)
			}
		})
	}
}

func TestTransportOwnerErrors(t *testing.T) {
	boom := errors.New("origin exploded")
	load := func(ctx context.Context, _, key string) (group.Value, error) {
		switch key {
		case "missing":
			return group.Value{}, group.ErrNotFound
		case "failing":
			return group.Value{}, boom
		case "panicking":
			panic("loader bug")
		case "slow":
			<-ctx.Done()
			return group.Value{}, ctx.Err()
		case "forever":
			return group.Value{Bytes: []byte("v")}, nil
		}
		return defaultLoad(ctx, "", key)
	}
	ownerCfg := testGroupConfig()
	ownerCfg.LoadTimeout = 100 * time.Millisecond
	p := newPair(t, nodeOptions{load: load, group: ownerCfg}, nil)

	tests := []struct {
		group, key string
		want       error     // errors.Is target
		code       wire.Code // RemoteError code
		contains   string
	}{
		{testGroup, "missing", group.ErrNotFound, wire.CodeNotFound, "not found"},
		{testGroup, "failing", nil, wire.CodeLoadFailed, "origin exploded"},
		{testGroup, "panicking", group.ErrLoaderPanic, wire.CodeLoaderPanic, "panicked"},
		{testGroup, "slow", group.ErrLoadTimeout, wire.CodeLoadTimeout, "timed out"},
		{"nosuchgroup", "k", ErrUnknownGroup, wire.CodeUnknownGroup, `"nosuchgroup"`},
	}
	for _, tt := range tests {
		t.Run(tt.group+"/"+tt.key, func(t *testing.T) {
			_, err := p.peer.Fetch(context.Background(), tt.group, tt.key)
			if err == nil {
				t.Fatal("Fetch succeeded, want an error")
			}
			if errors.Is(err, group.ErrPeerUnavailable) {
				t.Errorf("error %v is ErrPeerUnavailable: the asker would load again", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v is not %v", err, tt.want)
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tt.code.String() {
				t.Errorf("error %v: want a RemoteError with code %s", err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not mention %q", err, tt.contains)
			}
			if tt.group == testGroup {
				if got := p.log.loads(tt.key); len(got) != 1 {
					t.Errorf("owner loaded %q %d times, want 1", tt.key, len(got))
				}
			}
		})
	}
	st := p.asker.c.Stats()
	if st.FetchErrors != 4 || st.Unreachable != 0 {
		t.Errorf("stats: FetchErrors %d (want 4: not-found is an answer), Unreachable %d (want 0)", st.FetchErrors, st.Unreachable)
	}
}

func TestTransportUnavailable(t *testing.T) {
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	server := func(t *testing.T, h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	stopped := func(t *testing.T) string {
		n := newNode(t, "stopped", newLoadLog(), nodeOptions{})
		if err := n.c.Shutdown(); err != nil {
			t.Fatal(err)
		}
		return n.srv.Listener.Addr().String()
	}
	fast := func(c *Config) { c.FetchTimeout = 100 * time.Millisecond }

	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"connection refused", refused},
		{"peer shutting down", stopped},
		{"proxy 502 without our code", func(t *testing.T) string {
			return server(t, func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "bad gateway", http.StatusBadGateway)
			})
		}},
		{"endpoint not mounted", func(t *testing.T) string {
			return server(t, http.NotFound)
		}},
		{"no answer within FetchTimeout", func(t *testing.T) string {
			return server(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		}},
		{"upgrade refused by a proxy", func(t *testing.T) string {
			return server(t, func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "upgrades not allowed", http.StatusForbidden)
			})
		}},
		{"connection cut mid-frame", func(t *testing.T) string {
			return fakeOwner(t, fakeOptions{serve: func(f *fakeConn) {
				id, _ := f.readRequest()
				f.writeRaw(fakeFetchReply, 0, id, 100, []byte("short")) // declares 100 bytes, sends 5
			}})
		}},
		{"upgrade answered, then silence", func(t *testing.T) string {
			return fakeOwner(t, fakeOptions{serve: func(f *fakeConn) { f.readRequest(); f.hang() }})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asker := newNode(t, "asker", newLoadLog(), nodeOptions{tune: fast})
			peer := newWirePeer(asker.c, "owner", tt.addr(t))
			_, err := peer.Fetch(context.Background(), testGroup, "k")
			if !errors.Is(err, group.ErrPeerUnavailable) {
				t.Fatalf("error = %v, want ErrPeerUnavailable", err)
			}
			if st := asker.c.Stats(); st.Unreachable != 1 || st.FetchErrors != 1 {
				t.Errorf("stats: Unreachable %d, FetchErrors %d, want 1 and 1", st.Unreachable, st.FetchErrors)
			}
		})
	}

	t.Run("caller deadline is the caller's, not the peer's", func(t *testing.T) {
		addr := server(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		asker := newNode(t, "asker", newLoadLog(), nodeOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := newWirePeer(asker.c, "owner", addr).Fetch(ctx, testGroup, "k")
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, group.ErrPeerUnavailable) {
			t.Fatalf("error = %v, want DeadlineExceeded and not ErrPeerUnavailable", err)
		}
	})

	t.Run("FetchFunc: the deadline is the caller's, not the peer's", func(t *testing.T) {
		addr := fakeOwner(t, fakeOptions{serve: func(f *fakeConn) { f.readRequest(); f.hang() }})
		asker := newNode(t, "asker", newLoadLog(), nodeOptions{})
		done := make(chan error, 1)
		start := time.Now()
		newWirePeer(asker.c, "owner", addr).FetchFunc(testGroup, "k", start.Add(100*time.Millisecond), func(_ group.Value, err error) {
			done <- err
		})
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, group.ErrPeerUnavailable) {
				t.Fatalf("error = %v, want DeadlineExceeded and not ErrPeerUnavailable", err)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("done called after %v, want shortly after the 100 ms deadline", took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("done was not called")
		}
	})
}

func TestTransportPoolsConnections(t *testing.T) {
	var opened atomic.Int64
	countConns := func(srv *http.Server) {
		srv.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				opened.Add(1)
			}
		}
	}
	p := newPair(t, nodeOptions{server: countConns}, nil)
	for i := range 50 {
		if _, err := p.peer.Fetch(context.Background(), testGroup, "k"+strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("50 sequential fetches opened %d connections, want 1", n)
	}
}

func TestHandlerRejects(t *testing.T) {
	n := newNode(t, "owner", newLoadLog(), nodeOptions{})
	upgrade := []string{"Connection", "Upgrade", "Upgrade", wire.UpgradeToken, "Groupcached-Wire", "1"}
	tests := []struct {
		name, method, path string
		header             []string
		status             int
		code               string // Groupcached-Error
	}{
		// The v1 endpoints answer 404 without a code: a node still on v1 counts the owner
		// unreachable and loads the key itself, instead of taking the answer as a verdict.
		{"v1 fetch", http.MethodGet, PathPrefix + "/v1/fetch?group=things&key=k", []string{"Groupcached-Peer", "test"}, http.StatusNotFound, ""},
		{"v1 purge", http.MethodPost, PathPrefix + "/v1/purge?group=things", []string{"Groupcached-Peer", "test"}, http.StatusNotFound, ""},
		{"unknown endpoint", http.MethodGet, PathPrefix + "/v9/nope", nil, http.StatusNotFound, ""},
		{"not an upgrade", http.MethodGet, wire.DefaultPath, []string{"Groupcached-Peer", "test"}, http.StatusUpgradeRequired, "bad_request"},
		{"wrong method", http.MethodPost, wire.DefaultPath, append(upgrade, "Groupcached-Peer", "test"), http.StatusMethodNotAllowed, "bad_request"},
		{"no node name", http.MethodGet, wire.DefaultPath, upgrade, http.StatusBadRequest, "bad_request"},
		{"an upgrade", http.MethodGet, wire.DefaultPath, append(upgrade, "Groupcached-Peer", "test"), http.StatusSwitchingProtocols, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, n.srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			resp, err := n.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Groupcached-Error") != tt.code {
				t.Errorf("status %d, code %q; want %d, %q", resp.StatusCode, resp.Header.Get("Groupcached-Error"), tt.status, tt.code)
			}
		})
	}
}

// BenchmarkPeerFetch is a fetch of a cached 1 KiB value from an owner over the peer wire on
// loopback (client and server in this process), one caller at a time or 32 at once (the
// writes then coalesce), without and with the cluster secret (MACs on every frame).
func BenchmarkPeerFetch(b *testing.B) {
	value := func(context.Context, string, string) (group.Value, error) {
		return group.Value{Bytes: bytes.Repeat([]byte("v"), 1024)}, nil
	}
	for _, secret := range []bool{false, true} {
		tune := func(c *Config) {}
		name := "plain"
		if secret {
			tune, name = withSecret("").tune, "macs"
		}
		log := newLoadLog()
		owner := newNode(b, "owner", log, nodeOptions{load: value, tune: tune})
		asker := newNode(b, "asker", log, nodeOptions{tune: tune})
		// The owner counts the asker a member (its upgrade is checked with a secret).
		owner.c.notify(nodeEvent{name: "asker", addr: "127.0.0.1:1", meta: []byte(`{"http":"` + asker.srv.Listener.Addr().String() + `"}`)})
		owner.c.rebuild()
		peer := newWirePeer(asker.c, "owner", owner.srv.Listener.Addr().String())
		b.Cleanup(peer.close)
		ctx := context.Background()
		if _, err := peer.Fetch(ctx, testGroup, "hot"); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := peer.Fetch(ctx, testGroup, "hot"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel32", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16) // 32 callers on 2 CPUs
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := peer.Fetch(ctx, testGroup, "hot"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkHandlerFetch is the owner's side of a fetch, without the wire: the group lookup,
// GetLocal and the value's bound.
func BenchmarkHandlerFetch(b *testing.B) {
	owner := newNode(b, "owner", newLoadLog(), nodeOptions{})
	h := wireHandler{owner.c}
	ctx := context.Background()
	if _, err := h.Fetch(ctx, testGroup, "hot"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Fetch(ctx, testGroup, "hot"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPickPeer is the lookup every cache miss makes, on a 50-member view.
func BenchmarkPickPeer(b *testing.B) {
	n := newNode(b, "node-0", newLoadLog(), nodeOptions{})
	for i := 1; i < 50; i++ {
		n.c.notify(nodeEvent{name: "node-" + strconv.Itoa(i), addr: "127.0.0.1:1", meta: []byte(`{"http":"127.0.0.1:2"}`)})
	}
	n.c.rebuild()
	if got := n.c.Stats().Members; got != 50 {
		b.Fatalf("%d members, want 50", got)
	}
	keys := testKeys(1 << 16)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = n.c.PickPeer(keys[i&(len(keys)-1)])
		i++
	}
}

// TestTransportNeverForwards gives the owner a ring in which the asker owns the key: the owner
// must still answer from its own caches and loader, never send the request back (no
// ping-pong, no distributed deadlock when views differ).
func TestTransportNeverForwards(t *testing.T) {
	p := newPair(t, nodeOptions{}, nil)
	p.owner.c.notify(nodeEvent{name: "asker", addr: "127.0.0.1:1", meta: []byte(`{"http":"` + p.asker.srv.Listener.Addr().String() + `"}`)})
	p.owner.c.rebuild()
	key := keyOwnedBy(t, []string{"asker", "owner"}, "asker", "disputed")
	if got := p.owner.c.Owner(key); got != "asker" {
		t.Fatalf("owner's ring gives %q to %s, want asker", key, got)
	}
	v, err := p.peer.Fetch(context.Background(), testGroup, key)
	if err != nil || string(v.Bytes) != "value of "+key {
		t.Fatalf("Fetch = %q, %v", v.Bytes, err)
	}
	if got := p.log.loads(key); len(got) != 1 || got[0] != "owner" {
		t.Errorf("loads = %v, want one on the node that was asked", got)
	}
	if n := p.asker.g.Stats().ServerRequests; n != 0 {
		t.Errorf("the asker served %d peer requests: the owner forwarded", n)
	}
}

// TestReceivedValueBounds: what the asking node keeps of a peer's answer, per group: a TTL
// cut to the group's, a value within the group's limit (its CacheBytes, or MaxValueBytes);
// the connections' bound is the largest group's.
func TestReceivedValueBounds(t *testing.T) {
	newCluster := func(t *testing.T, maxValue int64) *Cluster {
		cfg := LocalConfig()
		cfg.NodeName, cfg.HTTPAddr, cfg.Logger = "n", "127.0.0.1:1", testLogger()
		cfg.MaxValueBytes = maxValue
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Shutdown() })
		for _, g := range []struct {
			name  string
			bytes int64
			ttl   time.Duration
		}{{"small", 1 << 20, time.Minute}, {"big", 4 << 20, 0}} {
			gc := testGroupConfig()
			gc.CacheBytes, gc.TTL = g.bytes, g.ttl
			grp, err := group.New(g.name, group.LoaderFunc(func(context.Context, string) (group.Value, error) {
				return group.Value{}, nil
			}), gc, testLogger())
			if err != nil {
				t.Fatal(err)
			}
			c.Register(grp)
		}
		return c
	}
	c := newCluster(t, 0)
	if got := c.maxValueBytes(); got != 4<<20 {
		t.Errorf("connection bound %d, want the largest group's 4 MiB", got)
	}
	for _, tt := range []struct {
		group   string
		size    int
		ttl     time.Duration
		wantTTL time.Duration
		refused bool
	}{
		{"small", 100, 10 * 365 * 24 * time.Hour, time.Minute, false},
		{"small", 100, 0, time.Minute, false}, // "never expires" is beyond any TTL
		{"small", 100, time.Second, time.Second, false},
		{"small", 1<<20 + 1, time.Second, 0, true},
		{"big", 1<<20 + 1, 10 * time.Hour, 10 * time.Hour, false}, // no TTL: no cap
		{"big", 4<<20 + 1, 0, 0, true},
		{"unregistered", 100, time.Hour, time.Hour, false},
	} {
		v, err := c.received(tt.group, wire.Value{Bytes: make([]byte, tt.size), TTL: tt.ttl})
		switch {
		case tt.refused && !errors.Is(err, wire.ErrUnavailable):
			t.Errorf("%s, %d bytes: err %v, want it refused as unavailable", tt.group, tt.size, err)
		case !tt.refused && (err != nil || v.TTL != tt.wantTTL):
			t.Errorf("%s, TTL %v: got TTL %v, err %v; want %v", tt.group, tt.ttl, v.TTL, err, tt.wantTTL)
		}
	}
	if got := newCluster(t, 2<<20).maxValueBytes(); got != 2<<20 {
		t.Errorf("with MaxValueBytes: connection bound %d, want 2 MiB", got)
	}
}
