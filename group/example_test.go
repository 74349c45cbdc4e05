package group_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/groupcached/groupcached/group"
)

// A program embeds a Group in front of a slow origin: here a map standing in for a database.
// The first Get of a key loads it; later Gets are answered from the cache.
func Example() {
	origin := map[string]string{"alice": "admin", "bob": "reader"}
	loads := 0
	roles := group.LoaderFunc(func(ctx context.Context, user string) (group.Value, error) {
		loads++
		role, ok := origin[user]
		if !ok {
			return group.Value{}, fmt.Errorf("user %q: %w", user, group.ErrNotFound)
		}
		return group.Value{Bytes: []byte(role)}, nil
	})

	cfg := group.DefaultConfig()
	cfg.CacheBytes = 16 << 20
	cfg.TTL = 10 * time.Minute
	g, err := group.New("roles", roles, cfg, nil)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	for _, user := range []string{"alice", "alice", "bob"} {
		res, err := g.Get(ctx, user)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s (from %v)\n", user, res.Bytes, res.Source)
	}
	if _, err := g.Get(ctx, "mallory"); errors.Is(err, group.ErrNotFound) {
		fmt.Println("mallory: not found")
	}
	fmt.Println("origin loads:", loads)
	// Output:
	// alice: admin (from loader)
	// alice: admin (from main)
	// bob: reader (from loader)
	// mallory: not found
	// origin loads: 3
}

// A loader may give each value its own lifetime, overriding the group's TTL, and Remove drops
// a key whose origin changed so that the next Get loads it again.
func ExampleLoaderFunc() {
	version := 1
	prices := group.LoaderFunc(func(ctx context.Context, item string) (group.Value, error) {
		ttl := time.Hour
		if strings.HasPrefix(item, "flash-") {
			ttl = 5 * time.Second // flash sales change often
		}
		return group.Value{Bytes: fmt.Appendf(nil, "%s v%d", item, version), TTL: ttl}, nil
	})
	g, err := group.New("prices", prices, group.DefaultConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	for _, item := range []string{"book", "flash-tv"} {
		res, _ := g.Get(ctx, item)
		fmt.Printf("%s, expires in %v\n", res.Bytes, res.TTL)
	}

	version = 2
	if _, err := g.Remove(ctx, "book"); err != nil {
		log.Fatal(err)
	}
	res, _ := g.Get(ctx, "book")
	fmt.Printf("%s (from %v)\n", res.Bytes, res.Source)
	// Output:
	// book v1, expires in 1h0m0s
	// flash-tv v1, expires in 5s
	// book v2 (from loader)
}

func ExampleParseByteSize() {
	for _, s := range []string{"64MiB", "1.5GiB", "100KB", "4096"} {
		size, err := group.ParseByteSize(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s = %d bytes = %v\n", s, int64(size), size)
	}
	// Output:
	// 64MiB = 67108864 bytes = 64MiB
	// 1.5GiB = 1610612736 bytes = 1536MiB
	// 100KB = 100000 bytes = 100000B
	// 4096 = 4096 bytes = 4KiB
}

// dropSink is the simplest ChangeSink, for a Group served alone: it drops what changed, and
// everything after a gap. httpapi.Node gives its watchers a fuller one (key limits, peers,
// metrics, logs).
type dropSink struct{ g *group.Group }

func (s dropSink) Changed(key string) error {
	if key == "" {
		return group.ErrInvalidKey
	}
	s.g.RemoveLocal(key)
	return nil
}
func (s dropSink) Resync(error) { s.g.PurgeLocal() }
func (s dropSink) Lost(error)   {}

// A loader whose origin announces its changes is also a Watcher; whoever serves the group runs
// its Watch, and each key it hears is loaded again on the next Get.
func ExampleWatcher() {
	prices := map[string]string{"apple": "1.00"}
	var mu sync.Mutex
	changes := make(chan string)
	origin := struct {
		group.LoaderFunc
		group.WatcherFunc
	}{
		LoaderFunc: func(ctx context.Context, key string) (group.Value, error) {
			mu.Lock()
			defer mu.Unlock()
			return group.Value{Bytes: []byte(prices[key])}, nil
		},
		WatcherFunc: func(ctx context.Context, sink group.ChangeSink) error {
			sink.Resync(nil) // listening from here on
			for {
				select {
				case <-ctx.Done():
					return nil
				case key := <-changes:
					_ = sink.Changed(key)
				}
			}
		},
	}
	g, err := group.New("prices", origin, group.DefaultConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	w, ok := g.Loader().(group.Watcher)
	if !ok {
		log.Fatal("the loader has no feed")
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = w.Watch(ctx, dropSink{g}) }()

	res, _ := g.Get(ctx, "apple")
	fmt.Println("apple:", string(res.Bytes))
	mu.Lock()
	prices["apple"] = "1.20"
	mu.Unlock()
	changes <- "apple" // the origin announces the change...
	changes <- ""      // ...and, once the watcher takes the next one, it has dropped "apple"
	res, _ = g.Get(ctx, "apple")
	fmt.Println("apple:", string(res.Bytes))
	// Output:
	// apple: 1.00
	// apple: 1.20
}

// A group with Config.Sizing estimates, from its own traffic, the hit ratio it would have
// with a smaller or larger cache. Here 200,000 reads of a skewed set of 20,000 keys go through
// a 1 MiB group, which holds about a fifth of them.
func ExampleGroup_Sizing() {
	cfg := group.DefaultConfig()
	cfg.CacheBytes = 1 << 20
	cfg.Sizing = true
	g, err := group.New("sized", group.LoaderFunc(func(context.Context, string) (group.Value, error) {
		return group.Value{Bytes: make([]byte, 100)}, nil
	}), cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := range 200_000 {
		n := i % 20_000
		if i%2 == 0 {
			n %= 2_000 // half the reads go to a tenth of the keys
		}
		if _, err := g.Get(ctx, fmt.Sprintf("key-%d", n)); err != nil {
			log.Fatal(err)
		}
	}
	est, _ := g.Sizing()
	st := g.Stats()
	real := float64(st.CacheHits) / float64(st.CacheHits+st.Loads)
	fmt.Println("warming up:", est.Warming, "requests:", est.Requests)
	for _, s := range est.Sizes {
		fmt.Printf("%vx = %d bytes\n", s.Ratio, s.Bytes)
	}
	// The estimates rest on a small sample of a small cache: read them as a curve.
	fmt.Println("4x hits more than ¼x:", est.Sizes[4].HitRatio > est.Sizes[0].HitRatio)
	fmt.Println("1x within 0.1 of the real hit ratio:", math.Abs(est.Sizes[2].HitRatio-real) < 0.1)
	// Output:
	// warming up: false requests: 200000
	// 0.25x = 262144 bytes
	// 0.5x = 524288 bytes
	// 1x = 1048576 bytes
	// 2x = 2097152 bytes
	// 4x = 4194304 bytes
	// 4x hits more than ¼x: true
	// 1x within 0.1 of the real hit ratio: true
}
