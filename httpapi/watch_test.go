package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/groupcached/groupcached/group"
)

// feed is a fake group.Watcher: it says its first word (live: Resync(nil); down: Lost), hands
// its sink to the test and holds it until its context ends, as a real feed holds its
// connection.
type feed struct {
	first   func(group.ChangeSink) // nil: say nothing
	sinks   chan group.ChangeSink
	stopped chan struct{} // closed when Watch has returned
}

func newFeed(first func(group.ChangeSink)) *feed {
	return &feed{first: first, sinks: make(chan group.ChangeSink, 1), stopped: make(chan struct{})}
}

func live(s group.ChangeSink) { s.Resync(nil) }
func down(s group.ChangeSink) { s.Lost(errors.New("the database is starting")) }

func (f *feed) watch(ctx context.Context, sink group.ChangeSink) error {
	defer close(f.stopped)
	if f.first != nil {
		f.first(sink)
	}
	f.sinks <- sink
	<-ctx.Done()
	return nil
}

// sink waits for the node to start the feed.
func (f *feed) sink(t *testing.T) group.ChangeSink {
	t.Helper()
	select {
	case s := <-f.sinks:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the node did not run the loader's Watch within 10s of Start")
		return nil
	}
}

// watchedOrigin is an origin whose loader is also a Watcher.
type watchedOrigin struct {
	*origin
	group.WatcherFunc
}

// metricValue returns the value of series (name and labels) at the node's /metrics, and
// whether it is there.
func metricValue(t *testing.T, n *Node, series string) (string, bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	n.api.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

func wantMetric(t *testing.T, n *Node, series, want string) {
	t.Helper()
	if got, ok := metricValue(t, n, series); !ok || got != want {
		t.Errorf("%s = %q (present %v), want %s", series, got, ok, want)
	}
}

// TestNodeRunsWatcher: a node alone runs its group's Watch from Start to Stop; changes drop
// keys, bad payloads are refused and counted, a loss and a resync are logged, counted and
// shown at /metrics, and a resync purges the group.
func TestNodeRunsWatcher(t *testing.T) {
	o, f := &origin{}, newFeed(live)
	logs := &syncBuffer{}
	cfg := aloneConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.API.MaxKeyBytes = 16
	g := newTestGroup(t, "g", watchedOrigin{o, f.watch}, testGroupConfig())
	n, err := NewNode(cfg, []*group.Group{g})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := metricValue(t, n, `groupcached_invalidation_feed_up{group="g"}`); ok {
		t.Error("feed_up is exported before the watcher reported anything")
	}
	ctx := context.Background()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sink := f.sink(t)

	// The first resync of a group that served nothing purges nothing and is no gap.
	wantMetric(t, n, `groupcached_invalidation_feed_up{group="g"}`, "1")
	wantMetric(t, n, `groupcached_invalidation_gaps_total{group="g"}`, "0")

	get := func(key string, loads int) {
		t.Helper()
		if _, err := g.Get(ctx, key); err != nil {
			t.Fatal(err)
		}
		if got := o.count(key); got != loads {
			t.Fatalf("after Get(%q) the origin has loaded it %d times, want %d", key, got, loads)
		}
	}
	get("a", 1)
	get("a", 1)
	get("b", 1)
	if err := sink.Changed("a"); err != nil {
		t.Fatalf("Changed(a) = %v", err)
	}
	get("a", 2) // dropped
	get("b", 1) // untouched

	long := strings.Repeat("k", 16)
	if err := sink.Changed(long); err != nil {
		t.Errorf("Changed of a key of max_key_bytes = %v, want nil", err)
	}
	for _, bad := range []string{"", long + "k"} {
		if err := sink.Changed(bad); !errors.Is(err, group.ErrInvalidKey) {
			t.Errorf("Changed(%d bytes) = %v, want ErrInvalidKey", len(bad), err)
		}
	}
	wantMetric(t, n, `groupcached_invalidation_notifications_total{group="g"}`, "4")
	wantMetric(t, n, `groupcached_invalidation_bad_payloads_total{group="g"}`, "2")
	if c := strings.Count(logs.String(), "not a key"); c != 1 {
		t.Errorf("two bad payloads in a row were logged %d times, want once (rate-limited)", c)
	}

	sink.Lost(errors.New("connection reset"))
	wantMetric(t, n, `groupcached_invalidation_feed_up{group="g"}`, "0")
	sink.Resync(errors.New("connection reset"))
	wantMetric(t, n, `groupcached_invalidation_feed_up{group="g"}`, "1")
	wantMetric(t, n, `groupcached_invalidation_gaps_total{group="g"}`, "1")
	get("b", 2) // purged
	for _, want := range []string{"lost the origin's change feed", "back after a gap", "connection reset"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}

	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.stopped:
	default:
		t.Fatal("Stop returned while the loader's Watch was still running")
	}
}

// TestNodeFirstResyncAfterServing: a group that served before its feed was first live is
// purged when it is, and that counts as a gap.
func TestNodeFirstResyncAfterServing(t *testing.T) {
	o, f := &origin{}, newFeed(down)
	g := newTestGroup(t, "g", watchedOrigin{o, f.watch}, testGroupConfig())
	n, err := NewNode(aloneConfig(), []*group.Group{g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink := f.sink(t)
	if _, err := g.Get(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	sink.Resync(nil)
	wantMetric(t, n, `groupcached_invalidation_gaps_total{group="g"}`, "1")
	if _, err := g.Get(context.Background(), "a"); err != nil || o.count("a") != 2 {
		t.Fatalf("after the first resync Get(a) = %v and the origin loaded it %d times; want it reloaded", err, o.count("a"))
	}
}

// TestNodeStartWaitsForFeed: Start waits for a feed's first word, and no longer than its
// context.
func TestNodeStartWaitsForFeed(t *testing.T) {
	f := newFeed(nil) // never says a word
	g := newTestGroup(t, "g", watchedOrigin{&origin{}, f.watch}, testGroupConfig())
	n, err := NewNode(aloneConfig(), []*group.Group{g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > watchStartWait/2 {
		t.Fatalf("Start took %v with a silent feed and a 200ms context; want it to wait for the context", took)
	}
}

// TestNodeWithoutWatcher: a loader that is no Watcher, and a Watcher with nothing to watch,
// leave no series and nothing running.
func TestNodeWithoutWatcher(t *testing.T) {
	idle := watchedOrigin{&origin{}, func(context.Context, group.ChangeSink) error { return nil }}
	for name, l := range map[string]group.Loader{"plain": &origin{}, "nothing to watch": idle} {
		t.Run(name, func(t *testing.T) {
			n := startNodeValue(t, aloneConfig(), l)
			if _, ok := metricValue(t, n, `groupcached_invalidation_feed_up{group="g"}`); ok {
				t.Error("feed_up is exported for a group without a feed")
			}
		})
	}
}

// TestWatchForwardsOwnedKeys runs two real nodes: a change heard by the key's owner reaches
// the other node's hot copy through the peer wire; a change heard by a non-owner drops only
// its own copy.
func TestWatchForwardsOwnedKeys(t *testing.T) {
	type member struct {
		n      *Node
		g      *group.Group
		o      *origin
		sink   group.ChangeSink
		logger *syncBuffer
	}
	var ms []*member
	for i := range 2 {
		m := &member{o: &origin{}, logger: &syncBuffer{}}
		f := newFeed(live)
		cfg := LocalNodeConfig()
		cfg.Name = fmt.Sprintf("w%d", i)
		cfg.Logger = slog.New(slog.NewTextHandler(m.logger, nil))
		if i > 0 {
			cfg.Cluster.Seeds = []string{ms[0].n.Cluster().GossipAddr()}
		}
		gc := testGroupConfig()
		gc.HotCacheRate = 1
		m.g = newTestGroup(t, "g", watchedOrigin{m.o, f.watch}, gc)
		n, err := NewNode(cfg, []*group.Group{m.g})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Stop(context.Background()) })
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.n, m.sink = n, f.sink(t)
		ms = append(ms, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := m.n.WaitMembers(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	owner, other := ms[0], ms[1]
	key := ""
	for i := 0; key == ""; i++ {
		if k := fmt.Sprint("key-", i); owner.n.Cluster().Owner(k) == owner.n.Name() {
			key = k
		}
	}
	hotItems := func() int64 { return other.g.Stats().Hot.Items }
	if _, err := other.g.Get(ctx, key); err != nil {
		t.Fatal(err)
	}
	if hotItems() != 1 || owner.o.count(key) != 1 {
		t.Fatalf("after a Get on the non-owner: %d hot items there, %d loads on the owner; want 1 and 1", hotItems(), owner.o.count(key))
	}

	// The non-owner hears the change: only its own copy goes, nothing is forwarded.
	sent := other.n.Cluster().Stats().Invalidations
	if err := other.sink.Changed(key); err != nil {
		t.Fatal(err)
	}
	if hotItems() != 0 || other.n.Cluster().Stats().Invalidations != sent || owner.g.Stats().Main.Items != 1 {
		t.Fatalf("a change heard by the non-owner: hot items %d, invalidations sent %d → %d, owner's main items %d; want 0, none, 1",
			hotItems(), sent, other.n.Cluster().Stats().Invalidations, owner.g.Stats().Main.Items)
	}

	// The non-owner copies the owner's value again; then the owner hears the change and
	// forwards it, and the copy goes.
	if _, err := other.g.Get(ctx, key); err != nil || hotItems() != 1 {
		t.Fatalf("Get on the non-owner = %v, hot items %d; want a hot copy again", err, hotItems())
	}
	if err := owner.sink.Changed(key); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for hotItems() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the owner's change did not reach the non-owner's hot copy within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if owner.g.Stats().Main.Items != 0 {
		t.Error("the owner kept its own copy")
	}
}

// fakeRelay owns every key and blocks each InvalidateKey until release is closed.
type fakeRelay struct {
	fakeInvalidator
	release chan struct{}
	started chan string
}

func (r *fakeRelay) PickPeer(string) (group.Peer, bool) { return nil, false }

func (r *fakeRelay) InvalidateKey(ctx context.Context, g, key string) (int, error) {
	r.started <- key
	<-r.release
	return r.fakeInvalidator.InvalidateKey(ctx, g, key)
}

// TestWatchForwardOverflow: while forwards are stuck, a burst beyond maxPendingForwards is
// forwarded as one purge of the group; a resync purges the peers before it returns.
func TestWatchForwardOverflow(t *testing.T) {
	f := newFeed(live)
	g := newTestGroup(t, "g", watchedOrigin{&origin{}, f.watch}, testGroupConfig())
	rl := &fakeRelay{release: make(chan struct{}), started: make(chan string, forwardParallel)}
	w := newWatches([]*group.Group{g}, rl, DefaultMaxKeyBytes, discardLogger())
	w.start(context.Background())
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(rl.release) }) }
	t.Cleanup(func() { releaseAll(); w.stop() })
	sink := f.sink(t)

	if err := sink.Changed("first"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rl.started: // the forwarder is now stuck on "first"
	case <-time.After(5 * time.Second):
		t.Fatal("the owned key was not forwarded")
	}
	for i := range maxPendingForwards + 10 {
		if err := sink.Changed(fmt.Sprint("burst-", i)); err != nil {
			t.Fatal(err)
		}
	}
	releaseAll()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rl.mu.Lock()
		purges, keys := rl.purges, len(rl.keys)
		rl.mu.Unlock()
		if purges == 1 {
			if keys != 1 {
				t.Fatalf("%d keys were forwarded one by one, want only the first (the burst became a purge)", keys)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an overflowing burst: %d purges, %d keys forwarded; want 1 purge", purges, keys)
		}
		time.Sleep(5 * time.Millisecond)
	}

	sink.Resync(errors.New("gap"))
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.purges != 2 {
		t.Fatalf("Resync returned after %d purges of the peers, want 2 (the burst's and its own)", rl.purges)
	}
}

// BenchmarkWatchSinkChanged is the node's cost of one changed key heard from the origin, on
// the watcher's goroutine: the check, RemoveLocal (main, hot, in-flight fills) and, for a key
// this node owns, queueing its forward. Half the keys are cached.
func BenchmarkWatchSinkChanged(b *testing.B) {
	for _, tc := range []struct {
		name string
		rl   relay
	}{{"alone", nil}, {"owner", &fakeRelay{release: make(chan struct{}), started: make(chan string, forwardParallel)}}} {
		b.Run(tc.name, func(b *testing.B) {
			l := struct {
				group.LoaderFunc
				group.WatcherFunc
			}{func(context.Context, string) (group.Value, error) { return group.Value{Bytes: benchValue}, nil }, nil}
			g := newTestGroup(b, "g", l, group.DefaultConfig())
			keys := make([]string, 1<<14)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
				if i%2 == 0 {
					if _, err := g.Get(context.Background(), keys[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			w := newWatches([]*group.Group{g}, tc.rl, DefaultMaxKeyBytes, discardLogger())
			s := w.sinks[0] // not started: forwards only queue, and overflow into a purge
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = s.Changed(keys[i%len(keys)])
				i++
			}
		})
	}
}
