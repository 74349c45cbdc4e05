// Command memcheck measures how much memory a group.Group takes once it is full: it fills a
// Group of -bytes with values of -value bytes through Get, as a server would (each key made by
// the caller, each value by the loader), and prints the process's resident size (from
// /proc/self/statm) and the Go heap beside the target of issue 2: under 1.25 times the
// configured bytes plus 32 MiB.
//
// -fill is how many times the cache's capacity in keys is loaded: 1 fills it once; more makes
// it evict, leaving garbage for the collector as a busy node does.
//
// Go's collector lets the heap grow to twice the live data between collections (GOGC=100), so
// a node that keeps evicting needs a memory limit to stay near its bound: run with
// GOMEMLIMIT set to the target (for 256 MiB: GOMEMLIMIT=330MiB) to see the difference.
//
//	go run ./scripts/memcheck -bytes 256MiB -value 1024 -fill 1
//	GOMEMLIMIT=330MiB go run ./scripts/memcheck -bytes 256MiB -value 1024 -fill 3
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/groupcached/groupcached/group"
)

func main() {
	cacheBytes := group.ByteSize(256 << 20)
	flag.TextVar(&cacheBytes, "bytes", cacheBytes, "the group's CacheBytes")
	valueSize := flag.Int("value", 1024, "bytes per value")
	fill := flag.Float64("fill", 1, "keys loaded, in multiples of the cache's capacity")
	flag.Parse()
	if err := run(int64(cacheBytes), *valueSize, *fill); err != nil {
		log.Fatal(err)
	}
}

func run(cacheBytes int64, valueSize int, fill float64) error {
	cfg := group.DefaultConfig()
	cfg.CacheBytes = cacheBytes
	g, err := group.New("memcheck", group.LoaderFunc(func(_ context.Context, key string) (group.Value, error) {
		// Written, not only allocated: untouched zero pages would not be resident at all.
		v := make([]byte, valueSize)
		for i := range v {
			v[i] = key[i%len(key)]
		}
		return group.Value{Bytes: v}, nil
	}), cfg, nil)
	if err != nil {
		return err
	}

	rssBefore, err := residentBytes()
	if err != nil {
		return err
	}
	keyLen := len(key(0))
	capacity := cacheBytes / int64(keyLen+valueSize+group.EntryOverhead)
	n := int64(float64(capacity) * fill)
	for i := range n {
		if _, err := g.Get(context.Background(), key(i)); err != nil {
			return fmt.Errorf("get %d: %w", i, err)
		}
	}
	st := g.Stats()
	rssFilled, err := residentBytes()
	if err != nil {
		return err
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.FreeOSMemory()
	rssCollected, err := residentBytes()
	if err != nil {
		return err
	}

	target := cacheBytes + cacheBytes/4 + 32<<20
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Printf("configured bytes     %s (value %d B, %d keys loaded, EntryOverhead %d B)\n", mib(cacheBytes), valueSize, n, group.EntryOverhead)
	limit := "off"
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		limit = mib(l)
	}
	fmt.Printf("GOMEMLIMIT           %s\n", limit)
	fmt.Printf("cached               %s in %d items, %d evictions\n", mib(st.Main.Bytes), st.Main.Items, st.Main.Evictions)
	fmt.Printf("RSS at start         %s\n", mib(rssBefore))
	fmt.Printf("RSS after the fill   %s  (%.2fx configured)\n", mib(rssFilled), float64(rssFilled)/float64(cacheBytes))
	fmt.Printf("live heap after GC   %s  (%.2fx configured)\n", mib(int64(ms.HeapAlloc)), float64(ms.HeapAlloc)/float64(cacheBytes))
	fmt.Printf("RSS after GC+free    %s  (%.2fx configured)\n", mib(rssCollected), float64(rssCollected)/float64(cacheBytes))
	fmt.Printf("target               %s  (1.25x + 32 MiB): after the fill %s\n", mib(target), verdict(rssFilled <= target))
	runtime.KeepAlive(g)
	return nil
}

func key(i int64) string { return fmt.Sprintf("key-%012d", i) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// residentBytes reads the process's resident set size from /proc/self/statm (Linux).
func residentBytes() (int64, error) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("reading resident size: %w", err)
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0, fmt.Errorf("unexpected /proc/self/statm: %q", data)
	}
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/self/statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}
