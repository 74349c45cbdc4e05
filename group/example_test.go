package group_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"
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
