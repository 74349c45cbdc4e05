package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// Failure isolation and admission control (issue 11), on three real nodes whose loader reads
// a real HTTP origin: a flood of cold keys, an origin that answers 500, an origin that goes
// down while the cache holds expired values.

// httpOrigin is an HTTP origin on 127.0.0.1 that counts its requests per key and the most it
// served at once. Its answers' behaviour is set by the test while it runs.
type httpOrigin struct {
	srv *httptest.Server

	inFlight, top, calls atomic.Int64
	mu                   sync.Mutex
	perKey               map[string]int

	status  atomic.Int64  // the status it answers; 0 means 200
	delay   atomic.Int64  // how long it takes to answer, in nanoseconds
	version atomic.Int64  // part of every value, so that a refreshed value is told apart
	hold    chan struct{} // when not nil, answers wait for it to close
	holdMu  sync.Mutex
}

func newHTTPOrigin(t *testing.T) *httpOrigin {
	o := &httpOrigin{perKey: map[string]int{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := o.inFlight.Add(1)
		defer o.inFlight.Add(-1)
		for old := o.top.Load(); n > old && !o.top.CompareAndSwap(old, n); old = o.top.Load() {
		}
		o.calls.Add(1)
		key := r.URL.Query().Get("key")
		o.mu.Lock()
		o.perKey[key]++
		o.mu.Unlock()
		o.holdMu.Lock()
		hold := o.hold
		o.holdMu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		if d := time.Duration(o.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if s := int(o.status.Load()); s != 0 {
			http.Error(w, "origin failure", s)
			return
		}
		fmt.Fprintf(w, "%s@v%d", key, o.version.Load())
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *httpOrigin) count(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.perKey[key]
}

// holdAnswers makes the origin's answers wait until the returned function is called.
func (o *httpOrigin) holdAnswers() (release func()) {
	ch := make(chan struct{})
	o.holdMu.Lock()
	o.hold = ch
	o.holdMu.Unlock()
	return sync.OnceFunc(func() {
		o.holdMu.Lock()
		o.hold = nil
		o.holdMu.Unlock()
		close(ch)
	})
}

// loader reads key from the origin, bounded in bytes, with the value's TTL set to ttl.
func (o *httpOrigin) loader(ttl time.Duration) group.Loader {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return group.LoaderFunc(func(ctx context.Context, key string) (group.Value, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.srv.URL+"/?key="+key, nil)
		if err != nil {
			return group.Value{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return group.Value{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return group.Value{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return group.Value{}, fmt.Errorf("origin answered %d", resp.StatusCode)
		}
		return group.Value{Bytes: body, TTL: ttl}, nil
	})
}

// startIsolationCluster starts three nodes over one origin loader with group config gcfg.
func startIsolationCluster(t *testing.T, l group.Loader, gcfg group.Config) []*clusterNode {
	t.Helper()
	a := startClusterNodeGroup(t, "node-a", l, nil, gcfg)
	b := startClusterNodeGroup(t, "node-b", l, nil, gcfg, a.Cluster().GossipAddr())
	c := startClusterNodeGroup(t, "node-c", l, nil, gcfg, a.Cluster().GossipAddr())
	nodes := []*clusterNode{a, b, c}
	waitMembers(t, nodes...)
	return nodes
}

// timedGet is one GET with its answer's status, code, Retry-After and latency.
type timedGet struct {
	status     int
	code       string
	retryAfter string
	took       time.Duration
}

func getTimed(t *testing.T, n *clusterNode, key string) timedGet {
	start := time.Now()
	resp, body := request(t, n.client, n.url, http.MethodGet, keyPath("g", key))
	g := timedGet{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
	if resp.StatusCode != http.StatusOK {
		g.code = decodeJSON[errorBody](t, body).Code
	}
	return g
}

// TestFloodOfColdKeysIsBounded: 300 clients each ask one node (spread over three) for a
// distinct cold key. The origin never serves more than max_concurrent_loads × nodes at once,
// whichever node is asked (a node that fetches from the owner gets the owner's refusal and
// does not load the key itself), and the excess is answered 503 "overloaded" with
// Retry-After, without waiting for a load.
func TestFloodOfColdKeysIsBounded(t *testing.T) {
	o := newHTTPOrigin(t)
	o.delay.Store(int64(100 * time.Millisecond))
	gcfg := testGroupConfig()
	gcfg.LoadTimeout = 20 * time.Second
	gcfg.MaxConcurrentLoads, gcfg.MaxQueuedLoads = 4, 8
	nodes := startIsolationCluster(t, o.loader(0), gcfg)

	const clients = 300
	results := make([]timedGet, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { results[i] = getTimed(t, nodes[i%len(nodes)], "cold-"+strconv.Itoa(i)) })
	}
	wg.Wait()

	var ok, overloaded int
	var slowest503 time.Duration
	for i, r := range results {
		switch {
		case r.status == http.StatusOK:
			ok++
		case r.status == http.StatusServiceUnavailable && r.code == CodeOverloaded && r.retryAfter != "":
			overloaded++
			slowest503 = max(slowest503, r.took)
		default:
			t.Errorf("client %d: %d %q (Retry-After %q)", i, r.status, r.code, r.retryAfter)
		}
	}
	limit := int64(gcfg.MaxConcurrentLoads * len(nodes))
	var rejected int64
	for _, n := range nodes {
		rejected += n.Groups()[0].Stats().Admission.Rejected
	}
	t.Logf("%d clients, %d nodes, max_concurrent_loads %d, max_queued_loads %d: origin in flight at most %d (bound %d), "+
		"%d origin calls, %d answered 200, %d answered 503 overloaded (slowest %v), %d loads refused by the owners",
		clients, len(nodes), gcfg.MaxConcurrentLoads, gcfg.MaxQueuedLoads, o.top.Load(), limit, o.calls.Load(), ok, overloaded,
		slowest503.Round(time.Millisecond), rejected)
	if top := o.top.Load(); top > limit {
		t.Errorf("the origin served %d requests at once, above max_concurrent_loads × nodes = %d", top, limit)
	}
	if overloaded == 0 {
		t.Error("no request was refused: the flood did not exceed the bound")
	}
	// Every key was asked once: each origin call is one 200, and no refused key was loaded
	// by the node that asked the owner.
	if int(o.calls.Load()) != ok {
		t.Errorf("%d origin calls for %d values served", o.calls.Load(), ok)
	}
	// A refusal does not wait for a load slot: the queue is full. Bounded far below the load
	// timeout, which a queued load may wait.
	if slowest503 >= gcfg.LoadTimeout/2 {
		t.Errorf("the slowest 503 took %v", slowest503)
	}
	// /metrics says the same: the refusals counted, and nothing left in the queue or in flight.
	var scraped int64
	for _, n := range nodes {
		v, ok := metricValue(t, n.Node, `groupcached_load_rejections_total{group="g"}`)
		got, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("%s: load_rejections_total = %q (present %v)", n.Name(), v, ok)
		}
		scraped += got
		wantMetric(t, n.Node, `groupcached_load_queue_depth{group="g"}`, "0")
		wantMetric(t, n.Node, `groupcached_loads_in_flight{group="g"}`, "0")
	}
	if scraped != rejected || scraped == 0 {
		t.Errorf("/metrics counts %d load rejections, the groups %d", scraped, rejected)
	}
}

// TestFailingOriginIsAskedOncePerErrorTTL: an origin that answers 500 to 100 concurrent
// requests for one key, spread over three nodes, and then to more requests for a few error
// TTLs, is asked about once per error_ttl in the whole cluster (less, once the backoff
// doubles it): the owner remembers the failure, and the other nodes get it from the owner.
func TestFailingOriginIsAskedOncePerErrorTTL(t *testing.T) {
	o := newHTTPOrigin(t)
	o.status.Store(http.StatusInternalServerError)
	gcfg := testGroupConfig()
	gcfg.ErrorTTL, gcfg.MaxErrorTTL = 500*time.Millisecond, 30*time.Second
	nodes := startIsolationCluster(t, o.loader(0), gcfg)

	burst := func() {
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				r := getTimed(t, nodes[i%len(nodes)], "failing")
				if r.status != http.StatusBadGateway || r.code != CodeLoadFailed {
					t.Errorf("GET failing: %d %q, want 502 load_failed", r.status, r.code)
				}
			})
		}
		wg.Wait()
	}
	began := time.Now()
	burst()
	took := time.Since(began)
	first := o.count("failing")
	t.Logf("100 concurrent requests over 3 nodes in %v: %d origin calls", took.Round(time.Millisecond), first)
	// A handful; on a loaded machine the burst itself can outlast the error TTL, and each
	// error TTL it lasts may cost one more call.
	if limit := 3 + int(took/gcfg.ErrorTTL); first > limit {
		t.Errorf("100 concurrent requests cost the origin %d calls in %v, want at most %d", first, took, limit)
	}

	// Bursts for about four error TTLs: with the backoff (0.5 s, 1 s, 2 s...) the origin is
	// asked at most once per error_ttl, plus the first call.
	start := time.Now()
	for rounds := 0; time.Since(start) < 4*gcfg.ErrorTTL && rounds < 200; rounds++ {
		burst()
		time.Sleep(20 * time.Millisecond) // between rounds, inside the bounded loop
	}
	elapsed := time.Since(start)
	calls := o.count("failing")
	var remembered int64
	for _, n := range nodes {
		remembered += n.Groups()[0].Stats().RememberedErrors
	}
	allowed := first + int(elapsed/gcfg.ErrorTTL) + 1
	t.Logf("%v of bursts at error_ttl %v: %d origin calls in all (at most %d allowed), %d requests answered from the memory",
		elapsed.Round(time.Millisecond), gcfg.ErrorTTL, calls, allowed, remembered)
	if calls > allowed {
		t.Errorf("%d origin calls in %v, want at most %d", calls, elapsed, allowed)
	}
}

// TestStaleIfErrorServesTheLastValue: with stale_if_error, clients keep getting the last value
// while the origin is down, marked stale by every node: the owner, which holds it, and the
// others, which get it from the owner marked stale over the peer wire (with its Age), keep no
// copy of it, and say so on a GET and in an mget.
func TestStaleIfErrorServesTheLastValue(t *testing.T) {
	o := newHTTPOrigin(t)
	gcfg := testGroupConfig()
	gcfg.StaleIfError = time.Hour
	gcfg.HotCacheRate = 1 // every fetch from the owner would keep a hot copy of a fresh value
	nodes := startIsolationCluster(t, o.loader(200*time.Millisecond), gcfg)
	const key = "page"
	owner := ownerNode(t, nodes, key)
	resp, body := owner.get(t, http.MethodGet, keyPath("g", key))
	if resp.StatusCode != http.StatusOK || string(body) != "page@v0" {
		t.Fatalf("first GET: %d %q", resp.StatusCode, body)
	}
	o.status.Store(http.StatusInternalServerError)
	o.version.Store(1)
	poll(t, 10*time.Second, "the value expired and the origin was asked again", func() bool {
		owner.get(t, http.MethodGet, keyPath("g", key))
		return o.count(key) >= 2
	})
	for range 3 {
		for _, n := range nodes {
			resp, body := n.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != "page@v0" {
				t.Fatalf("GET on %s while the origin is down: %d %q", n.Name(), resp.StatusCode, body)
			}
			h := resp.Header
			if h.Get("X-Groupcached-Source") != "stale" || h.Get("Warning") != `110 - "Response is Stale"` ||
				h.Get("Age") == "" || h.Get("Cache-Control") != "max-age=0" {
				t.Fatalf("stale answer's headers on %s (owner: %v): %v", n.Name(), n == owner, h)
			}
		}
	}
	for _, n := range nodes {
		if n == owner {
			continue
		}
		if st := n.Groups()[0].Stats(); st.Hot.Items != 0 {
			t.Errorf("%s keeps %d hot copies of a stale value", n.Name(), st.Hot.Items)
		}
		resp, body := postMget(t, n.client, n.url, "g", "application/json", `{"keys":["`+key+`"]}`)
		type item struct {
			Value      []byte
			Stale      bool
			TTLSeconds *int64 `json:"ttl_seconds"`
			AgeSeconds *int64 `json:"age_seconds"`
		}
		items := decodeJSON[struct{ Items []item }](t, body).Items
		if resp.StatusCode != http.StatusOK || len(items) != 1 || string(items[0].Value) != "page@v0" || !items[0].Stale ||
			items[0].AgeSeconds == nil || items[0].TTLSeconds == nil || *items[0].TTLSeconds != 0 {
			t.Fatalf("mget on %s while the origin is down: %d %s", n.Name(), resp.StatusCode, body)
		}
	}
	t.Logf("origin down: every node answered the last value; origin calls %d", o.count(key))
}

// TestStaleWhileRevalidateServesAtOnce: an expired value is answered at once, stale, while one
// refresh (held by the origin) runs; then the new value is served.
func TestStaleWhileRevalidateServesAtOnce(t *testing.T) {
	o := newHTTPOrigin(t)
	gcfg := testGroupConfig()
	gcfg.StaleWhileRevalidate = time.Hour
	gcfg.LoadTimeout = 20 * time.Second
	nodes := startIsolationCluster(t, o.loader(200*time.Millisecond), gcfg)
	const key = "feed"
	owner := ownerNode(t, nodes, key)
	if resp, body := owner.get(t, http.MethodGet, keyPath("g", key)); resp.StatusCode != http.StatusOK || string(body) != "feed@v0" {
		t.Fatalf("first GET: %d %q", resp.StatusCode, body)
	}
	release := o.holdAnswers()
	defer release()
	o.version.Store(1)
	// Once the value has expired, the first GET starts the refresh, which the origin holds.
	poll(t, 10*time.Second, "a refresh started", func() bool {
		resp, _ := owner.get(t, http.MethodGet, keyPath("g", key))
		return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Groupcached-Source") == "stale"
	})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, body := owner.get(t, http.MethodGet, keyPath("g", key))
			if resp.StatusCode != http.StatusOK || string(body) != "feed@v0" || resp.Header.Get("X-Groupcached-Source") != "stale" {
				t.Errorf("GET while revalidating: %d %q source %q", resp.StatusCode, body, resp.Header.Get("X-Groupcached-Source"))
			}
		})
	}
	wg.Wait()
	if n := o.count(key); n != 2 {
		t.Fatalf("origin calls for the key = %d, want 2 (the first load and one refresh)", n)
	}
	release()
	poll(t, 10*time.Second, "the refreshed value is served", func() bool {
		_, body := owner.get(t, http.MethodGet, keyPath("g", key))
		return string(body) == "feed@v1"
	})
	if st := owner.Groups()[0].Stats(); st.StaleRefreshes != 1 {
		t.Errorf("StaleRefreshes = %d, want 1", st.StaleRefreshes)
	}
}

// ownerNode returns the node that owns key.
func ownerNode(t *testing.T, nodes []*clusterNode, key string) *clusterNode {
	t.Helper()
	name := nodes[0].Cluster().Owner(key)
	for _, n := range nodes {
		if n.Name() == name {
			return n
		}
	}
	t.Fatalf("no node named %q owns %q", name, key)
	return nil
}
