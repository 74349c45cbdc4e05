package group_test

import (
	"context"
	"errors"
	"fmt"
	"log"
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
