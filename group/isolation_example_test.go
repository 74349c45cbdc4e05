package group_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/groupcached/groupcached/group"
)

// With StaleIfError, an origin that goes down does not take the cached value with it: once
// the value expires, a Get whose load fails answers the expired value, marked stale, and the
// failure is remembered for ErrorTTL, so the origin is not asked again meanwhile.
func ExampleConfig_staleIfError() {
	var down atomic.Bool
	var calls atomic.Int64
	prices := group.LoaderFunc(func(ctx context.Context, item string) (group.Value, error) {
		calls.Add(1)
		if down.Load() {
			return group.Value{}, errors.New("origin answered 503")
		}
		return group.Value{Bytes: []byte("9.99"), TTL: 10 * time.Millisecond}, nil
	})
	cfg := group.DefaultConfig()
	cfg.StaleIfError = time.Hour
	cfg.ErrorTTL = time.Minute
	g, err := group.New("prices", prices, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	res, _ := g.Get(ctx, "apple")
	fmt.Printf("%s stale=%v\n", res.Bytes, res.Stale)

	down.Store(true)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if res, _ = g.Get(ctx, "apple"); res.Stale {
			break
		}
		time.Sleep(time.Millisecond) // until the value has expired
	}
	fmt.Printf("%s stale=%v\n", res.Bytes, res.Stale)
	res, _ = g.Get(ctx, "apple")
	fmt.Printf("%s stale=%v, origin calls %d\n", res.Bytes, res.Stale, calls.Load())
	// Output:
	// 9.99 stale=false
	// 9.99 stale=true
	// 9.99 stale=true, origin calls 2
}
