package httpapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers"
)

func peerStats(members int) peers.Stats {
	return peers.Stats{
		Members:        members,
		RingRebuilds:   7,
		LastRebuild:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		FetchErrors:    3,
		Unreachable:    2,
		Invalidations:  5,
		RebuildLatency: 150 * time.Millisecond,
	}
}

func threeMembers() []peers.Member {
	return []peers.Member{
		{Name: "node-1", GossipAddr: "127.0.0.1:7001", HTTPAddr: "127.0.0.1:8001", State: "alive", Self: true, Share: 0.34},
		{Name: "node-2", GossipAddr: "127.0.0.1:7002", HTTPAddr: "127.0.0.1:8002", State: "alive", Share: 0.33},
		{Name: "node-3", GossipAddr: "127.0.0.1:7003", HTTPAddr: "127.0.0.1:8003", State: "suspect", Share: 0.33},
	}
}

func TestListGroups(t *testing.T) {
	cfg := testGroupConfig()
	cfg.TTL = time.Minute
	other := newTestGroup(t, "another", &origin{}, cfg)
	n := startNode(t, LocalConfig(), nil, other)
	for range 3 {
		n.do(t, http.MethodGet, keyPath("g", "k"))
	}
	n.do(t, http.MethodGet, keyPath("g", "missing"))

	_, body := n.do(t, http.MethodGet, "/groups")
	list := decodeJSON[struct {
		Node   string      `json:"node"`
		Groups []groupInfo `json:"groups"`
	}](t, body)
	if list.Node != "local" {
		t.Errorf("node %q, want local", list.Node)
	}
	if len(list.Groups) != 2 || list.Groups[0].Name != "another" || list.Groups[1].Name != "g" {
		t.Fatalf("groups %+v, want another and g in that order", list.Groups)
	}
	if c := list.Groups[0].Config; c.TTL != "1m0s" || c.CacheBytes != 1<<20 || c.LoadTimeout != "300ms" {
		t.Errorf("another's config %+v", c)
	}
	st := list.Groups[1].Stats
	if st.Gets != 4 || st.CacheHits != 2 || st.LocalLoads != 2 || st.Main.Items != 1 || st.Main.Bytes <= 0 || st.LoadCount != 2 {
		t.Errorf("g's stats %+v: want 4 gets, 2 hits, 2 local loads, 1 item, 2 timed loads", st)
	}

	resp, body := n.do(t, http.MethodGet, "/groups/g")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /groups/g: %d %s", resp.StatusCode, body)
	}
	if one := decodeJSON[groupInfo](t, body); one.Name != "g" || one.Stats.Gets != 4 {
		t.Errorf("GET /groups/g: %+v", one)
	}
	resp, body = n.do(t, http.MethodGet, "/groups/none")
	wantError(t, resp, body, http.StatusNotFound, CodeUnknownGroup)
}

func TestCluster(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		n := startNode(t, LocalConfig(), nil)
		_, body := n.do(t, http.MethodGet, "/cluster")
		got := decodeJSON[clusterInfo](t, body)
		want := []peers.Member{{Name: "local", State: "alive", Self: true, Share: 1}}
		if got.Node != "local" || got.Clustered || len(got.Members) != 1 || got.Members[0] != want[0] || got.Stats.Members != 1 {
			t.Errorf("single node /cluster = %+v", got)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		cfg := LocalConfig()
		cfg.NodeName = "node-1"
		fc := &fakeCluster{members: threeMembers(), stats: peerStats(2), handler: http.NotFoundHandler()}
		n := startNode(t, cfg, fc)
		_, body := n.do(t, http.MethodGet, "/cluster")
		got := decodeJSON[clusterInfo](t, body)
		if got.Node != "node-1" || !got.Clustered {
			t.Errorf("node %q clustered %v", got.Node, got.Clustered)
		}
		if len(got.Members) != 3 {
			t.Fatalf("members %+v", got.Members)
		}
		for i, m := range threeMembers() {
			if got.Members[i] != m {
				t.Errorf("member %d = %+v, want %+v", i, got.Members[i], m)
			}
		}
		want := clusterStats{Members: 2, RingRebuilds: 7, LastRebuild: peerStats(2).LastRebuild, FetchErrors: 3,
			Unreachable: 2, Invalidations: 5, RebuildLatency: "150ms"}
		if got.Stats != want {
			t.Errorf("stats %+v, want %+v", got.Stats, want)
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	n := startNode(t, LocalConfig(), nil)
	check := func(path string, status int) {
		t.Helper()
		resp, body := n.do(t, http.MethodGet, path)
		if resp.StatusCode != status {
			t.Errorf("GET %s: %d %s, want %d", path, resp.StatusCode, body, status)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			wantError(t, resp, body, status, CodeNotReady)
		}
	}
	check("/healthz", http.StatusOK)
	check("/readyz", http.StatusServiceUnavailable)
	n.api.SetReady(true)
	check("/readyz", http.StatusOK)
	check("/healthz", http.StatusOK)
	n.api.SetReady(false)
	check("/readyz", http.StatusServiceUnavailable)
	check("/healthz", http.StatusOK)
}

// TestReadinessFollowsMembership: a node that was made ready still answers 503, with the
// membership's reason, while its cluster is not ready (no seed joined, its name held by
// another member), and 200 again once it is.
func TestReadinessFollowsMembership(t *testing.T) {
	fc := &fakeCluster{members: threeMembers(), stats: peerStats(3), handler: http.NotFoundHandler()}
	reason := "joining: no seed has answered yet (seeds: 127.0.0.1:1); retrying"
	fc.notReady.Store(&reason)
	n := startNode(t, LocalConfig(), fc)
	n.api.SetReady(true)
	resp, body := n.do(t, http.MethodGet, "/readyz")
	wantError(t, resp, body, http.StatusServiceUnavailable, CodeNotReady)
	if !strings.Contains(string(body), "no seed has answered") {
		t.Errorf("/readyz body %s does not give the membership's reason", body)
	}
	fc.notReady.Store(nil)
	if resp, body := n.do(t, http.MethodGet, "/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz with the membership ready: %d %s, want 200", resp.StatusCode, body)
	}
}

func TestMetrics(t *testing.T) {
	fc := &fakeCluster{members: threeMembers(), stats: peerStats(3), handler: http.NotFoundHandler()}
	n := startNode(t, LocalConfig(), fc)
	const secret = "secret-key-9f2c"
	for range 3 {
		n.do(t, http.MethodGet, keyPath("g", secret))
	}
	n.do(t, http.MethodGet, keyPath("g", "missing-"+secret))
	n.do(t, http.MethodGet, keyPath("g", "fail-"+secret))
	n.do(t, http.MethodGet, keyPath("g", "panic-"+secret))
	n.do(t, http.MethodGet, keyPath("nope", secret))

	resp, body := n.do(t, http.MethodGet, "/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	text := string(body)
	for _, series := range []string{
		`groupcached_gets_total{group="g"} 6`,
		`groupcached_cache_hits_total{cache="main",group="g"} 2`,
		`groupcached_cache_hits_total{cache="hot",group="g"} 0`,
		`groupcached_cache_misses_total{group="g"} 4`,
		`groupcached_loads_total{group="g",source="local"} 2`,
		`groupcached_loads_total{group="g",source="peer"} 0`,
		`groupcached_loads_total{group="g",source="fallback"} 0`,
		`groupcached_deduped_loads_total{group="g"} 4`,
		`groupcached_load_errors_total{group="g"} 2`,
		`groupcached_loader_panics_total{group="g"} 1`,
		`groupcached_load_duration_seconds_bucket{group="g",le="+Inf"} 4`,
		`groupcached_load_duration_seconds_count{group="g"} 4`,
		`groupcached_cache_items{cache="main",group="g"} 1`,
		`groupcached_cache_evictions_total{cache="main",group="g"} 0`,
		`groupcached_cache_expirations_total{cache="hot",group="g"} 0`,
		`groupcached_cache_capacity_bytes{group="g"} 1.048576e+06`,
		`groupcached_cluster_members 3`,
		`groupcached_ring_rebuilds_total 7`,
		`groupcached_peer_unreachable_total 2`,
		`groupcached_invalidations_sent_total 5`,
		`groupcached_ring_rebuild_latency_seconds 0.15`,
		`groupcached_http_errors_total{code="unknown_group"} 1`,
		`groupcached_http_errors_total{code="loader_panic"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
	} {
		if !strings.Contains(text, series+"\n") && !strings.Contains(text, series) {
			t.Errorf("no series %s", series)
		}
	}
	if m := regexp.MustCompile(`groupcached_cache_bytes\{cache="main",group="g"\} ([0-9.e+]+)`).FindStringSubmatch(text); m == nil || m[1] == "0" {
		t.Errorf("cache_bytes for main: %v", m)
	}
	if strings.Contains(text, secret) || strings.Contains(text, `key="`) {
		t.Error("the exposition names a key")
	}
}

func TestPeerHandlerIsMounted(t *testing.T) {
	type seen struct {
		path     string
		rawPath  string
		hasRoute bool
	}
	var (
		mu  sync.Mutex
		got []seen
	)
	peerHandler := chi.NewRouter()
	peerHandler.Get(peers.PathPrefix+"/{group}/{key}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.URL.Path, r.URL.RawPath, chi.URLParam(r, "group") == "g"})
		mu.Unlock()
		_, _ = io.WriteString(w, "peer:"+chi.URLParam(r, "key"))
	})
	peerHandler.Get(peers.PathPrefix+"/panic", func(http.ResponseWriter, *http.Request) { panic("peer handler bug") })
	peerHandler.Get(peers.PathPrefix, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "peer root") })
	fc := &fakeCluster{members: threeMembers(), stats: peerStats(3), handler: peerHandler}
	n := startNode(t, LocalConfig(), fc)

	if resp, body := n.do(t, http.MethodGet, peers.PathPrefix); string(body) != "peer root" {
		t.Errorf("GET %s: %d %q", peers.PathPrefix, resp.StatusCode, body)
	}
	resp, body := n.do(t, http.MethodGet, peers.PathPrefix+"x/g/k1")
	wantError(t, resp, body, http.StatusNotFound, CodeNoRoute)
	resp, body = n.do(t, http.MethodGet, peers.PathPrefix+"/panic")
	wantError(t, resp, body, http.StatusInternalServerError, CodeInternal)

	resp, body = n.do(t, http.MethodGet, peers.PathPrefix+"/g/k1")
	if resp.StatusCode != http.StatusOK || string(body) != "peer:k1" {
		t.Fatalf("peer GET: %d %q", resp.StatusCode, body)
	}
	resp, body = n.do(t, http.MethodGet, peers.PathPrefix+"/g/a%2Fb")
	if resp.StatusCode != http.StatusOK || string(body) != "peer:a%2Fb" {
		t.Fatalf("peer GET of an escaped key: %d %q", resp.StatusCode, body)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []seen{{peers.PathPrefix + "/g/k1", "", true}, {peers.PathPrefix + "/g/a/b", peers.PathPrefix + "/g/a%2Fb", true}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("peer handler saw %+v, want %+v", got, want)
	}
}

func TestServerDropsSlowClients(t *testing.T) {
	cfg := LocalConfig()
	cfg.ReadHeaderTimeout = 100 * time.Millisecond
	n := startNode(t, cfg, nil)
	srv := n.api.NewServer()
	if srv.ReadHeaderTimeout != cfg.ReadHeaderTimeout || srv.ReadTimeout != cfg.ReadTimeout ||
		srv.WriteTimeout != cfg.WriteTimeout || srv.IdleTimeout != cfg.IdleTimeout || srv.MaxHeaderBytes != cfg.MaxHeaderBytes || srv.Handler != n.api {
		t.Errorf("NewServer() = %+v does not carry %+v", srv, cfg)
	}

	conn, err := net.Dial("tcp", n.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// The headers never end. The server must give up on its own; the deadline only keeps a
	// broken server from hanging the test.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the server held a connection whose headers never ended")
	case err == nil:
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("unfinished request answered %d", resp.StatusCode)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	g1 := newTestGroup(t, "same", &origin{}, testGroupConfig())
	g2 := newTestGroup(t, "same", &origin{}, testGroupConfig())
	bad := LocalConfig()
	bad.MaxKeyBytes = -1
	bad.WriteTimeout = -time.Second
	for _, tc := range []struct {
		name   string
		cfg    Config
		groups []*group.Group
		want   string
	}{
		{"bad config", bad, nil, "MaxKeyBytes"},
		{"bad config names every field", bad, nil, "WriteTimeout"},
		{"duplicate group", LocalConfig(), []*group.Group{g1, g2}, `two groups named "same"`},
		{"nil group", LocalConfig(), []*group.Group{nil}, "nil group"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, tc.groups, nil, discardLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{}, nil, nil, nil); err != nil {
		t.Errorf("the zero Config must be valid: %v", err)
	}
}

func TestNodesDoNotShareState(t *testing.T) {
	a := startNode(t, LocalConfig(), nil)
	b := startNode(t, LocalConfig(), nil)
	a.do(t, http.MethodGet, keyPath("g", "k"))
	a.api.SetReady(true)
	if resp, _ := b.do(t, http.MethodGet, "/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Error("readiness leaked from one API to another")
	}
	_, body := b.do(t, http.MethodGet, "/metrics")
	if !strings.Contains(string(body), `groupcached_gets_total{group="g"} 0`) {
		t.Error("metrics leaked from one API's registry to another")
	}
	if a.api.Registry() == b.api.Registry() {
		t.Error("two APIs share a registry")
	}
}

// startServer serves h on 127.0.0.1 for the test's lifetime.
func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
